// The Models view: the store as a table; pull, remove (with a confirmation naming the exact reference and
// ID, tag versus model), tag and inspect. No purge here.

import { describe, getJSON, modelPath, send, sendJSON } from "./api.js";
import { choose } from "./dialogs.js";
import { button, field, fill, h } from "./dom.js";
import { displayName, shortId } from "./format.js";
import { pull } from "./pull.js";
import type { ModelInfo, RunningModel } from "./types.js";

const COLUMNS = ["Name", "Parameters", "Quantization", "Size", "Context", "Capabilities", "Loaded", "Actions"];

/** The context a model runs with unless configured: its packaged one, else the trained length in its GGUF. */
function context(model: ModelInfo): string {
  const config = model.config ?? {};
  if (config.context_size) return String(config.context_size);
  const metadata = config.gguf ?? {};
  const architecture = config.architecture ?? metadata["general.architecture"];
  const trained = metadata[`${String(architecture)}.context_length`];
  return typeof trained === "number" || typeof trained === "string" ? String(trained) : "—";
}

/** A cell's text: "—" when the value is missing, else its text (a model's config may hold any JSON type). */
function cell(value: unknown): string {
  if (value === null || value === undefined || value === "") return "—";
  if (Array.isArray(value)) return value.map(String).join(", ") || "—";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

interface Row {
  model: ModelInfo;
  reference: string; // the exact reference actions name: a full tag, or the ID of an untagged model
  name: string;
}

function rows(models: ModelInfo[]): Row[] {
  const all = models.flatMap((model) =>
    model.tags.length
      ? model.tags.map((tag) => ({ model, reference: tag, name: displayName(tag) }))
      : [{ model, reference: model.id, name: shortId(model.id) }],
  );
  return all.sort((a, b) => a.name.localeCompare(b.name));
}

export function mountModels(main: HTMLElement): () => void {
  const message = h("p", { role: "alert", class: "error" });
  const target = h("input", { type: "text", name: "model", placeholder: "ai/smollm2", autocomplete: "off" });
  const pullButton = h("button", { type: "submit" }, "Pull");
  const progress = h("section", { "aria-label": "Pull progress", class: "pull-progress", hidden: true });
  const body = h("tbody");
  const table = h(
    "table",
    {},
    h("caption", {}, "Models"),
    h("thead", {}, h("tr", {}, ...COLUMNS.map((name) => h("th", { scope: "col" }, name)))),
    body,
  );
  const form = h("form", { class: "inline-form" }, field("Model to pull", target), pullButton);
  fill(main, h("h2", {}, "Models"), form, progress, message, h("div", { class: "table-wrap" }, table));

  let alive = true;
  let shown = "";
  const report = (error: unknown) => {
    message.textContent = describe(error);
  };

  async function refresh(): Promise<void> {
    const [models, running] = await Promise.all([
      getJSON<ModelInfo[]>("/models"),
      getJSON<RunningModel[]>("/engines/ps"),
    ]);
    if (!alive) return;
    const loaded = new Map(running.map((entry) => [entry.model_id, entry.loading ? "Loading" : "Yes"]));
    const list = rows(models);
    const key = JSON.stringify([models, [...loaded]]);
    if (key === shown) return; // unchanged: keep the rows, and the focus in them
    shown = key;
    const focused = body.contains(document.activeElement) ? document.activeElement?.getAttribute("aria-label") : null;
    fill(
      body,
      ...list.map((row) => tableRow(row, loaded.get(row.model.id) ?? "No")),
      !list.length && h("tr", {}, h("td", { colspan: COLUMNS.length }, "No models yet: pull one above.")),
    );
    if (focused) body.querySelector<HTMLElement>(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
  }

  function tableRow(row: Row, loaded: string): HTMLTableRowElement {
    const config = row.model.config ?? {};
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, row.name),
      h("td", {}, cell(config.parameters)),
      h("td", {}, cell(config.quantization)),
      h("td", {}, cell(config.size)),
      h("td", {}, context(row.model)),
      h("td", {}, cell(row.model.capabilities)),
      h("td", {}, loaded),
      h(
        "td",
        {},
        h(
          "div",
          { class: "row-actions" },
          button("Inspect", () => void inspect(row).catch(report), { "aria-label": `Inspect ${row.name}` }),
          button("Tag", () => void tag(row).catch(report), { "aria-label": `Tag ${row.name}` }),
          button("Remove", () => void remove(row).catch(report), { "aria-label": `Remove ${row.name}` }),
        ),
      ),
    );
  }

  async function remove(row: Row): Promise<void> {
    const { model, reference } = row;
    const untagsOnly = model.tags.length > 1 && model.tags.includes(reference);
    const what = untagsOnly
      ? [
          h("p", {}, "This removes the tag ", h("code", {}, reference), " only."),
          h("p", {}, "The model ", h("code", {}, model.id), " stays, with its other tags: ",
            model.tags.filter((tag) => tag !== reference).join(", "), "."),
        ]
      : [
          h("p", {}, "This removes the model ", h("code", {}, model.id), ", named ", h("code", {}, reference), "."),
          h("p", {}, "Its files are deleted (layers another model uses stay); a worker serving it stops."),
        ];
    const choice = await choose("Remove model", what, [
      { label: "Cancel", value: "cancel", focus: true },
      { label: "Remove", value: "remove", primary: true },
    ]);
    if (choice !== "remove") return;
    message.textContent = "";
    await send("DELETE", modelPath(reference));
    await refresh();
    target.focus(); // the row and its button are gone
  }

  async function tag(row: Row): Promise<void> {
    const input = h("input", { type: "text", name: "tag", required: true, autocomplete: "off" });
    const dialogForm = h("form", {}, h("p", {}, "A new name for ", h("code", {}, row.reference), ", e.g. myorg/mymodel:v1."),
      field("New tag", input));
    const choice = await choose(`Tag ${row.name}`, [], [
      { label: "Tag", value: "tag", primary: true }, // first: Enter in the field submits with it
      { label: "Cancel", value: "cancel" },
    ], dialogForm);
    const wanted = input.value.trim();
    if (choice !== "tag" || !wanted) return;
    const slash = wanted.lastIndexOf("/");
    const colon = wanted.lastIndexOf(":");
    const [repo, label] = colon > slash ? [wanted.slice(0, colon), wanted.slice(colon + 1)] : [wanted, "latest"];
    const query = new URLSearchParams({ repo, tag: label });
    message.textContent = "";
    await sendJSON("POST", `${modelPath(row.reference, "/tag")}?${query}`);
    await refresh();
  }

  async function inspect(row: Row): Promise<void> {
    const model = await getJSON<ModelInfo>(modelPath(row.reference));
    const details = h("pre", { class: "inspect", tabindex: 0 }, JSON.stringify(model, null, 2));
    await choose(`Inspect ${row.name}`, [details], [{ label: "Close", value: "close", focus: true }]);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const reference = target.value.trim();
    if (!reference) {
      message.textContent = "Name the model to pull, e.g. ai/smollm2";
      target.focus();
      return;
    }
    message.textContent = "";
    pullButton.disabled = true;
    pull(reference, progress)
      .then(() => refresh())
      .catch(report)
      .finally(() => {
        pullButton.disabled = false;
      });
  });

  void refresh().catch(report);
  const timer = window.setInterval(() => void refresh().catch(report), 10000);
  return () => {
    alive = false;
    window.clearInterval(timer);
  };
}
