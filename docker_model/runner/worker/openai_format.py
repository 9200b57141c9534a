"""OpenAI response objects for chat and text completions, and their SSE chunks.

A streamed token costs one `json.dumps` of its text: the rest of each chunk is encoded once per
response.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from .logprobs import TokenLogprob

SSE_DONE = b"data: [DONE]\n\n"  # the last event of an OpenAI stream


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    """OpenAI's usage; `cached_tokens`: prompt tokens reused from the KV cache rather than evaluated."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def sse_event(kind: str, obj: Any) -> bytes:
    """A named SSE event (`event: kind`), as Anthropic's and OpenAI's Responses streams send them."""
    return f"event: {kind}\n".encode() + sse(obj)


class CompletionFormat:
    """Shapes one response of either endpoint: `chat` (messages, deltas) or text completions."""

    def __init__(self, chat: bool, model: str, include_usage: bool = False):
        self.chat = chat
        self.include_usage = include_usage  # a stream ends with a usage chunk, and every other chunk says `usage: null`
        self.id = new_id("chatcmpl" if chat else "cmpl")
        self.created = int(time.time())
        self.model = model
        self.object = "chat.completion" if chat else "text_completion"
        self.chunk_object = "chat.completion.chunk" if chat else "text_completion"
        head = {"id": self.id, "object": self.chunk_object, "created": self.created, "model": model}
        self._head = b"data: " + json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"choices":['
        self._content_open = b'{"index":0,"delta":{"content":' if chat else b'{"index":0,"text":'
        usage_null = b',"usage":null' if include_usage else b""
        self._content_close = (
            (b"}" if chat else b"") + b',"logprobs":null,"finish_reason":null}]' + usage_null + b"}\n\n"
        )

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def _chunk_envelope(self) -> dict[str, Any]:
        return {**self._envelope(self.chunk_object), **({"usage": None} if self.include_usage else {})}

    def content_chunk(self, text: str, index: int = 0, logprobs: dict[str, Any] | None = None) -> bytes:
        if index or logprobs is not None:
            return self.chunk({"content": text}, index=index, logprobs=logprobs)
        return self._head + self._content_open + json.dumps(text).encode() + self._content_close

    def chunk(
        self,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        index: int = 0,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        choice: dict[str, Any] = {"index": index, "logprobs": logprobs, "finish_reason": finish_reason}
        if self.chat:
            choice["delta"] = delta
        else:
            choice["text"] = delta.get("content", "")
        return sse({**self._chunk_envelope(), "choices": [choice]})

    def usage_chunk(self, usage: dict[str, Any]) -> bytes:
        return sse({**self._envelope(self.chunk_object), "choices": [], "usage": usage})

    def choice(
        self,
        index: int,
        text: str,
        reasoning: str,
        finish_reason: str,
        tool_calls: list[dict[str, Any]] | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One answer of a whole (not streamed) response."""
        choice: dict[str, Any] = {"index": index, "logprobs": logprobs, "finish_reason": finish_reason}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            if reasoning:
                message["reasoning_content"] = reasoning
            if tool_calls:
                message["content"] = text or None
                message["tool_calls"] = tool_calls
            choice["message"] = message
        else:
            choice["text"] = text
        return choice

    def response(self, choices: list[dict[str, Any]], usage: dict[str, Any]) -> dict[str, Any]:
        return {**self._envelope(self.object), "choices": choices, "usage": usage}


class LogprobsFormat:
    """One answer's token logprobs, in the shape of its endpoint: chat's `content` entries, or the
    completions endpoint's parallel lists with each token's offset in the answer's text."""

    def __init__(self, chat: bool, piece: Callable[[int], bytes]):
        self.chat = chat
        self.piece = piece
        self.offset = 0  # characters of the answer's text before the next token (completions)

    def part(self, entries: list[TokenLogprob]) -> dict[str, Any]:
        """The logprobs of `entries`, the tokens that come next in the answer."""
        if self.chat:
            return {"content": [self._chat_entry(entry) for entry in entries], "refusal": None}
        tokens = [self._text(entry.token) for entry in entries]
        offsets = []
        for token in tokens:
            offsets.append(self.offset)
            self.offset += len(token)
        return {
            "tokens": tokens,
            "token_logprobs": [entry.logprob for entry in entries],
            "top_logprobs": [{self._text(t): logprob for t, logprob in entry.top} for entry in entries],
            "text_offset": offsets,
        }

    def _text(self, token: int) -> str:
        return self.piece(token).decode("utf-8", "replace")

    def _chat_entry(self, entry: TokenLogprob) -> dict[str, Any]:
        top = [self._alternative(token, logprob) for token, logprob in entry.top]
        return {**self._alternative(entry.token, entry.logprob), "top_logprobs": top}

    def _alternative(self, token: int, logprob: float) -> dict[str, Any]:
        piece = self.piece(token)
        return {"token": piece.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(piece)}


def tool_call_deltas(index: int, call: dict[str, Any]) -> list[dict[str, Any]]:
    """One call as OpenAI streams it: its index, id and name first, then its arguments."""
    function = call["function"]
    head = {
        "index": index,
        "id": call["id"],
        "type": "function",
        "function": {"name": function["name"], "arguments": ""},
    }
    return [
        {"tool_calls": [head]},
        {"tool_calls": [{"index": index, "function": {"arguments": function["arguments"]}}]},
    ]


def embeddings_response(model: str, vectors: list[Any], prompt_tokens: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
