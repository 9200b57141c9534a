"""The worker's HTTP API: OpenAI-compatible chat, text completions and embeddings over the engine."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from array import array
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from docker_model.runner.shared.asgi import ClientGone, EventStreamResponse, until_disconnect
from docker_model.runner.shared.error_body import APIError, error_response, sse_error_event

from . import adopted
from .answers import Choice, pieces, prompt_tokens
from .chat_template import ChatTemplate
from .dialects import dialect_routes
from .engine import Engine, EngineOverloaded
from .grammars import check_grammar, requested_grammar
from .jobs import FINISH_ERROR, CompletionJob, EmbeddingJob
from .llama import LlamaModel
from .logprobs import TokenLogprob
from .openai_format import SSE_DONE, CompletionFormat, LogprobsFormat, embeddings_response, tool_call_deltas, usage
from .reasoning import ReasoningSplitter, prompt_opens_thinking
from .sampling import SamplingParams
from .schemas import ChatCompletionBody, CompletionBody, EmbeddingBody, GenerationBody, parse_body
from .tool_calls import ToolPlan


@dataclass
class WorkerState:
    model: LlamaModel
    engine: Engine
    template: ChatTemplate
    model_name: str
    sampling: SamplingParams
    model_id: str = ""  # the model's short ID (`--model-id`), in the IDs of its OpenAI Responses


MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit: one request holds the engine while all are embedded


class OpenAIHandlers:
    def __init__(self, state: WorkerState):
        self.state = state
        self.model = state.model
        self.engine = state.engine

    async def health(self, request: Request) -> Response:
        """Alive, and how far the engine got (the runner kills a worker whose progress stops while busy)."""
        health: dict[str, object] = {"status": "ok", "progress": self.engine.progress}
        if self.model.pool is not None:
            health["rpc"] = self.model.pool.report()
        return JSONResponse(health)

    async def metrics(self, request: Request) -> Response:
        return Response(self.engine.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def models(self, request: Request) -> Response:
        entry = {"id": self.state.model_name, "object": "model", "created": 0, "owned_by": "docker"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def chat(self, request: Request) -> Response:
        body = parse_body(ChatCompletionBody, await request.body())
        fmt = CompletionFormat(True, body.model or self.state.model_name, body.include_usage)
        return await self._generate(request, self.chat_choices(body), body, fmt)

    def chat_choices(self, body: ChatCompletionBody) -> list[Choice]:
        """The answers a chat request asks for, their jobs made (not submitted): every dialect's chat
        request comes here as OpenAI's."""
        prompt, tools = self.render(body)
        jobs = self._jobs(self.model.tokenize(prompt), body, tools)
        thinking = prompt_opens_thinking(prompt)
        return [
            Choice(i, job, ReasoningSplitter(thinking), tools.reader() if tools is not None else None)
            for i, job in enumerate(jobs)
        ]

    def render(self, body: ChatCompletionBody) -> tuple[str, ToolPlan | None]:
        """A chat request's prompt, tools included, and its tools' plan (None without tools)."""
        messages = [m.model_dump(exclude_none=True) for m in body.messages]
        tools = ToolPlan.of(body, self.state.template)
        if tools is not None:
            messages = tools.messages(messages)
        template_tools = tools.template_tools() if tools is not None else None
        return self.state.template.render(messages, template_tools, body.chat_template_kwargs), tools

    async def completions(self, request: Request) -> Response:
        body = parse_body(CompletionBody, await request.body())
        prompt = body.prompt
        # A list of texts was made one text, or refused, when the body was read: a list here is token ids.
        tokens = self.model.tokenize(prompt) if isinstance(prompt, str) else self._checked_ids(cast(list[int], prompt))
        choices = [Choice(i, job) for i, job in enumerate(self._jobs(tokens, body))]
        return await self._generate(
            request, choices, body, CompletionFormat(False, body.model or self.state.model_name, body.include_usage)
        )

    async def embeddings(self, request: Request) -> Response:
        body = parse_body(EmbeddingBody, await request.body())
        vectors, tokens = await self.embed(request, body.inputs)
        encoded: list[list[float]] | list[str] = vectors
        if body.encoding_format == "base64":
            encoded = [base64.b64encode(array("f", v).tobytes()).decode() for v in vectors]
        name = body.model or self.state.model_name
        return JSONResponse(embeddings_response(name, encoded, tokens))

    async def embed(
        self, request: Request, inputs: list[str | list[int]], truncate: bool = False
    ) -> tuple[list[list[float]], int]:
        """Normalised embeddings of `inputs` and their token count (every dialect's embeddings come here).
        `truncate`: cut inputs longer than one embedding takes, rather than refuse them. Raises ClientGone."""
        if len(inputs) > MAX_EMBEDDING_INPUTS:
            raise APIError(400, f"at most {MAX_EMBEDDING_INPUTS} inputs per request, not {len(inputs)}", param="input")
        tokens = [self._embedding_tokens(item, truncate) for item in inputs]
        job = EmbeddingJob(tokens, asyncio.get_running_loop().create_future())
        self.submit(job)
        try:
            vectors = await until_disconnect(job.result, request.receive)
        except ClientGone:
            job.cancel()
            raise
        except RuntimeError as exc:
            raise APIError(500, str(exc)) from None
        return vectors, sum(len(t) for t in tokens)

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

    def _embedding_tokens(self, item: str | list[int], truncate: bool = False) -> list[int]:
        tokens = self.model.tokenize(item) if isinstance(item, str) else self._checked_ids(item, "input")
        limit = min(self.engine.n_batch, self.engine.n_ctx_seq)
        if not tokens:
            raise APIError(400, "an embedding input is empty", param="input")
        if truncate:
            return tokens[:limit]
        if len(tokens) > limit:
            raise APIError(
                400,
                f"an input of {len(tokens)} tokens is longer than the {limit} tokens one embedding can take",
                param="input",
                code="context_length_exceeded",
            )
        return tokens

    def _jobs(self, tokens: list[int], body: GenerationBody, tools: ToolPlan | None = None) -> list[CompletionJob]:
        """The request's `n` jobs: one prompt, sampled `n` times (seeds `seed`, `seed + 1`, ... when given)."""
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
        if body.n > self.engine.parallel:
            raise APIError(
                400,
                f"n: at most {self.engine.parallel} answers per request, as many as this model generates at "
                "once; configure more parallel sequences for more",
                param="n",
            )
        sampling = self._sampling(body)
        constraint = requested_grammar(body)
        trigger = None
        if tools is not None and tools.grammar is not None:
            constraint, trigger = (tools.grammar, "tools"), tools.trigger
        if constraint is not None:
            grammar, param = constraint
            check_grammar(self.model, grammar, param, trigger)  # a 400 here, not a failed job later
            sampling = replace(sampling, grammar=grammar, grammar_trigger=trigger)
        seeds = [None if body.seed is None else body.seed + i for i in range(body.n)]
        limit, stops, logprobs = body.token_limit, body.stop_list, body.logprob_alternatives
        return [CompletionJob(tokens, replace(sampling, seed=seed), limit, stops, logprobs) for seed in seeds]

    def _sampling(self, body: GenerationBody) -> SamplingParams:
        return self.state.sampling.updated(
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
            min_p=body.min_p,
            repeat_penalty=body.repeat_penalty,
            frequency_penalty=body.frequency_penalty,
            presence_penalty=body.presence_penalty,
            penalty_last_n=body.repeat_last_n,
            typical_p=body.typical_p,
            top_n_sigma=body.top_n_sigma,
            xtc_probability=body.xtc_probability,
            xtc_threshold=body.xtc_threshold,
            dynatemp_range=body.dynatemp_range,
            dynatemp_exponent=body.dynatemp_exponent,
            mirostat=body.mirostat,
            mirostat_tau=body.mirostat_tau,
            mirostat_eta=body.mirostat_eta,
            dry_multiplier=body.dry_multiplier,
            dry_base=body.dry_base,
            dry_allowed_length=body.dry_allowed_length,
            dry_penalty_last_n=body.dry_penalty_last_n,
            dry_sequence_breakers=tuple(body.dry_sequence_breakers) if body.dry_sequence_breakers else None,
            ignore_eos=body.ignore_eos or None,
            logit_bias=self._checked_bias(body.logit_bias),
        )

    def submit(self, *jobs: CompletionJob | EmbeddingJob) -> None:
        """Hand jobs to the engine, all or none; a 503 when it cannot take them all."""
        try:
            self.engine.submit(*jobs)
        except EngineOverloaded:
            raise APIError(503, "the model is busy: too many requests are waiting, retry later") from None

    async def _generate(
        self, request: Request, choices: list[Choice], body: GenerationBody, fmt: CompletionFormat
    ) -> Response:
        self.submit(*(choice.job for choice in choices))
        logprobs = body.logprob_alternatives is not None
        for choice in choices:
            choice.logprobs = LogprobsFormat(fmt.chat, self.model.piece) if logprobs else None
        if body.stream:
            return EventStreamResponse(_stream(choices, fmt))  # type: ignore[return-value]
        answers = await until_disconnect(asyncio.gather(*(c.job.collect() for c in choices)), request.receive)
        for choice in choices:
            if choice.job.finish == FINISH_ERROR:
                raise APIError(500, choice.job.error or "generation failed")
        entries = [whole_choice(choice, fmt, *answer) for choice, answer in zip(choices, answers, strict=True)]
        return JSONResponse(fmt.response(entries, _usage(choices)))


