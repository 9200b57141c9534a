import { lines, send } from "./api.js";
export class StreamError extends Error {
}
export async function streamChat(request, signal, onText) {
    let sent = performance.now();
    let first = null;
    let last = sent;
    let pieces = 0;
    let counted = null;
    let done = false;
    try {
        const body = { ...request, stream: true, stream_options: { include_usage: true } };
        const response = await send("POST", "/engines/v1/chat/completions", {
            body,
            signal,
            onFetch: () => {
                sent = performance.now();
            },
        });
        for await (const line of lines(response)) {
            if (!line.startsWith("data:"))
                continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") {
                done = true;
                break;
            }
            const chunk = JSON.parse(data);
            if (chunk.error) {
                throw new StreamError(typeof chunk.error === "string" ? chunk.error : (chunk.error.message ?? data));
            }
            if (chunk.usage?.completion_tokens !== undefined)
                counted = chunk.usage.completion_tokens;
            const delta = chunk.choices?.[0]?.delta;
            const content = delta?.content ?? "";
            const reasoning = delta?.reasoning_content ?? "";
            if (!content && !reasoning)
                continue;
            last = performance.now();
            first ??= last;
            pieces += 1;
            onText(content, reasoning);
        }
    }
    catch (error) {
        if (!signal.aborted)
            throw error;
    }
    if (!done && !signal.aborted)
        throw new StreamError("the answer ended before the runner said it was complete");
    const tokens = counted ?? pieces;
    const generating = first === null ? 0 : (last - first) / 1000;
    return {
        ttft: first === null ? null : (first - sent) / 1000,
        tokensPerSecond: tokens > 1 && generating > 0 ? (tokens - 1) / generating : null,
        tokens,
    };
}
