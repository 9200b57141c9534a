import { fill, h } from "./dom.js";
import { clock } from "./format.js";
import { watchHistory } from "./history.js";
const KINDS = { memory: "Memory", queue: "Queue full", crash: "Worker crashed" };
function item(alert) {
    return h("li", { class: `alert alert-${alert.kind}` }, h("strong", {}, KINDS[alert.kind] ?? alert.kind), alert.model ? ` (${alert.model})` : "", `: ${alert.message} `, h("span", { class: "since" }, `since ${clock(alert.since)}`));
}
export function mountAlerts(region) {
    let shown = "";
    watchHistory((history) => {
        const alerts = history?.alerts ?? [];
        const key = JSON.stringify(alerts);
        if (key === shown)
            return;
        shown = key;
        fill(region, alerts.length
            ? h("ul", {}, ...alerts.map(item))
            : h("p", { class: "visually-hidden" }, "No alerts"));
    });
}
