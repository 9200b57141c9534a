// The runner's API, as the console calls it: the token (once signed in) on every request, the session secret
// on every state-changing one, a 401 answered by the sign-in dialog and the request sent again.

import { signIn, storedToken } from "./signin.js";

export const SECRET_HEADER = "X-Docker-Model-Secret";

export class ApiError extends Error {}

let secret: Promise<string> | null = null;

function sessionSecret(): Promise<string> {
  secret ??= getJSON<{ secret: string }>("/console/session").then(
    (answer) => answer.secret,
    (error: unknown) => {
      secret = null;
      throw error;
    },
  );
  return secret;
}

/** The message of an error answer: OpenAI's `{"error": {"message"}}`, Ollama's `{"error": "..."}`, or its text. */
async function errorMessage(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: string | { message?: string } };
    const message = typeof body.error === "string" ? body.error : body.error?.message;
    if (message) return message;
  } catch {
    // not JSON: its text says it
  }
  return text.trim() || `${response.status} ${response.statusText}`;
}

interface Options {
  body?: unknown;
  signal?: AbortSignal;
  onFetch?: () => void; // called right before each fetch: after any wait for the secret or a sign-in
}

/** Sends a request; a non-2xx answer is thrown as an ApiError carrying the runner's message. */
export async function send(method: string, path: string, options: Options = {}): Promise<Response> {
  const changes = method !== "GET" && method !== "HEAD";
  for (let secretRetried = false; ; ) {
    const headers = new Headers({ Accept: "application/json" });
    const token = storedToken();
    if (token) headers.set("Authorization", `Bearer ${token}`);
    if (options.body !== undefined) headers.set("Content-Type", "application/json");
    if (changes) headers.set(SECRET_HEADER, await sessionSecret());
    options.onFetch?.();
    const response = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? null : JSON.stringify(options.body),
      signal: options.signal ?? null,
      cache: "no-store",
      credentials: "omit",
    });
    if (response.ok) return response;
    const message = await errorMessage(response);
    if (response.status === 401) {
      await signIn(message);
      continue;
    }
    if (response.status === 403 && changes && !secretRetried && message.includes(SECRET_HEADER)) {
      secret = null; // the runner restarted since the page asked: ask again, once
      secretRetried = true;
      continue;
    }
    throw new ApiError(message);
  }
}

export async function getJSON<T>(path: string): Promise<T> {
  return (await send("GET", path)).json() as Promise<T>;
}

export async function sendJSON<T>(method: string, path: string, body?: unknown): Promise<T> {
  return (await send(method, path, { body })).json() as Promise<T>;
}

/** Reads a response body as lines of text as they arrive (JSON lines, server-sent events). */
export async function* lines(response: Response): AsyncGenerator<string> {
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    yield* parts;
  }
  if (buffered) yield buffered;
}

/** The path of a model's route: references keep their `/` and `:` (the runner reads the name whole). */
export function modelPath(reference: string, suffix = ""): string {
  return `/models/${encodeURI(reference)}${suffix}`;
}

/** A message fit to show for a failure of any kind. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
