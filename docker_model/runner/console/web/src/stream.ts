// A streamed chat completion (POST /engines/v1/chat/completions, `stream: true`): the text as it comes, and
// the figures of the answer (time to first token, tokens per second).

import { lines, send } from "./api.js";

export interface Turn {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface Figures {
  ttft: number | null; // seconds from the request's fetch (not the waits before it) to the first token
  tokensPerSecond: number | null;
  tokens: number;
}

export interface ChatRequest {
  model: string;
  messages: Turn[];
  temperature: number;
  max_tokens: number;
}

interface Chunk {
  choices?: { delta?: { content?: string | null; reasoning_content?: string | null } }[];
  usage?: { completion_tokens?: number } | null;
  error?: { message?: string } | string;
}

export class StreamError extends Error {}

/** Streams an answer, calling `onText` with each piece; resolves with its figures, also when `signal` stops it. */
export async function streamChat(
  request: ChatRequest,
  signal: AbortSignal,
  onText: (content: string, reasoning: string) => void,
): Promise<Figures> {
  let sent = performance.now();
  let first: number | null = null;
  let last = sent;
  let pieces = 0;
  let counted: number | null = null;
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
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") {
        done = true;
        break;
      }
      const chunk = JSON.parse(data) as Chunk;
      if (chunk.error) {
        throw new StreamError(typeof chunk.error === "string" ? chunk.error : (chunk.error.message ?? data));
      }
      if (chunk.usage?.completion_tokens !== undefined) counted = chunk.usage.completion_tokens;
      const delta = chunk.choices?.[0]?.delta;
      const content = delta?.content ?? "";
      const reasoning = delta?.reasoning_content ?? "";
      if (!content && !reasoning) continue;
      last = performance.now();
      first ??= last;
      pieces += 1;
      onText(content, reasoning);
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
  if (!done && !signal.aborted) throw new StreamError("the answer ended before the runner said it was complete");
  const tokens = counted ?? pieces; // a stopped answer has no usage: each piece is one token
  const generating = first === null ? 0 : (last - first) / 1000;
  return {
    ttft: first === null ? null : (first - sent) / 1000,
    tokensPerSecond: tokens > 1 && generating > 0 ? (tokens - 1) / generating : null,
    tokens,
  };
}
