import { describe, getJSON } from "./api.js";
export const POLL_MS = 5000;
const listeners = new Set();
let latest = null;
let failure = null;
let timer;
let polling = false;
let again = false;
export function watchHistory(listener) {
    listeners.add(listener);
    if (latest || failure)
        listener(latest, failure);
    return () => listeners.delete(listener);
}
async function poll() {
    window.clearTimeout(timer);
    polling = true;
    again = false;
    try {
        try {
            latest = await getJSON("/engines/history");
            failure = null;
        }
        catch (error) {
            failure = describe(error);
        }
        for (const listener of listeners)
            listener(latest, failure);
    }
    finally {
        polling = false;
        if (again)
            void poll();
        else
            timer = window.setTimeout(() => void poll(), POLL_MS);
    }
}
export function startHistory() {
    if (timer === undefined && !polling)
        void poll();
}
export function refreshHistory() {
    if (polling)
        again = true;
    else
        void poll();
}
