"""A request's answers as every API dialect reads them: the text to send as it streams, the reasoning
apart, and at the end the tool calls and why the answer ended. Each dialect (OpenAI's chat and
completions, Ollama's, Anthropic's, OpenAI's Responses) shapes these into its own events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

from starlette.types import Receive

from docker_model.runner.shared.asgi import until_disconnect
from docker_model.runner.shared.error_body import APIError

from .jobs import FINISH_ERROR, CompletionJob
from .logprobs import TokenLogprob
from .openai_format import LogprobsFormat
from .reasoning import ReasoningSplitter
from .tool_calls import CallReader, ToolCall

Piece = tuple[str, list[TokenLogprob]]  # text, and the logprobs of its tokens when they were asked for


@dataclass(frozen=True)
class Ending:
    """What an answer sends after its last text: held-back content and reasoning, its calls, and why it
    ended ("stop", "length", "tool_calls", or the engine's "error" or "cancelled")."""

    content: str
    reasoning: str
    calls: list[ToolCall]
    finish: str


@dataclass
class Choice:
    """One of a request's answers: its job, and how its text is read."""

    index: int
    job: CompletionJob
    splitter: ReasoningSplitter | None = None  # chat: reasoning apart from the answer
    reader: CallReader | None = None  # chat with tools: the calls apart from the text
    logprobs: LogprobsFormat | None = None  # when the request asked for logprobs

    def read(self, text: str) -> tuple[str, str]:
        """The content and the reasoning of newly generated `text` that can be sent now."""
        content, reasoning = self.splitter.feed(text) if self.splitter is not None else (text, "")
        if self.reader is not None:
            content = self.reader.feed(content)
        return content, reasoning

    def close(self) -> Ending:
        """What follows the job's last text."""
        content, reasoning = self.splitter.flush() if self.splitter is not None else ("", "")
        calls: list[ToolCall] = []
        if self.reader is not None:
            content = self.reader.feed(content)
            rest, calls = self.reader.finish()
            content += rest
        return Ending(content, reasoning, calls, "tool_calls" if calls else self.job.finish or "stop")

    def whole(self, text: str) -> tuple[str, str, Ending]:
        """A finished answer's content, reasoning and ending, from all of its text."""
        content, reasoning = self.read(text)
        ending = self.close()
        return content + ending.content, reasoning + ending.reasoning, ending


def prompt_tokens(choices: list[Choice]) -> tuple[int, int, int]:
    """Prompt tokens (counted once: the prompt was evaluated once), answer tokens (summed) and the prompt
    tokens found in the KV cache."""
    first = choices[0].job
    return len(first.prompt), sum(choice.job.completion_tokens for choice in choices), first.cached_tokens


async def pieces(choices: list[Choice]) -> AsyncIterator[tuple[Choice, Piece | None]]:
    """Every choice's text as it comes, then (choice, None) when that choice's job has finished."""
    if len(choices) == 1:  # no task in between: the engine hands each step to the writer directly
        async for piece in choices[0].job.stream():
            yield choices[0], piece
        yield choices[0], None
        return
    queue: asyncio.Queue[tuple[Choice, Piece | None]] = asyncio.Queue()

    async def pump(choice: Choice) -> None:
        async for piece in choice.job.stream():
            queue.put_nowait((choice, piece))
        queue.put_nowait((choice, None))

    tasks = [asyncio.create_task(pump(choice)) for choice in choices]
    try:
        for _ in range(len(choices)):
            while (item := await queue.get())[1] is not None:
                yield item
            yield item
    finally:
        for task in tasks:
            task.cancel()


async def whole_text(choice: Choice, receive: Receive, text: Awaitable[str] | None = None) -> str:
    """All of a finished answer's text, gathered by `text` (by default: all its pieces). Raises ClientGone
    when the client leaves first (a 499 in every dialect), and a 500 when generation failed."""
    gathered = await until_disconnect(text if text is not None else _all_text(choice.job), receive)
    if choice.job.finish == FINISH_ERROR:
        raise APIError(500, choice.job.error or "generation failed")
    return gathered


async def _all_text(job: CompletionJob) -> str:
    return (await job.collect())[0]
