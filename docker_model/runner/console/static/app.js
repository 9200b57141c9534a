import { mountAlerts } from "./alerts.js";
import { mountChat } from "./chat.js";
import { startHistory } from "./history.js";
import { mountModels } from "./models.js";
import { mountMonitor } from "./monitor.js";
import { mountRunning } from "./running.js";
const VIEWS = {
    "#/models": { title: "Models", mount: mountModels },
    "#/chat": { title: "Chat", mount: mountChat },
    "#/running": { title: "Running", mount: mountRunning },
    "#/monitor": { title: "Monitor", mount: mountMonitor },
};
const DEFAULT_ROUTE = "#/models";
let unmount = null;
function route() {
    const view = VIEWS[location.hash];
    if (!view) {
        location.replace(DEFAULT_ROUTE);
        return;
    }
    const main = document.getElementById("main");
    if (!main)
        return;
    unmount?.();
    unmount = view.mount(main);
    document.title = `${view.title} · Docker Model Runner console`;
    for (const link of document.querySelectorAll("nav a")) {
        if (link.getAttribute("href") === location.hash)
            link.setAttribute("aria-current", "page");
        else
            link.removeAttribute("aria-current");
    }
}
function start() {
    const alerts = document.getElementById("alerts");
    if (alerts)
        mountAlerts(alerts);
    startHistory();
    window.addEventListener("hashchange", () => {
        route();
        document.getElementById("main")?.focus();
    });
    route();
}
start();
