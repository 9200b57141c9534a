// The console's entry point: hash routes (#/models, #/chat, #/running, #/monitor), the alerts on every view.

import { mountAlerts } from "./alerts.js";
import { mountChat } from "./chat.js";
import { startHistory } from "./history.js";
import { mountModels } from "./models.js";
import { mountMonitor } from "./monitor.js";
import { mountRunning } from "./running.js";

type View = (main: HTMLElement) => () => void;

const VIEWS: Record<string, { title: string; mount: View }> = {
  "#/models": { title: "Models", mount: mountModels },
  "#/chat": { title: "Chat", mount: mountChat },
  "#/running": { title: "Running", mount: mountRunning },
  "#/monitor": { title: "Monitor", mount: mountMonitor },
};
const DEFAULT_ROUTE = "#/models";

let unmount: (() => void) | null = null;

function route(): void {
  const view = VIEWS[location.hash];
  if (!view) {
    location.replace(DEFAULT_ROUTE); // fires hashchange, which routes again
    return;
  }
  const main = document.getElementById("main");
  if (!main) return;
  unmount?.();
  unmount = view.mount(main);
  document.title = `${view.title} · Docker Model Runner console`;
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    if (link.getAttribute("href") === location.hash) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function start(): void {
  const alerts = document.getElementById("alerts");
  if (alerts) mountAlerts(alerts);
  startHistory();
  window.addEventListener("hashchange", () => {
    route();
    document.getElementById("main")?.focus(); // a keyboard user lands in the view they chose
  });
  route();
}

start();
