import { describe, lines, send } from "./api.js";
import { fill, h } from "./dom.js";
import { bytes, shortId } from "./format.js";
export class PullFailed extends Error {
}
export async function pull(reference, region) {
    const status = h("p", { role: "status" }, `Pulling ${reference}…`);
    const layers = h("div", { class: "layers" });
    const bars = new Map();
    fill(region, h("h3", {}, "Pull progress"), status, layers);
    region.hidden = false;
    let response;
    try {
        response = await send("POST", "/models/create", { body: { from: reference } });
    }
    catch (error) {
        status.textContent = `Pull failed: ${describe(error)}`;
        throw error;
    }
    let finished = false;
    for await (const text of lines(response)) {
        if (!text.trim())
            continue;
        const line = JSON.parse(text);
        if (line.type === "error") {
            status.textContent = `Pull failed: ${line.message}`;
            throw new PullFailed(line.message);
        }
        status.textContent = line.message;
        finished ||= line.type === "success";
        const layer = line.layer;
        if (!layer)
            continue;
        let shown = bars.get(layer.id);
        if (!shown) {
            const name = `Layer ${shortId(layer.id)}`;
            const bar = h("progress", { max: layer.size, value: 0, "aria-label": name, "aria-valuemin": 0 });
            const figure = h("span", { class: "figure" });
            layers.append(h("div", { class: "layer" }, h("span", {}, name), bar, figure));
            shown = { bar, figure };
            bars.set(layer.id, shown);
        }
        const max = Math.max(layer.size, 1);
        shown.bar.max = max;
        shown.bar.value = Math.min(layer.current, max);
        shown.bar.setAttribute("aria-valuemax", String(max));
        shown.bar.setAttribute("aria-valuenow", String(Math.min(layer.current, max)));
        shown.figure.textContent = `${bytes(layer.current)} of ${bytes(layer.size)}`;
    }
    if (!finished) {
        status.textContent = "Pull failed: the runner closed the stream before the pull finished";
        throw new PullFailed(status.textContent);
    }
}
