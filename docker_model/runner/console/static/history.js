import { describe, getJSON } from "./api.js";
export const POLL_MS = 5000;
const listeners = new Set();
let latest = null;
let failure = null;
let timer;
export function watchHistory(listener) {
    listeners.add(listener);
    if (latest || failure)
        listener(latest, failure);
    return () => listeners.delete(listener);
}
async function poll() {
    try {
        latest = await getJSON("/engines/history");
        failure = null;
    }
    catch (error) {
        failure = describe(error);
    }
    for (const listener of listeners)
        listener(latest, failure);
    timer = window.setTimeout(() => void poll(), POLL_MS);
}
export function startHistory() {
    if (timer === undefined)
        void poll();
}
export function refreshHistory() {
    window.clearTimeout(timer);
    void poll();
}
