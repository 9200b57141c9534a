// Small SVG line charts, drawn with createElementNS; every chart's figures are also given as text.

import { h, s } from "./dom.js";

export interface Series {
  name: string;
  points: [number, number | null][]; // [epoch seconds, value]; null: no value then (a gap in the line)
}

const WIDTH = 600;
const HEIGHT = 150;
const PAD = 4;
const PALETTE = 6; // series-0 ... series-5 in app.css, each readable in both colour schemes

/** The path of one series: a gap wherever a value is missing. */
function path(points: [number, number | null][], x: (t: number) => number, y: (v: number) => number): string {
  let d = "";
  let pen = "M";
  for (const [time, value] of points) {
    if (value === null) {
      pen = "M";
      continue;
    }
    d += `${pen}${x(time).toFixed(1)} ${y(value).toFixed(1)} `;
    pen = "L";
  }
  return d.trim();
}

/** A chart named `title` of `series` over [start, end]; `format` writes a value with its unit. */
export function lineChart(
  title: string,
  series: Series[],
  start: number,
  end: number,
  format: (value: number) => string,
): HTMLElement {
  const values = series.flatMap((one) => one.points.map(([, value]) => value ?? 0));
  const top = Math.max(...values, 0) || 1;
  const x = (time: number) => PAD + ((time - start) / Math.max(end - start, 1)) * (WIDTH - 2 * PAD);
  const y = (value: number) => HEIGHT - PAD - (value / top) * (HEIGHT - 2 * PAD);
  const svg = s(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "chart", preserveAspectRatio: "none" },
    s("title", {}, title),
    s("line", { x1: PAD, x2: WIDTH - PAD, y1: y(0), y2: y(0), class: "axis" }),
    s("line", { x1: PAD, x2: WIDTH - PAD, y1: y(top), y2: y(top), class: "grid" }),
    ...series.flatMap((one, index) => {
      const latest = one.points.findLast(([, value]) => value !== null);
      return [
        s("path", { d: path(one.points, x, y), class: `line series-${index % PALETTE}`, fill: "none" }),
        latest && s("circle", { cx: x(latest[0]), cy: y(latest[1] ?? 0), r: 3, class: `dot series-${index % PALETTE}` }),
      ];
    }),
  );
  const figures = series.map((one, index) => {
    const known = one.points.map(([, value]) => value).filter((value): value is number => value !== null);
    const latest = known.at(-1);
    const text = known.length
      ? `now ${format(latest ?? 0)}, peak ${format(Math.max(...known))}, mean ${format(
          known.reduce((sum, value) => sum + value, 0) / known.length,
        )}`
      : "no data";
    return h("li", {}, h("span", { class: `swatch series-${index % PALETTE}`, "aria-hidden": "true" }), `${one.name}: ${text}`);
  });
  return h(
    "figure",
    { class: "chart-figure" },
    h("h3", {}, title),
    h("div", { class: "scale" }, h("span", {}, `top ${format(top)}`)),
    svg,
    h("div", { class: "scale" }, h("span", {}, "15 min ago"), h("span", {}, "now")),
    h("ul", { class: "figures" }, ...(figures.length ? figures : [h("li", {}, "No data yet")])),
  );
}
