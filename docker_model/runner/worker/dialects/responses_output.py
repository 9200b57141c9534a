"""The output of an OpenAI Response, written as the answer comes: its items (reasoning, a message, function
calls) and the stream events that report them, from `response.created` to `response.completed` (or
`response.incomplete` when the answer hit `max_output_tokens`, `response.failed` when it failed). A whole
(not streamed) response is written the same way, its events left unsent."""

from __future__ import annotations

import time
import uuid
from typing import Any

from docker_model.runner.worker.answers import Ending
from docker_model.runner.worker.openai_format import sse_event

# The kinds of item that text streams into: the item, its content part, and its delta and done events.
_TEXT_ITEMS: dict[str, tuple[dict[str, Any], str, str]] = {
    "message": ({"type": "message", "role": "assistant"}, "output_text", "response.output_text"),
    "reasoning": ({"type": "reasoning", "summary": []}, "reasoning_text", "response.reasoning_text"),
}
_ID_PREFIXES = {"message": "msg", "reasoning": "rs", "function_call": "fc"}


def _item_id(kind: str) -> str:
    return f"{_ID_PREFIXES[kind]}_{uuid.uuid4().hex}"


def _part(kind: str, text: str) -> dict[str, Any]:
    if kind == "output_text":
        return {"type": kind, "text": text, "annotations": [], "logprobs": []}
    return {"type": kind, "text": text}


def usage(input_tokens: int, output_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": input_tokens - cached_tokens},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


class ResponseWriter:
    """One response: `response` is the object as it stands; each method returns the events it makes."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = {**response, "status": "in_progress", "output": [], "usage": None}
        self._sequence = 0
        self._open: dict[str, Any] | None = None  # the item text is streaming into
        self._text = ""

    def start(self) -> list[bytes]:
        return [self._event("response.created", response=self.response), self._in_progress()]

    def _in_progress(self) -> bytes:
        return self._event("response.in_progress", response=self.response)

    def text(self, content: str, reasoning: str) -> list[bytes]:
        """Events for newly generated text: reasoning first, then the answer's."""
        return [*self._stream("reasoning", reasoning), *self._stream("message", content)]

    def end(self, ending: Ending, used: dict[str, Any]) -> list[bytes]:
        """Events for the answer's end: its held-back text, its calls, and the finished response."""
        events = self.text(ending.content, ending.reasoning)
        incomplete = ending.finish == "length"
        if not self.response["output"] and not ending.calls:
            events += self._open_item("message")  # an answer with no text still has its message
        events += self._close("incomplete" if incomplete else "completed")
        for call in ending.calls:
            item = {"id": _item_id("function_call"), "type": "function_call", "status": "in_progress"}
            item |= {"call_id": call.id, "name": call.name, "arguments": ""}
            index = self._add(item)
            events.append(self._event("response.output_item.added", output_index=index, item=item))
            where = {"item_id": item["id"], "output_index": index}
            events.append(self._event("response.function_call_arguments.delta", **where, delta=call.arguments))
            events.append(self._event("response.function_call_arguments.done", **where, arguments=call.arguments))
            item.update(status="completed", arguments=call.arguments)
            events.append(self._event("response.output_item.done", output_index=index, item=item))
        self.response.update(
            status="incomplete" if incomplete else "completed",
            incomplete_details={"reason": "max_output_tokens"} if incomplete else None,
            completed_at=int(time.time()),
            usage=used,
        )
        return [*events, self._event(f"response.{self.response['status']}", response=self.response)]

    def fail(self, message: str) -> bytes:
        self.response.update(status="failed", error={"code": "server_error", "message": message})
        return self._event("response.failed", response=self.response)

    # -- items -------------------------------------------------------------------------------------------

    def _stream(self, kind: str, text: str) -> list[bytes]:
        if not text:
            return []
        events = []
        if self._open is None or self._open["type"] != kind:
            events = [*self._close("completed"), *self._open_item(kind)]
        assert self._open is not None
        self._text += text
        delta: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
        events.append(self._event(f"{_TEXT_ITEMS[kind][2]}.delta", **self._where(), delta=text, **delta))
        return events

    def _open_item(self, kind: str) -> list[bytes]:
        shape, part, _ = _TEXT_ITEMS[kind]
        item = {"id": _item_id(kind), **shape, "status": "in_progress", "content": []}
        index = self._add(item)
        self._open, self._text = item, ""
        return [
            self._event("response.output_item.added", output_index=index, item=item),
            self._event("response.content_part.added", **self._where(), part=_part(part, "")),
        ]

    def _close(self, status: str) -> list[bytes]:
        item = self._open
        if item is None:
            return []
        _, part, events = _TEXT_ITEMS[item["type"]]
        done: dict[str, Any] = {"logprobs": []} if item["type"] == "message" else {}
        finished = [
            self._event(f"{events}.done", **self._where(), text=self._text, **done),
            self._event("response.content_part.done", **self._where(), part=_part(part, self._text)),
        ]
        item.update(status=status, content=[_part(part, self._text)])
        finished.append(
            self._event("response.output_item.done", output_index=len(self.response["output"]) - 1, item=item)
        )
        self._open = None
        return finished

    def _add(self, item: dict[str, Any]) -> int:
        self.response["output"].append(item)
        return len(self.response["output"]) - 1

    def _where(self) -> dict[str, Any]:
        assert self._open is not None
        return {"item_id": self._open["id"], "output_index": len(self.response["output"]) - 1, "content_index": 0}

    def _event(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse_event(kind, event)
