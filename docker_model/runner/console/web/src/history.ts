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

/** Calls `listener` with each answer (and at once with the last one); returns the call that stops it. */
export function watchHistory(listener: Listener): () => void {
  listeners.add(listener);
  if (latest || failure) listener(latest, failure);
  return () => listeners.delete(listener);
}

async function poll(): Promise<void> {
  try {
    latest = await getJSON<History>("/engines/history");
    failure = null;
  } catch (error) {
    failure = describe(error);
  }
  for (const listener of listeners) listener(latest, failure);
  timer = window.setTimeout(() => void poll(), POLL_MS);
}

/** Starts polling (once); `refreshHistory` asks again now, as after an action that changes what it shows. */
export function startHistory(): void {
  if (timer === undefined) void poll();
}

export function refreshHistory(): void {
  window.clearTimeout(timer);
  void poll();
}
