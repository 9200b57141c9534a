// The Monitor view: the last 15 minutes from the runner's history (tokens/s, requests, errors, queue, time to
// first token per model; memory), redrawn as each poll answers, and the recent requests with secrets cut.

import { describe, getJSON } from "./api.js";
import { lineChart, type Series } from "./charts.js";
import { fill, h } from "./dom.js";
import { bytes, clock, displayName, number } from "./format.js";
import { watchHistory } from "./history.js";
import type { History, ModelRequests, ModelSample, RequestRecord } from "./types.js";

const SHOWN_REQUESTS = 50;

function perModel(history: History, pick: (sample: ModelSample) => number | null): Series[] {
  const names = [...new Set(history.samples.flatMap((sample) => Object.keys(sample.models)))].sort();
  return names.map((name) => ({
    name: displayName(name),
    points: history.samples.map((sample): [number, number | null] => {
      const model = sample.models[name];
      return [sample.time, model ? pick(model) : null];
    }),
  }));
}

function memory(history: History): Series[] {
  const point = (pick: (m: History["samples"][number]["memory"]) => number | null) =>
    history.samples.map((sample): [number, number | null] => [sample.time, pick(sample.memory)]);
  const series: Series[] = [
    { name: "Used", points: point((m) => m.used) },
    { name: "Used + available", points: point((m) => m.used + m.available) },
  ];
  if (history.samples.some((sample) => sample.memory.budget !== null)) {
    series.push({ name: "Budget", points: point((m) => m.budget) });
  }
  return series;
}

function charts(history: History): HTMLElement[] {
  const end = Math.max(Date.now() / 1000, history.samples.at(-1)?.time ?? 0);
  const start = end - history.window_seconds;
  const per = `per ${history.interval_seconds} s`;
  const chart = (title: string, series: Series[], format: (value: number) => string) =>
    lineChart(title, series, start, end, format);
  return [
    chart("Tokens per second", perModel(history, (m) => m.tokens_per_second), (v) => `${number(v)} tok/s`),
    chart("Requests", perModel(history, (m) => m.requests), (v) => `${number(v)} ${per}`),
    chart("Errors", perModel(history, (m) => m.errors), (v) => `${number(v)} ${per}`),
    chart("Queue", perModel(history, (m) => m.queue), (v) => `${number(v)} waiting`),
    chart("Time to first token", perModel(history, (m) => m.ttft_seconds), (v) => `${number(v, 2)} s`),
    chart("Memory", memory(history), bytes),
  ];
}

function requestRow(record: RequestRecord): HTMLTableRowElement {
  const answer = record.response ?? record.error ?? "";
  return h(
    "tr",
    {},
    h("td", {}, clock(record.timestamp)),
    h("td", {}, displayName(record.model)),
    h("td", {}, `${record.method} ${record.url}`),
    h("td", {}, record.status_code ? String(record.status_code) : "answering"),
    h("td", {}, record.duration_ms === null ? "—" : `${number(record.duration_ms / 1000, 2)} s`),
    h(
      "td",
      {},
      h(
        "details",
        {},
        h("summary", {}, "Bodies"),
        h("h4", {}, "Request"),
        h("pre", { tabindex: 0 }, record.request),
        h("h4", {}, record.error ? "Error" : "Answer"),
        h("pre", { tabindex: 0 }, answer),
      ),
    ),
  );
}

export function mountMonitor(main: HTMLElement): () => void {
  const status = h("p", { role: "status" });
  const chartsHolder = h("div", { class: "charts" });
  const requestsBody = h("tbody");
  const requestsMessage = h("p", { class: "error" });
  const requests = h(
    "table",
    {},
    h("caption", {}, h("h2", {}, "Recent requests")),
    h(
      "thead",
      {},
      h("tr", {}, ...["Time", "Model", "Request", "Status", "Duration", "Details"].map((n) => h("th", { scope: "col" }, n))),
    ),
    requestsBody,
  );
  fill(
    main,
    h("h2", {}, "Monitor"),
    status,
    chartsHolder,
    requestsMessage,
    h("div", { class: "table-wrap" }, requests),
  );

  let shownRequests = "";
  async function refreshRequests(): Promise<void> {
    const groups = await getJSON<ModelRequests[]>("/engines/requests");
    const records = groups
      .flatMap((group) => group.records)
      .sort((a, b) => b.timestamp - a.timestamp)
      .slice(0, SHOWN_REQUESTS);
    requestsMessage.textContent = "";
    const key = JSON.stringify(records);
    if (key === shownRequests) return; // unchanged: keep open details and the focus
    shownRequests = key;
    fill(
      requestsBody,
      ...records.map(requestRow),
      !records.length && h("tr", {}, h("td", { colspan: 6 }, "No requests yet.")),
    );
  }

  const stop = watchHistory((history, error) => {
    if (error) status.textContent = `The runner's history is unavailable: ${error}`;
    if (history) {
      const samples = history.samples.length;
      status.textContent = error
        ? status.textContent
        : `${samples} sample${samples === 1 ? "" : "s"}, one every ${history.interval_seconds} s, over the last ${history.window_seconds / 60} min`;
      fill(chartsHolder, ...charts(history));
    }
    refreshRequests().catch((failure: unknown) => {
      requestsMessage.textContent = describe(failure);
    });
  });
  return stop;
}
