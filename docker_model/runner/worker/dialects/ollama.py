"""Ollama's inference API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`), translated onto
the worker's chat path, answered whole or as NDJSON lines as Ollama streams them, with its timing fields
measured here (nanoseconds). The runner serves the rest of `/api/` (tags, ps, show, pull, ...)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from docker_model.runner.shared.error_body import APIError
from docker_model.runner.shared.wire import LOAD_HEADER
from docker_model.runner.worker.answers import Choice, Ending, pieces, prompt_tokens, whole_text
from docker_model.runner.worker.jobs import FINISH_ERROR
from docker_model.runner.worker.schemas import ChatCompletionBody, StrictModel, parse_body

if TYPE_CHECKING:
    from docker_model.runner.worker.routes import OpenAIHandlers

# Ollama's options and the chat fields they become; others are refused by name.
SAMPLING_OPTIONS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "seed": "seed",
    "stop": "stop",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "mirostat": "mirostat",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
    "num_predict": "n_predict",
}


class OllamaToolFunction(StrictModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    index: int | None = None


class OllamaToolCall(StrictModel):
    function: OllamaToolFunction


class OllamaMessage(StrictModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[OllamaToolCall] | None = None
    tool_name: str | None = None


class _Request(StrictModel):
    model: str
    format: Literal["json", ""] | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    stream: bool = True
    keep_alive: str | float | None = None  # the runner applies it once the answer is sent
    think: bool | None = None


class ChatRequest(_Request):
    messages: list[OllamaMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None


class GenerateRequest(_Request):
    prompt: str = Field(min_length=1)
    system: str | None = None
    raw: bool = False
    images: list[str] | None = None
    suffix: str | None = None
    template: str | None = None
    context: list[int] | None = None


class EmbedRequest(StrictModel):
    model: str
    input: str | list[str]
    truncate: bool = True
    options: dict[str, Any] | None = None
    keep_alive: str | float | None = None
    dimensions: int | None = None


class LegacyEmbedRequest(StrictModel):
    model: str
    prompt: str
    options: dict[str, Any] | None = None
    keep_alive: str | float | None = None


def routes(api: OpenAIHandlers) -> list[Route]:
    dialect = OllamaDialect(api)
    return [
        Route("/api/chat", dialect.chat, methods=["POST"]),
        Route("/api/generate", dialect.generate, methods=["POST"]),
        Route("/api/embed", dialect.embed, methods=["POST"]),
        Route("/api/embeddings", dialect.embeddings, methods=["POST"]),
    ]


class OllamaDialect:
    def __init__(self, api: OpenAIHandlers):
        self.api = api

    async def chat(self, request: Request) -> Response:
        started = time.perf_counter_ns()
        body = parse_body(ChatRequest, await request.body())
        for number, message in enumerate(body.messages):
            if message.images:
                where = f"messages.{number}.images"
                raise APIError(400, f"{where}: images are not supported yet", param=where)
        chat = self._chat_body(body, _openai_messages(body.messages), tools=body.tools)
        return await self._answer(request, body, chat, started, "message")

    async def generate(self, request: Request) -> Response:
        started = time.perf_counter_ns()
        body = parse_body(GenerateRequest, await request.body())
        for field in ("images", "suffix", "template", "context"):
            if getattr(body, field):
                raise APIError(400, f"{field} is not supported: leave it out", param=field)
        if body.raw:
            raise APIError(
                400, "raw is not supported: send the prompt without raw, or use /v1/completions", param="raw"
            )
        messages = [{"role": "system", "content": body.system}] if body.system else []
        chat = self._chat_body(body, [*messages, {"role": "user", "content": body.prompt}])
        return await self._answer(request, body, chat, started, "response")

    async def embed(self, request: Request) -> Response:
        started = time.perf_counter_ns()
        body = parse_body(EmbedRequest, await request.body())
        self._check_options(body.options, embedding=True)
        if body.dimensions is not None:
            raise APIError(400, "dimensions is not supported: the model's own size is used", param="dimensions")
        inputs: list[str | list[int]] = [body.input] if isinstance(body.input, str) else list(body.input)
        vectors, tokens = await self.api.embed(request, inputs, truncate=body.truncate)
        total = time.perf_counter_ns() - started + _load_ns(request)
        return JSONResponse(
            {
                "model": body.model,
                "embeddings": vectors,
                "total_duration": total,
                "load_duration": _load_ns(request),
                "prompt_eval_count": tokens,
            }
        )

    async def embeddings(self, request: Request) -> Response:
        body = parse_body(LegacyEmbedRequest, await request.body())
        self._check_options(body.options, embedding=True)
        vectors, _ = await self.api.embed(request, [body.prompt], truncate=True)
        return JSONResponse({"embedding": vectors[0]})

    # -- helpers -----------------------------------------------------------------------------------

    def _check_options(self, options: dict[str, Any] | None, embedding: bool = False) -> dict[str, Any]:
        """The chat fields Ollama's `options` stand for; a 400 naming an option this runner does not do."""
        fields: dict[str, Any] = {}
        for name, value in (options or {}).items():
            if name == "num_ctx":
                self._check_context(value)
            elif name in SAMPLING_OPTIONS and not embedding:
                fields[SAMPLING_OPTIONS[name]] = value
            else:
                what = "an embedding" if embedding else "this runner"
                raise APIError(400, f"options.{name} is not supported by {what}: leave it out", param=f"options.{name}")
        if fields.get("n_predict") == -2:  # Ollama's "fill the context"
            fields["n_predict"] = -1
        return fields

    def _check_context(self, value: Any) -> None:
        loaded = self.api.engine.n_ctx_seq
        if not isinstance(value, int) or value < 1:
            raise APIError(400, "options.num_ctx must be a positive whole number", param="options.num_ctx")
        if value > loaded:
            raise APIError(
                400,
                f"options.num_ctx {value} is more than the {loaded} tokens this model is loaded with: "
                f"set it with `docker model configure --context-size {value} MODEL`",
                param="options.num_ctx",
            )

    def _chat_body(
        self, body: _Request, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> ChatCompletionBody:
        fields: dict[str, Any] = {"model": body.model, "messages": messages, **self._check_options(body.options)}
        if tools:
            fields["tools"] = tools
        if body.format == "json":
            fields["response_format"] = {"type": "json_object"}
        elif isinstance(body.format, dict):
            fields["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "format", "schema": body.format},
            }
        if body.think is not None:  # templates that think on request read this
            fields["chat_template_kwargs"] = {"enable_thinking": body.think}
        return parse_body(ChatCompletionBody, json.dumps(fields).encode())

    async def _answer(
        self, request: Request, body: _Request, chat: ChatCompletionBody, started: int, field: str
    ) -> Response:
        [choice] = self.api.chat_choices(chat)  # Ollama asks for one answer
        self.api.submit(choice.job)
        timer = _Timer(started, _load_ns(request))
        shape = _Shape(body.model, field)
        if body.stream:
            return StreamingResponse(_lines(choice, shape, timer), media_type="application/x-ndjson")
        text = await whole_text(choice, request.receive, _collect(choice, timer))
        content, reasoning, ending = choice.whole(text)
        return JSONResponse(shape.last(content, reasoning, ending, timer.stats([choice])))


class _Timer:
    """Ollama's durations, in nanoseconds, measured from when the worker got the request."""

    def __init__(self, started: int, load: int):
        self.started, self.load = started, load
        self.first: int | None = None

    def first_token(self) -> None:
        if self.first is None:
            self.first = time.perf_counter_ns()

    def stats(self, choices: list[Choice]) -> dict[str, int]:
        now = time.perf_counter_ns()
        first = self.first or now
        prompt, completion, cached = prompt_tokens(choices)
        return {
            "total_duration": now - self.started + self.load,
            "load_duration": self.load,
            "prompt_eval_count": prompt - cached,
            "prompt_eval_duration": first - self.started,
            "eval_count": completion,
            "eval_duration": now - first,
        }


class _Shape:
    """The objects of one answer: chat's `message`, or generate's `response`."""

    def __init__(self, model: str, field: str):
        self.model, self.field = model, field

    def part(self, content: str, reasoning: str = "") -> dict[str, Any]:
        created = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        head: dict[str, Any] = {"model": self.model, "created_at": created}
        if self.field == "message":
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if reasoning:
                message["thinking"] = reasoning
            return {**head, "message": message, "done": False}
        return {**head, "response": content, **({"thinking": reasoning} if reasoning else {}), "done": False}

    def last(self, content: str, reasoning: str, ending: Ending, stats: dict[str, int]) -> dict[str, Any]:
        final = self.part(content, reasoning)
        if ending.calls and self.field == "message":
            final["message"]["tool_calls"] = [
                {"function": {"index": i, "name": call.name, "arguments": json.loads(call.arguments)}}
                for i, call in enumerate(ending.calls)
            ]
        done_reason = "length" if ending.finish == "length" else "stop"
        return {**final, "done": True, "done_reason": done_reason, **stats}


async def _lines(choice: Choice, shape: _Shape, timer: _Timer) -> AsyncIterator[bytes]:
    """NDJSON: a line per piece of text, then the last one with the calls, the reason and the timings."""
    async for _, piece in pieces([choice]):
        if piece is not None:
            timer.first_token()
            content, reasoning = choice.read(piece[0])
            if content or reasoning:
                yield _line(shape.part(content, reasoning))
        elif choice.job.finish == FINISH_ERROR:
            yield _line({"error": choice.job.error or "generation failed"})
        else:
            yield _line(shape.last(*_closing(choice), timer.stats([choice])))


async def _collect(choice: Choice, timer: _Timer) -> str:
    """All of an answer's text, the time of its first token noted."""
    texts = []
    async for text, _ in choice.job.stream():
        timer.first_token()
        texts.append(text)
    return "".join(texts)


def _closing(choice: Choice) -> tuple[str, str, Ending]:
    ending = choice.close()
    return ending.content, ending.reasoning, ending


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def _load_ns(request: Request) -> int:
    value = request.headers.get(LOAD_HEADER, "0")
    return int(value) if value.isdigit() else 0


def _openai_messages(messages: list[OllamaMessage]) -> list[dict[str, Any]]:
    """Ollama's messages as OpenAI's: calls get ids, and each tool result the id of the call it answers
    (Ollama pairs them by order)."""
    converted: list[dict[str, Any]] = []
    pending: list[str] = []  # ids of calls not answered yet, oldest first
    for number, message in enumerate(messages):
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.thinking:
            entry["reasoning_content"] = message.thinking  # as Hugging Face chat templates read it
        if message.tool_calls:
            ids = [f"call_{number}_{i}" for i in range(len(message.tool_calls))]
            entry["tool_calls"] = [
                {
                    "id": ids[i],
                    "type": "function",
                    "function": {
                        "name": c.function.name,
                        "arguments": json.dumps(c.function.arguments, ensure_ascii=False),
                    },
                }
                for i, c in enumerate(message.tool_calls)
            ]
            pending.extend(ids)
        if message.role == "tool":
            entry["tool_call_id"] = pending.pop(0) if pending else f"call_{number}"
            if message.tool_name:
                entry["name"] = message.tool_name
        converted.append(entry)
    return converted