def whole_choice(choice: Choice, fmt: CompletionFormat, text: str, entries: list[TokenLogprob]) -> dict[str, Any]:
    """One answer of a whole OpenAI response."""
    content, reasoning, ending = choice.whole(text)
    logprobs = choice.logprobs.part(entries) if choice.logprobs is not None else None
    calls = [call.message_entry() for call in ending.calls]
    return fmt.choice(choice.index, content, reasoning, ending.finish, calls, logprobs)


def text_chunks(choice: Choice, fmt: CompletionFormat, text: str, entries: list[TokenLogprob]) -> Iterator[bytes]:
    """OpenAI's chunks for an answer's text as it streams in."""
    content, reasoning = choice.read(text)
    if reasoning:
        yield fmt.chunk({"reasoning_content": reasoning}, index=choice.index)
    logprobs = choice.logprobs.part(entries) if choice.logprobs is not None and entries else None
    if content or logprobs is not None:
        yield fmt.content_chunk(content, choice.index, logprobs)


def last_chunks(choice: Choice, fmt: CompletionFormat) -> Iterator[bytes]:
    """OpenAI's chunks after an answer's last text: what was held back, the calls, the finish reason."""
    ending = choice.close()
    if ending.reasoning:
        yield fmt.chunk({"reasoning_content": ending.reasoning}, index=choice.index)
    if ending.content:
        yield fmt.content_chunk(ending.content, choice.index)
    for number, call in enumerate(ending.calls):
        for delta in tool_call_deltas(number, call.message_entry()):
            yield fmt.chunk(delta, index=choice.index)
    yield fmt.chunk({}, ending.finish, index=choice.index)


