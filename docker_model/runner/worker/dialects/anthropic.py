"""Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`), translated onto the worker's chat
path: the request becomes OpenAI's chat body (`anthropic_request.py`), the answer Anthropic's message, or
its stream of events (`message_start`, then each content block started, given deltas and stopped, then
`message_delta` with the stop reason and usage, and `message_stop`).

The engine does not say whether a stop sequence or the model's own end of turn ended an answer (both are
"stop"), so `stop_reason` is then always "end_turn" and `stop_sequence` null."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from docker_model.runner.shared.asgi import EventStreamResponse
from docker_model.runner.shared.error_body import error_body
from docker_model.runner.worker.answers import Choice, pieces, prompt_tokens, whole_text
from docker_model.runner.worker.jobs import FINISH_ERROR
from docker_model.runner.worker.openai_format import sse_event
from docker_model.runner.worker.schemas import ChatCompletionBody, parse_body
from docker_model.runner.worker.tool_calls import ToolCall

from .anthropic_request import CountTokensBody, MessagesBody, chat_fields

if TYPE_CHECKING:
    from docker_model.runner.worker.routes import OpenAIHandlers

MESSAGES = "/v1/messages"
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
DELTAS = {"text": "text_delta", "thinking": "thinking_delta"}
STARTS = {"text": {"type": "text", "text": ""}, "thinking": {"type": "thinking", "thinking": "", "signature": ""}}


def routes(api: OpenAIHandlers) -> list[Route]:
    dialect = AnthropicDialect(api)
    return [
        Route(MESSAGES, dialect.messages, methods=["POST"]),
        Route(f"{MESSAGES}/count_tokens", dialect.count_tokens, methods=["POST"]),
    ]


class AnthropicDialect:
    def __init__(self, api: OpenAIHandlers):
        self.api = api

    async def messages(self, request: Request) -> Response:
        body = parse_body(MessagesBody, await request.body())
        [choice] = self.api.chat_choices(_chat_body(body))
        self.api.submit(choice.job)
        model = body.model or self.api.state.model_name
        if body.stream:
            return EventStreamResponse(stream_events(choice, model))  # type: ignore[return-value]
        content, reasoning, ending = choice.whole(await whole_text(choice, request.receive))
        blocks = [*_thinking_blocks(reasoning), *_text_blocks(content), *map(_tool_use, ending.calls)]
        return JSONResponse(_message(model, blocks, _stop_reason(ending.finish), _usage(choice)))

    async def count_tokens(self, request: Request) -> Response:
        body = parse_body(CountTokensBody, await request.body())
        prompt, _ = self.api.render(_chat_body(body))
        return JSONResponse({"input_tokens": len(self.api.model.tokenize(prompt))})


def _chat_body(body: CountTokensBody) -> ChatCompletionBody:
    return parse_body(ChatCompletionBody, json.dumps(chat_fields(body)).encode())


def _stop_reason(finish: str) -> str:
    return STOP_REASONS.get(finish, "end_turn")


def _usage(choice: Choice) -> dict[str, int]:
    """Anthropic's usage: `input_tokens` are the prompt tokens evaluated, those found in the KV cache apart."""
    prompt, completion, cached = prompt_tokens([choice])
    return {
        "input_tokens": prompt - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": completion,
    }


def _message(model: str, content: list[dict[str, Any]], stop_reason: str | None, usage: dict[str, int]) -> dict:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _text_blocks(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}] if text else []


def _thinking_blocks(reasoning: str) -> list[dict[str, Any]]:
    """The model's reasoning (a model that thinks by its chat template's default); unsigned."""
    return [{"type": "thinking", "thinking": reasoning, "signature": ""}] if reasoning else []


def _tool_use(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": json.loads(call.arguments)}


def _event(kind: str, **fields: Any) -> bytes:
    return sse_event(kind, {"type": kind, **fields})


class _Blocks:
    """An answer's content blocks as it streams: one open at a time, started, given deltas, then stopped."""

    def __init__(self) -> None:
        self.index = -1
        self.open: str | None = None

    def add(self, kind: Literal["text", "thinking"], text: str) -> Iterator[bytes]:
        if not text:
            return
        if self.open != kind:
            yield from self._start(STARTS[kind], kind)
        yield _event("content_block_delta", index=self.index, delta={"type": DELTAS[kind], kind: text})

    def call(self, call: ToolCall) -> Iterator[bytes]:
        yield from self._start({**_tool_use(call), "input": {}}, "tool_use")
        delta = {"type": "input_json_delta", "partial_json": call.arguments}
        yield _event("content_block_delta", index=self.index, delta=delta)

    def close(self) -> Iterator[bytes]:
        if self.open is not None:
            yield _event("content_block_stop", index=self.index)
            self.open = None

    def _start(self, block: dict[str, Any], kind: str) -> Iterator[bytes]:
        yield from self.close()
        self.index += 1
        self.open = kind
        yield _event("content_block_start", index=self.index, content_block=block)


async def stream_events(choice: Choice, model: str) -> AsyncIterator[bytes]:
    """The stream of an answer, from `message_start` (once its prompt is in the cache: usage is known) to
    `message_stop`; a failed answer ends with an `error` event."""
    blocks = _Blocks()
    started = False
    async for _, piece in pieces([choice]):
        if not started:
            started = True
            yield _event("message_start", message=_message(model, [], None, {**_usage(choice), "output_tokens": 0}))
        if piece is not None:
            content, reasoning = choice.read(piece[0])
            for chunk in (*blocks.add("thinking", reasoning), *blocks.add("text", content)):
                yield chunk
            continue
        if choice.job.finish == FINISH_ERROR:
            failure = error_body(choice.job.error or "generation failed", 500, path=MESSAGES)
            yield _event("error", error=failure["error"])
            return
        ending = choice.close()
        for chunk in (*blocks.add("thinking", ending.reasoning), *blocks.add("text", ending.content)):
            yield chunk
        for call in ending.calls:
            for chunk in blocks.call(call):
                yield chunk
        for chunk in blocks.close():
            yield chunk
        delta = {"stop_reason": _stop_reason(ending.finish), "stop_sequence": None}
        yield _event("message_delta", delta=delta, usage=_usage(choice))
        yield _event("message_stop")
