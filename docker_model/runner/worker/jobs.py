"""Work items handed to the engine thread, and how their results come back to the event loop.

The engine thread only reads a job's inputs and its `cancelled` flag; every result is delivered on
the event loop (through `loop.call_soon_threadsafe`), so the asyncio side needs no locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .logprobs import TokenLogprob
from .sampling import SamplingParams

FINISH_CANCELLED = "cancelled"
FINISH_ERROR = "error"


@dataclass(eq=False, slots=True)
class CompletionJob:
    """One generation request: a tokenised prompt and how to sample and stop."""

    prompt: list[int]
    sampling: SamplingParams
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    logprobs: int | None = None  # None: none reported; else each token's, with this many alternatives
    cancelled: bool = False
    finish: str | None = None
    error: str | None = None
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens found in the KV cache, not evaluated again; set at admission
    submitted_at: float = 0.0  # when it reached the engine (perf_counter)
    _pieces: list[str] = field(default_factory=list)
    _logprobs: list[TokenLogprob] = field(default_factory=list)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel(self) -> None:
        """Ask the engine to drop this job; its sequence is released at the next step."""
        self.cancelled = True

    def deliver(
        self,
        text: str,
        finish: str | None,
        completion_tokens: int,
        error: str | None,
        logprobs: list[TokenLogprob] | None = None,
    ) -> None:
        """Called on the event loop with the output of one or more engine steps."""
        if text:
            self._pieces.append(text)
        if logprobs:
            self._logprobs.extend(logprobs)
        self.completion_tokens = completion_tokens
        if finish is not None:
            self.finish, self.error = finish, error
        self._ready.set()

    async def stream(self) -> AsyncIterator[tuple[str, list[TokenLogprob]]]:
        """Text as it is generated, with the logprobs of its tokens (when asked for); pieces that arrived
        together come out joined. Ends at the finish.

        Leaving early (the consumer is closed or cancelled) cancels the job.
        """
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                if self._pieces or self._logprobs:
                    text, logprobs = "".join(self._pieces), self._logprobs
                    self._pieces.clear()
                    self._logprobs = []
                    yield text, logprobs
                if self.finish is not None:
                    return
        finally:
            if self.finish is None:
                self.cancel()  # the consumer went away (client disconnect, task cancelled)

    async def collect(self) -> tuple[str, list[TokenLogprob]]:
        """All the text, and the logprobs of its tokens."""
        texts, logprobs = [], []
        async for text, entries in self.stream():
            texts.append(text)
            logprobs.extend(entries)
        return "".join(texts), logprobs


@dataclass(eq=False, slots=True)
class EmbeddingJob:
    """Pooled, L2-normalised embeddings for each tokenised input."""

    inputs: list[list[int]]
    result: asyncio.Future[list[list[float]]]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
        self.result.cancel()

    def deliver(self, vectors: list[list[float]] | None, error: str | None) -> None:
        if self.result.done():
            return
        if vectors is None:
            self.result.set_exception(RuntimeError(error or "embedding failed"))
        else:
            self.result.set_result(vectors)