def _usage(choices: list[Choice]) -> dict[str, Any]:
    return usage(*prompt_tokens(choices))


async def _stream(choices: list[Choice], fmt: CompletionFormat) -> AsyncIterator[bytes]:
    if fmt.chat:
        for choice in choices:
            yield fmt.chunk({"role": "assistant", "content": "", "refusal": None}, index=choice.index)
    async for choice, piece in pieces(choices):
        if piece is not None:
            for chunk in text_chunks(choice, fmt, *piece):
                yield chunk
        elif choice.job.finish == FINISH_ERROR:
            yield sse_error_event(choice.job.error or "generation failed")
            return
        else:
            for chunk in last_chunks(choice, fmt):
                yield chunk
    if fmt.include_usage:
        yield fmt.usage_chunk(_usage(choices))
    yield SSE_DONE


async def _api_error(request: Request, exc: Exception) -> Response:
    """Every error in the shape of its dialect: a request's own (APIError), an unknown route, or a bug; and
    no answer (499) to a client that left before it was ready."""
    if isinstance(exc, ClientGone):
        return Response(status_code=499)
    path = request.url.path
    if isinstance(exc, APIError):
        return exc.response(path)
    if isinstance(exc, HTTPException):
        return error_response(str(exc.detail), exc.status_code, path=path)
    return error_response(f"internal error: {exc}", 500, path=path)


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
        Route("/metrics", api.metrics),
        Route("/v1/models", api.models),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/embeddings", api.embeddings, methods=["POST"]),
        *dialect_routes(api),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            APIError: _api_error,
            HTTPException: _api_error,
            ClientGone: _api_error,
            Exception: _api_error,
        },
    )
