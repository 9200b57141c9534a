"""OpenAI's Responses API (`POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`), translated onto the
worker's chat path (`responses_request.py`), answered whole or as Responses stream events
(`responses_output.py`). The worker keeps its recent responses, and the conversations that led to them, in
memory for `previous_response_id` and `GET`: at most `STORE_SIZE`, each for `STORE_SECONDS`, lost when the
model unloads; `store: false` keeps none."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from docker_model.runner.shared.asgi import EventStreamResponse
from docker_model.runner.shared.error_body import APIError
from docker_model.runner.shared.response_ids import (
    STORE_SECONDS,
    STORE_SIZE,
    model_of,
    new_response_id,
    not_found_message,
)
from docker_model.runner.worker.answers import Choice, pieces, prompt_tokens, whole_text
from docker_model.runner.worker.jobs import FINISH_ERROR
from docker_model.runner.worker.schemas import parse_body

from .responses_output import ResponseWriter, usage
from .responses_request import ITEMS, Message, ResponsesBody, chat_body, conversation, item_messages, responses_param

if TYPE_CHECKING:
    from docker_model.runner.worker.routes import OpenAIHandlers


@dataclass
class Stored:
    response: dict[str, Any]
    conversation: list[Message]  # its input and output as chat messages, its instructions left out
    at: float


class ResponseStore:
    """The model's recent responses, by ID: bounded in number and in age."""

    def __init__(self, size: int = STORE_SIZE, seconds: float = STORE_SECONDS) -> None:
        self.size = size
        self.seconds = seconds
        self._entries: OrderedDict[str, Stored] = OrderedDict()

    def put(self, response: dict[str, Any], messages: list[Message]) -> None:
        self._entries[response["id"]] = Stored(response, messages, time.monotonic())
        self._expire()

    def get(self, response_id: str) -> Stored | None:
        self._expire()
        return self._entries.get(response_id)

    def delete(self, response_id: str) -> bool:
        return self._entries.pop(response_id, None) is not None

    def _expire(self) -> None:
        oldest = time.monotonic() - self.seconds
        while self._entries and (len(self._entries) > self.size or next(iter(self._entries.values())).at < oldest):
            self._entries.popitem(last=False)


def routes(api: OpenAIHandlers) -> list[Route]:
    dialect = ResponsesDialect(api)
    return [
        Route("/v1/responses", dialect.create, methods=["POST"]),
        Route("/v1/responses/{response_id}", dialect.retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}", dialect.delete, methods=["DELETE"]),
    ]


def not_found(response_id: str, param: str = "response_id", code: str | None = None) -> APIError:
    return APIError(404, not_found_message(response_id), param=param, code=code)


class ResponsesDialect:
    """The Responses routes of one worker, and the responses it keeps."""

    def __init__(self, api: OpenAIHandlers) -> None:
        self.api = api
        self.store = ResponseStore()

    async def create(self, request: Request) -> Response:
        body: ResponsesBody = parse_body(ResponsesBody, await request.body())
        messages = conversation(body, self._history(body.previous_response_id))
        chat = chat_body(body, messages)
        try:
            [choice] = self.api.chat_choices(chat)
        except APIError as error:
            param = responses_param(error.param) if error.param else None
            raise APIError(error.status, error.message, param, error.code) from None
        writer = ResponseWriter(self._envelope(body))
        self.api.submit(choice.job)
        if body.stream:
            return EventStreamResponse(self._stream(choice, writer, body, messages))  # type: ignore[return-value]
        writer.text(*choice.read(await whole_text(choice, request.receive)))
        self._finish(choice, writer, body, messages)
        return JSONResponse(writer.response)

    async def _stream(
        self, choice: Choice, writer: ResponseWriter, body: ResponsesBody, messages: list[Message]
    ) -> AsyncIterator[bytes]:
        for event in writer.start():
            yield event
        async for _, piece in pieces([choice]):
            if piece is not None:
                for event in writer.text(*choice.read(piece[0])):
                    yield event
            elif choice.job.finish == FINISH_ERROR:
                yield writer.fail(choice.job.error or "generation failed")
                return
        for event in self._finish(choice, writer, body, messages):
            yield event

    def _finish(
        self, choice: Choice, writer: ResponseWriter, body: ResponsesBody, messages: list[Message]
    ) -> list[bytes]:
        """The answer's last events; the response is stored before they are sent, for the next request."""
        events = writer.end(choice.close(), usage(*prompt_tokens([choice])))
        if body.stored:
            output = ITEMS.validate_python(writer.response["output"])
            self.store.put(writer.response, [*messages, *item_messages(output)])
        return events

    async def retrieve(self, request: Request) -> Response:
        refused = next(iter(request.query_params), None)  # include, stream, ...: for background responses
        if refused is not None:
            raise APIError(
                400, f"{refused} is not supported: leave it out", param=refused, code="unsupported_parameter"
            )
        response_id = request.path_params["response_id"]
        stored = self.store.get(response_id)
        if stored is None:
            raise not_found(response_id)
        return JSONResponse(stored.response)

    async def delete(self, request: Request) -> Response:
        response_id = request.path_params["response_id"]
        if not self.store.delete(response_id):
            raise not_found(response_id)
        return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})

    def _history(self, previous: str | None) -> list[Message]:
        """The conversation `previous_response_id` continues: its input and output."""
        if previous is None:
            return []
        if model_of(previous) != self.api.state.model_id:
            raise APIError(
                400,
                f"previous_response_id: response {previous} was made by another model; send the request with "
                "the model that made it",
                param="previous_response_id",
            )
        stored = self.store.get(previous)
        if stored is None:
            raise not_found(previous, "previous_response_id", "previous_response_not_found")
        return stored.conversation

    def _envelope(self, body: ResponsesBody) -> dict[str, Any]:
        """The response object's fields that echo the request."""
        text_format = body.text.format if body.text and body.text.format else None
        return {
            "id": new_response_id(self.api.state.model_id),
            "object": "response",
            "created_at": int(time.time()),
            "model": body.model or self.api.state.model_name,
            "error": None,
            "incomplete_details": None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "previous_response_id": body.previous_response_id,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "text": {
                "format": text_format.model_dump(by_alias=True, exclude_none=True) if text_format else {"type": "text"}
            },
            "tools": [tool.model_dump(exclude_none=True) for tool in body.tools or []],
            "tool_choice": _dumped(body.tool_choice) or "auto",
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "truncation": "disabled",
            "store": body.stored,
            "background": False,
            "metadata": body.metadata or {},
            "user": body.user,
            "safety_identifier": body.safety_identifier,
            "prompt_cache_key": body.prompt_cache_key,
            "service_tier": body.service_tier or "default",
        }


def _dumped(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value
