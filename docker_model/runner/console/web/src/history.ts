// The runner's metrics history (GET /engines/history), polled every 5 s while the page is open: the alerts
// on every view and the monitor's charts read it.

import { describe, getJSON } from "./api.js";
import type { History } from "./types.js";

export const POLL_MS = 5000;

type Listener = (history: History | null, error: string | null) => void;

const listeners = new Set<Listener>();
let latest: History | null = null;
let failure: string | null = null;
let timer: number | undefined;
let polling = false; // a request is in flight: one chain of polls, never two
let again = false; // asked to refresh while one was in flight: poll once more as soon as it ends

/** Calls `listener` with each answer (and at once with the last one); returns the call that stops it. */
export function watchHistory(listener: Listener): () => void {
  listeners.add(listener);
  if (latest || failure) listener(latest, failure);
  return () => listeners.delete(listener);
}

async function poll(): Promise<void> {
  window.clearTimeout(timer);
  polling = true;
  again = false;
  try {
    try {
      latest = await getJSON<History>("/engines/history");
      failure = null;
    } catch (error) {
      failure = describe(error);
    }
    for (const listener of listeners) listener(latest, failure);
  } finally {
    polling = false;
    if (again) void poll();
    else timer = window.setTimeout(() => void poll(), POLL_MS);
  }
}

/** Starts polling (once); `refreshHistory` asks again now, as after an action that changes what it shows. */
export function startHistory(): void {
  if (timer === undefined && !polling) void poll();
}

export function refreshHistory(): void {
  if (polling) again = true; // the answer in flight may predate the change
  else void poll();
}
