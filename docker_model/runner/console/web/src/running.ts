// The Running view: what `docker model ps` shows, with a keep-alive countdown and unload.

import { describe, getJSON, sendJSON } from "./api.js";
import { button, fill, h } from "./dom.js";
import { bytes, displayName, duration } from "./format.js";
import { refreshHistory } from "./history.js";
import type { RunningModel } from "./types.js";

const COLUMNS = [
  "Name",
  "State",
  "Context per sequence",
  "Sequences",
  "Estimated memory",
  "Measured memory",
  "Unloads in",
  "Actions",
];

function state(model: RunningModel): string {
  return model.loading ? "Loading" : model.in_use ? "Answering" : "Idle";
}

/** What the keep-alive leaves: a countdown while idle, else why there is none. */
function countdown(model: RunningModel, now: number): string {
  if (model.loading) return "—";
  if (model.until === null) return model.in_use ? "after its requests" : "never";
  return duration(model.until - now);
}

export function mountRunning(main: HTMLElement): () => void {
  const message = h("p", { role: "alert", class: "error" });
  const body = h("tbody");
  const table = h(
    "table",
    {},
    h("caption", {}, "Running models"),
    h("thead", {}, h("tr", {}, ...COLUMNS.map((name) => h("th", { scope: "col" }, name)))),
    body,
  );
  fill(main, h("h2", {}, "Running"), message, h("div", { class: "table-wrap" }, table));

  let models: RunningModel[] = [];
  let shown = "";
  const countdowns = new Map<HTMLElement, RunningModel>();
  const report = (error: unknown) => {
    message.textContent = describe(error);
  };

  function render(): void {
    const key = JSON.stringify(models);
    if (key === shown) return;
    shown = key;
    const focused = body.contains(document.activeElement) ? document.activeElement?.getAttribute("aria-label") : null;
    countdowns.clear();
    const now = Date.now() / 1000;
    fill(
      body,
      ...models.map((model) => {
        const name = displayName(model.model_name);
        const left = h("td", {}, countdown(model, now));
        countdowns.set(left, model);
        return h(
          "tr",
          {},
          h("th", { scope: "row" }, name),
          h("td", {}, state(model)),
          h("td", {}, model.context_size === null ? "—" : String(model.context_size)),
          h("td", {}, model.sequences === null ? "—" : String(model.sequences)),
          h("td", {}, bytes(model.memory_estimated)),
          h("td", {}, bytes(model.memory_measured)),
          left,
          h(
            "td",
            {},
            button("Unload", () => void unload(model).catch(report), { "aria-label": `Unload ${name}` }),
          ),
        );
      }),
      !models.length && h("tr", {}, h("td", { colspan: COLUMNS.length }, "No model is loaded.")),
    );
    if (focused) body.querySelector<HTMLElement>(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
  }

  async function refresh(): Promise<void> {
    models = await getJSON<RunningModel[]>("/engines/ps");
    message.textContent = "";
    render();
  }

  async function unload(model: RunningModel): Promise<void> {
    await sendJSON("POST", "/engines/unload", { models: [model.model_id] });
    await refresh();
    refreshHistory();
    main.focus();
  }

  void refresh().catch(report);
  const poll = window.setInterval(() => void refresh().catch(report), 5000);
  const tick = window.setInterval(() => {
    const now = Date.now() / 1000;
    for (const [cell, model] of countdowns) cell.textContent = countdown(model, now);
  }, 1000);
  return () => {
    window.clearInterval(poll);
    window.clearInterval(tick);
  };
}
