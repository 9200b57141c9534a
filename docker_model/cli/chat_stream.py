"""Streaming chat completions from the runner, read as Server-Sent Events, and printed as they arrive.

A stream is complete only when it ends with `data: [DONE]`: one cut off before that (the runner stopped
or its worker died) raises IncompleteAnswer, so that no half answer passes for a whole one. The chat goes
to the runner, or to any OpenAI-compatible server (`run --openaiurl`).
"""

from __future__ import annotations

import http.client
import json
import re
import stat
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from docker_model.cli.client import Reply, RunnerClient
from docker_model.cli.endpoint import endpoint_client
from docker_model.cli.render import safe_for_terminal

RUNNER_CHAT_PATH = "/engines/v1/chat/completions"
# A word that starts with @ names a file to include: @path, @"path with spaces" or @'path'; @@word is @word.
FILE_WORD = re.compile(r"""(?<!\S)@(?:"([^"]+)"|'([^']+)'|(\S+))""")
MAX_INCLUDED_BYTES = 1 << 20  # a file @path includes: more would rather be a mistake (@/dev/zero) than a prompt


class IncompleteAnswer(click.ClickException):
    """A stream that ended before `data: [DONE]`, from the runner, or from `sender` (an --openaiurl server)."""

    def __init__(self, sender: str | None = None) -> None:
        super().__init__(
            f"the answer from {sender} is incomplete: the server stopped before it finished"
            if sender
            else "the answer is incomplete: the runner stopped before it finished (see `docker model logs`)"
        )


@dataclass(frozen=True)
class Piece:
    """A piece of a streamed reply: answer text, or reasoning the model shows before its answer."""

    text: str
    reasoning: bool = False


@dataclass(frozen=True)
class ChatEndpoint:
    """Where chat requests go: the runner (started when needed), or another OpenAI-compatible server."""

    client: RunnerClient
    path: str = RUNNER_CHAT_PATH

    @property
    def is_runner(self) -> bool:
        return self.path == RUNNER_CHAT_PATH

    @property
    def sender(self) -> str | None:
        """The server that answers, as errors name it; None: the runner."""
        return None if self.is_runner else self.client.url(self.path)


def openai_endpoint(url: str) -> ChatEndpoint:
    """The OpenAI-compatible server whose API root is `url` (its chat at `url/chat/completions`): nothing is
    started or probed; its key is `endpoint_client`'s."""
    return ChatEndpoint(endpoint_client(url), "/chat/completions")


def include_files(text: str) -> str:
    """`text` with each @path word replaced by that file's text (Docker Model Runner's rule, but a file that
    cannot be read is an error rather than left as it is); `@@word` is sent as `@word`."""

    def content(match: re.Match[str]) -> str:
        path = next(group for group in match.groups() if group is not None)
        if match[3] is not None and path.startswith("@"):
            return path  # @@word: the word itself, one @ less
        return included_text(path)

    return FILE_WORD.sub(content, text)


def included_text(path: str) -> str:
    """The text of the file `@path` names: a regular file of UTF-8 text, at most MAX_INCLUDED_BYTES long."""
    keep = f"(write @@{path} to send the word as it is)"
    file = Path(path).expanduser()
    try:
        if not stat.S_ISREG(file.stat().st_mode):  # a device or a pipe could be read forever
            raise click.ClickException(f"cannot include @{path}: it is not a regular file {keep}")
        with file.open("rb") as stream:
            data = stream.read(MAX_INCLUDED_BYTES + 1)
    except OSError as error:
        raise click.ClickException(f"cannot include @{path}: {error.strerror or error} {keep}") from None
    if len(data) > MAX_INCLUDED_BYTES:
        raise click.ClickException(
            f"cannot include @{path}: it is larger than {MAX_INCLUDED_BYTES >> 20} MiB, the most a word @path includes"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"cannot include @{path}: it is not UTF-8 text") from None


def stream_chat(
    endpoint: ChatEndpoint, model: str, messages: list[dict], debug: bool = False, options: dict | None = None
) -> Generator[Piece, None, None]:
    client = endpoint.client
    body = {"model": model, "messages": messages, "stream": True, **(options or {})}
    if debug:
        click.echo(f"POST {client.url(endpoint.path)}\n{json.dumps(body, indent=2)}", err=True)
    with client.request("POST", endpoint.path, json_body=body) as reply:
        for chunk in sse_chunks(reply, endpoint.sender):
            yield from pieces_of(chunk)


def sse_chunks(reply: Reply, sender: str | None = None) -> Iterator[dict[str, Any]]:
    """The chunks of a streamed chat answer, up to its `data: [DONE]`: IncompleteAnswer when the stream ends
    or breaks before it, a one-line error for an event that is not a chunk. `sender` names an --openaiurl
    server (None: the runner)."""
    try:
        for line in reply.iter_lines():
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            chunk = parsed_chunk(data)
            if chunk is None:
                preview = data[:60].decode("utf-8", errors="replace")
                raise click.ClickException(
                    f"{sender or f'the runner at {reply.url}'} sent a stream event that is not an OpenAI chunk: "
                    f"{preview!r}"
                )
            yield chunk
    except (OSError, http.client.HTTPException):
        pass  # the connection broke mid-answer
    raise IncompleteAnswer(sender)


def parsed_chunk(data: bytes) -> dict[str, Any] | None:
    """An event's data as a chat completion chunk (or an error event); None when it is neither."""
    try:
        chunk = json.loads(data)
    except ValueError:
        return None
    if not isinstance(chunk, dict):
        return None
    choices = chunk.get("choices") or []
    usage = chunk.get("usage")
    if not isinstance(choices, list) or not all(map(is_choice, choices)) or not isinstance(usage, (dict, type(None))):
        return None
    return chunk


def is_choice(choice: object) -> bool:
    if not isinstance(choice, dict):
        return False
    delta = choice.get("delta") or {}
    return isinstance(delta, dict) and all(
        isinstance(delta.get(key), (str, type(None))) for key in ("content", "reasoning_content")
    )


def pieces_of(chunk: dict[str, Any]) -> Iterator[Piece]:
    """The text of a chunk `sse_chunks` read; an error event is a one-line error, its text made safe to print."""
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else None
        raise click.ClickException(safe_for_terminal(str(message or error)))
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("reasoning_content"):
            yield Piece(delta["reasoning_content"], reasoning=True)
        if delta.get("content"):
            yield Piece(delta["content"])


def checked_text(text: str, what: str) -> str:
    """Text from the command line or the terminal, refused when it holds bytes that are not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise click.ClickException(
            f"{what} is not UTF-8 text: set your terminal to UTF-8, or convert the text first"
        ) from None
    return text


def print_reply(pieces: Iterator[Piece], markdown: bool) -> str:
    """Print a reply as it streams; returns the answer text (reasoning is shown, not returned)."""
    if markdown:
        from docker_model.cli.markdown_view import print_markdown

        return print_markdown(pieces)
    clean = safe_for_terminal if sys.stdout.isatty() else str
    answer: list[str] = []
    thinking = False
    try:
        for piece in pieces:
            if piece.reasoning and not thinking:
                sys.stdout.write("Thinking:\n")
                thinking = True
            elif not piece.reasoning and thinking:
                sys.stdout.write("\n\n")
                thinking = False
            sys.stdout.write(clean(piece.text))
            sys.stdout.flush()
            if not piece.reasoning:
                answer.append(piece.text)
    finally:
        sys.stdout.write("\n")
        sys.stdout.flush()
    return "".join(answer)
