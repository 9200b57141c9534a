import { signIn, storedToken } from "./signin.js";
export const SECRET_HEADER = "X-Docker-Model-Secret";
export class ApiError extends Error {
}
let secret = null;
function sessionSecret() {
    secret ??= getJSON("/console/session").then((answer) => answer.secret, (error) => {
        secret = null;
        throw error;
    });
    return secret;
}
async function errorMessage(response) {
    const text = await response.text();
    try {
        const body = JSON.parse(text);
        const message = typeof body.error === "string" ? body.error : body.error?.message;
        if (message)
            return message;
    }
    catch {
    }
    return text.trim() || `${response.status} ${response.statusText}`;
}
export async function send(method, path, options = {}) {
    const changes = method !== "GET" && method !== "HEAD";
    for (let secretRetried = false;;) {
        const headers = new Headers({ Accept: "application/json" });
        const token = storedToken();
        if (token)
            headers.set("Authorization", `Bearer ${token}`);
        if (options.body !== undefined)
            headers.set("Content-Type", "application/json");
        if (changes)
            headers.set(SECRET_HEADER, await sessionSecret());
        options.onFetch?.();
        const response = await fetch(path, {
            method,
            headers,
            body: options.body === undefined ? null : JSON.stringify(options.body),
            signal: options.signal ?? null,
            cache: "no-store",
            credentials: "omit",
        });
        if (response.ok)
            return response;
        const message = await errorMessage(response);
        if (response.status === 401) {
            await signIn(message);
            continue;
        }
        if (response.status === 403 && changes && !secretRetried && message.includes(SECRET_HEADER)) {
            secret = null;
            secretRetried = true;
            continue;
        }
        throw new ApiError(message);
    }
}
export async function getJSON(path) {
    return (await send("GET", path)).json();
}
export async function sendJSON(method, path, body) {
    return (await send(method, path, { body })).json();
}
export async function* lines(response) {
    if (!response.body)
        return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
        const { value, done } = await reader.read();
        if (done)
            break;
        buffered += value;
        const parts = buffered.split("\n");
        buffered = parts.pop() ?? "";
        yield* parts;
    }
    if (buffered)
        yield buffered;
}
export function modelPath(reference, suffix = "") {
    return `/models/${encodeURI(reference)}${suffix}`;
}
export function describe(error) {
    return error instanceof Error ? error.message : String(error);
}
