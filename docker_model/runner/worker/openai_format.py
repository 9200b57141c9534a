"""OpenAI response objects for chat and text completions, and their SSE chunks.

A streamed token costs one `json.dumps` of its text: the rest of each chunk is encoded once per
response.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

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


class CompletionFormat:
    """Shapes one response of either endpoint: `chat` (messages, deltas) or text completions."""

    def __init__(self, chat: bool, model: str):
        self.chat = chat
        self.id = new_id("chatcmpl" if chat else "cmpl")
        self.created = int(time.time())
        self.model = model
        self.object = "chat.completion" if chat else "text_completion"
        self.chunk_object = "chat.completion.chunk" if chat else "text_completion"
        head = {"id": self.id, "object": self.chunk_object, "created": self.created, "model": model}
        self._head = b"data: " + json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"choices":['
        self._content_open = b'{"index":0,"delta":{"content":' if chat else b'{"index":0,"text":'
        self._content_close = (b"}" if chat else b"") + b',"logprobs":null,"finish_reason":null}]}\n\n'

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def content_chunk(self, text: str) -> bytes:
        return self._head + self._content_open + json.dumps(text).encode() + self._content_close

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
        if self.chat:
            choice["delta"] = delta
        else:
            choice["text"] = delta.get("content", "")
        return sse({**self._envelope(self.chunk_object), "choices": [choice]})

    def usage_chunk(self, usage: dict[str, Any]) -> bytes:
        return sse({**self._envelope(self.chunk_object), "choices": [], "usage": usage})

    def response(
        self,
        text: str,
        reasoning: str,
        finish_reason: str,
        usage: dict[str, Any],
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
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
        return {
            **self._envelope(self.object),
            "choices": [choice],
            "usage": usage,
        }


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
