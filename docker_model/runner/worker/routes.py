"""The worker's HTTP API: OpenAI-compatible chat, text completions and embeddings over the engine."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from array import array
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from docker_model.runner.shared.asgi import ClientGone, EventStreamResponse, until_disconnect
from docker_model.runner.shared.error_body import APIError, error_response, sse_error_event

from . import adopted
from .chat_template import ChatTemplate
from .engine import Engine, EngineOverloaded
from .grammars import check_grammar, requested_grammar
from .jobs import FINISH_ERROR, CompletionJob, EmbeddingJob
from .llama import LlamaModel
from .openai_format import SSE_DONE, CompletionFormat, embeddings_response, tool_call_deltas, usage
from .reasoning import ReasoningSplitter, prompt_opens_thinking
from .sampling import SamplingParams
from .schemas import ChatCompletionBody, CompletionBody, EmbeddingBody, GenerationBody, parse_body
from .tool_calls import CallReader, ToolCall, ToolPlan


@dataclass
class WorkerState:
    model: LlamaModel
    engine: Engine
    template: ChatTemplate
    model_name: str
    sampling: SamplingParams


class OpenAIHandlers:
    def __init__(self, state: WorkerState):
        self.state = state
        self.model = state.model
        self.engine = state.engine

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(self, request: Request) -> Response:
        entry = {"id": self.state.model_name, "object": "model", "created": 0, "owned_by": "docker"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def chat(self, request: Request) -> Response:
        body = parse_body(ChatCompletionBody, await request.body())
        messages = [m.model_dump(exclude_none=True) for m in body.messages]
        tools = ToolPlan.of(body, self.state.template)
        if tools is not None:
            messages = tools.messages(messages)
        template_tools = tools.template_tools() if tools is not None else None
        prompt = self.state.template.render(messages, template_tools, body.chat_template_kwargs)
        job = self._job(self.model.tokenize(prompt), body, tools)
        fmt = CompletionFormat(True, body.model or self.state.model_name)
        reader = tools.reader() if tools is not None else None
        return await self._generate(request, job, body, fmt, ReasoningSplitter(prompt_opens_thinking(prompt)), reader)

    async def completions(self, request: Request) -> Response:
        body = parse_body(CompletionBody, await request.body())
        prompt = body.prompt
        tokens = self.model.tokenize(prompt) if isinstance(prompt, str) else self._checked_ids(prompt)
        job = self._job(tokens, body)
        fmt = CompletionFormat(False, body.model or self.state.model_name)
        return await self._generate(request, job, body, fmt, None)

    async def embeddings(self, request: Request) -> Response:
        body = parse_body(EmbeddingBody, await request.body())
        inputs = [self._embedding_tokens(item) for item in body.inputs]
        job = EmbeddingJob(inputs, asyncio.get_running_loop().create_future())
        if (busy := self._submit(job)) is not None:
            return busy
        try:
            vectors = await until_disconnect(job.result, request.receive)
        except ClientGone:
            job.cancel()
            return Response(status_code=499)
        except RuntimeError as exc:
            return error_response(str(exc), 500)
        encoded: list[list[float]] | list[str] = vectors
        if body.encoding_format == "base64":
            encoded = [base64.b64encode(array("f", v).tobytes()).decode() for v in vectors]
        name = body.model or self.state.model_name
        return JSONResponse(embeddings_response(name, encoded, sum(len(t) for t in inputs)))

    # -- helpers -----------------------------------------------------------------------------------

    def _checked_ids(self, tokens: list[int], param: str = "prompt") -> list[int]:
        if any(not 0 <= t < self.model.n_vocab for t in tokens):
            raise APIError(400, f"{param}: token ids must be between 0 and {self.model.n_vocab - 1}", param=param)
        return tokens

    def _checked_bias(self, bias: dict[int, float] | None) -> tuple[tuple[int, float], ...] | None:
        if not bias:
            return None
        self._checked_ids(list(bias), "logit_bias")
        return tuple(sorted(bias.items()))

    def _embedding_tokens(self, item: str | list[int]) -> list[int]:
        tokens = self.model.tokenize(item) if isinstance(item, str) else self._checked_ids(item)
        limit = min(self.engine.n_batch, self.engine.n_ctx_seq)
        if not tokens:
            raise APIError(400, "an embedding input is empty", param="input")
        if len(tokens) > limit:
            raise APIError(
                400,
                f"an input of {len(tokens)} tokens is longer than the {limit} tokens one embedding can take",
                param="input",
                code="context_length_exceeded",
            )
        return tokens

    def _job(self, tokens: list[int], body: GenerationBody, tools: ToolPlan | None = None) -> CompletionJob:
        n_ctx = self.engine.n_ctx_seq
        if not tokens:
            raise APIError(400, "the prompt is empty", param="prompt")
        if len(tokens) >= n_ctx:
            raise APIError(
                400,
                f"the prompt is {len(tokens)} tokens long, which does not fit the context size of "
                f"{n_ctx} tokens per request; shorten it or configure a larger context size",
                param="messages" if isinstance(body, ChatCompletionBody) else "prompt",
                code="context_length_exceeded",
            )
        sampling = self.state.sampling.updated(
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
            min_p=body.min_p,
            seed=body.seed,
            repeat_penalty=body.repeat_penalty,
            frequency_penalty=body.frequency_penalty,
            presence_penalty=body.presence_penalty,
            ignore_eos=body.ignore_eos or None,
            logit_bias=self._checked_bias(body.logit_bias),
        )
        trigger = None
        if tools is not None and tools.grammar is not None:
            constraint: tuple[str, str] | None = (tools.grammar, "tools")
            trigger = tools.trigger
        else:
            constraint = requested_grammar(body)
        if constraint is not None:
            grammar, param = constraint
            check_grammar(self.model, grammar, param, trigger)  # a 400 here, not a failed job later
            sampling = replace(sampling, grammar=grammar, grammar_trigger=trigger)
        return CompletionJob(tokens, sampling, body.token_limit, body.stop_list)

    def _submit(self, job: CompletionJob | EmbeddingJob) -> Response | None:
        try:
            self.engine.submit(job)
        except EngineOverloaded:
            return error_response("the model is busy: too many requests are waiting, retry later", 503)
        return None

    async def _generate(
        self,
        request: Request,
        job: CompletionJob,
        body: GenerationBody,
        fmt: CompletionFormat,
        splitter: ReasoningSplitter | None,
        reader: CallReader | None = None,
    ) -> Response:
        if (busy := self._submit(job)) is not None:
            return busy
        if body.stream:
            return EventStreamResponse(_stream(job, fmt, splitter, reader, body.include_usage))  # type: ignore[return-value]
        try:
            text = await until_disconnect(job.collect(), request.receive)
        except ClientGone:
            return Response(status_code=499)
        if job.finish == FINISH_ERROR:
            return error_response(job.error or "generation failed", 500)
        reasoning = ""
        if splitter is not None:
            text, reasoning = _join(splitter.feed(text), splitter.flush())
        calls: list[ToolCall] = []
        if reader is not None:
            sent = reader.feed(text)
            rest, calls = reader.finish()
            text = sent + rest
        finish = "tool_calls" if calls else job.finish or "stop"
        entries = [call.message_entry() for call in calls]
        return JSONResponse(fmt.response(text, reasoning, finish, _usage(job), entries))


def _usage(job: CompletionJob) -> dict[str, Any]:
    return usage(len(job.prompt), job.completion_tokens, job.cached_tokens)


def _join(*parts: tuple[str, str]) -> tuple[str, str]:
    return "".join(p[0] for p in parts), "".join(p[1] for p in parts)


async def _stream(
    job: CompletionJob,
    fmt: CompletionFormat,
    splitter: ReasoningSplitter | None,
    reader: CallReader | None,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    def chunks(content: str, reasoning: str) -> Iterator[bytes]:
        if reasoning:
            yield fmt.chunk({"reasoning_content": reasoning})
        if reader is not None:
            content = reader.feed(content)
        if content:
            yield fmt.content_chunk(content)

    if fmt.chat:
        yield fmt.chunk({"role": "assistant", "content": "", "refusal": None})
    async for text in job.stream():
        for chunk in chunks(*(splitter.feed(text) if splitter is not None else (text, ""))):
            yield chunk
    if job.finish == FINISH_ERROR:
        yield sse_error_event(job.error or "generation failed")
        return
    if splitter is not None:
        for chunk in chunks(*splitter.flush()):
            yield chunk
    calls: list[ToolCall] = []
    if reader is not None:
        rest, calls = reader.finish()
        if rest:
            yield fmt.content_chunk(rest)
        for index, call in enumerate(calls):
            for delta in tool_call_deltas(index, call.message_entry()):
                yield fmt.chunk(delta)
    yield fmt.chunk({}, "tool_calls" if calls else job.finish)
    if include_usage:
        yield fmt.usage_chunk(_usage(job))
    yield SSE_DONE


async def _api_error(request: Request, exc: Exception) -> Response:
    """Every error in the one body: a request's own (APIError), an unknown route, or a bug."""
    if isinstance(exc, APIError):
        return exc.response()
    if isinstance(exc, HTTPException):
        return error_response(str(exc.detail), exc.status_code)
    return error_response(f"internal error: {exc}", 500)


def build_app(state: WorkerState, handoff_socket: Path | None = None) -> Starlette:
    """The worker's app; with `handoff_socket`, it also answers the clients the runner hands over there."""
    api = OpenAIHandlers(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.engine.start(asyncio.get_running_loop())
        handoffs = None
        if handoff_socket:  # bound before the worker reports healthy: the runner never finds it missing
            handoffs = asyncio.create_task(adopted.serve_handoffs(app, adopted.listen(handoff_socket)))
        try:
            yield
        finally:
            if handoffs is not None:
                handoffs.cancel()
            state.engine.close()

    routes = [
        Route("/health", api.health),
        Route("/v1/models", api.models),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/embeddings", api.embeddings, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={APIError: _api_error, HTTPException: _api_error, Exception: _api_error},
    )
