"""Streaming chat completions from the runner, read as Server-Sent Events, and printed as they arrive.

A stream is complete only when it ends with `data: [DONE]`: one cut off before that (the runner stopped
or its worker died) raises IncompleteAnswer, so that no half answer passes for a whole one. The chat goes
to the runner, or to any OpenAI-compatible server (`run --openaiurl`).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click

from docker_model.cli.client import Reply, RunnerClient, RunnerError
from docker_model.cli.render import safe_for_terminal

RUNNER_CHAT_PATH = "/engines/v1/chat/completions"
API_KEY_VARIABLE = "OPENAI_API_KEY"  # the key for an --openaiurl server, as OpenAI's own clients read it
# A word that starts with @ names a file to include: @path, @"path with spaces" or @'path'; @@word is @word.
FILE_WORD = re.compile(r"""(?<!\S)@(?:"([^"]+)"|'([^']+)'|(\S+))""")


class IncompleteAnswer(click.ClickException):
    def __init__(self) -> None:
        super().__init__("the answer is incomplete: the runner stopped before it finished (see `docker model logs`)")


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


def openai_endpoint(url: str) -> ChatEndpoint:
    """The OpenAI-compatible server whose API root is `url` (its chat at `url/chat/completions`): nothing is
    started or probed; OPENAI_API_KEY, when set, is sent as its bearer token."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.UsageError(
            f"--openaiurl {url!r} is not an http:// or https:// URL: give the API root, e.g. http://localhost:8080/v1"
        )
    client = RunnerClient(url.rstrip("/"))
    client.token = os.environ.get(API_KEY_VARIABLE) or None
    client.checked = True  # not a runner: never started, never asked `GET /`
    return ChatEndpoint(client, "/chat/completions")


def include_files(text: str) -> str:
    """`text` with each @path word replaced by that file's text (Docker Model Runner's rule, but a file that
    cannot be read is an error rather than left as it is); `@@word` is sent as `@word`."""

    def content(match: re.Match[str]) -> str:
        path = next(group for group in match.groups() if group is not None)
        if match[3] is not None and path.startswith("@"):
            return path  # @@word: the word itself, one @ less
        try:
            data = Path(path).expanduser().read_bytes()
        except OSError as error:
            raise click.ClickException(
                f"cannot include @{path}: {error.strerror or error} (write @@{path} to send the word as it is)"
            ) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise click.ClickException(f"cannot include @{path}: it is not UTF-8 text") from None

    return FILE_WORD.sub(content, text)


def stream_chat(
    endpoint: ChatEndpoint, model: str, messages: list[dict], debug: bool = False, options: dict | None = None
) -> Generator[Piece, None, None]:
    client = endpoint.client
    body = {"model": model, "messages": messages, "stream": True, **(options or {})}
    if debug:
        click.echo(f"POST {client.url(endpoint.path)}\n{json.dumps(body, indent=2)}", err=True)
    with open_chat(endpoint, body) as reply:
        try:
            for raw in reply.iter_lines():
                line = raw.decode("utf-8", errors="replace")
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                yield from pieces_of(json.loads(data))
        except (OSError, http.client.HTTPException):
            pass  # the connection broke mid-answer
    raise IncompleteAnswer


def open_chat(endpoint: ChatEndpoint, body: dict) -> Reply:
    """The streamed answer to a chat request; an error status becomes a one-line error."""
    if endpoint.is_runner:
        return endpoint.client.request("POST", endpoint.path, json_body=body)
    try:
        reply = endpoint.client.send("POST", endpoint.path, json_body=body)
    except (OSError, http.client.HTTPException) as error:
        raise click.ClickException(f"cannot reach {endpoint.client.url(endpoint.path)}: {error}") from None
    if reply.status >= 400:
        raise RunnerError.of(reply)
    return reply


def pieces_of(chunk: dict) -> Iterator[Piece]:
    if "error" in chunk:
        error = chunk["error"]
        raise click.ClickException(error.get("message", str(error)) if isinstance(error, dict) else str(error))
    for choice in chunk.get("choices", []):
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
