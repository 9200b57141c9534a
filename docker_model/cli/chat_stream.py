"""Streaming chat completions from the runner, read as Server-Sent Events, and printed as they arrive.

A stream is complete only when it ends with `data: [DONE]`: one cut off before that (the runner stopped
or its worker died) raises IncompleteAnswer, so that no half answer passes for a whole one.
"""

from __future__ import annotations

import http.client
import json
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import click

from docker_model.cli.client import RunnerClient
from docker_model.cli.render import safe_for_terminal


class IncompleteAnswer(click.ClickException):
    def __init__(self) -> None:
        super().__init__("the answer is incomplete: the runner stopped before it finished (see `docker model logs`)")


@dataclass(frozen=True)
class Piece:
    """A piece of a streamed reply: answer text, or reasoning the model shows before its answer."""

    text: str
    reasoning: bool = False


def stream_chat(
    client: RunnerClient, model: str, messages: list[dict], debug: bool = False, options: dict | None = None
) -> Generator[Piece, None, None]:
    body = {"model": model, "messages": messages, "stream": True, **(options or {})}
    if debug:
        click.echo(f"POST {client.url('/engines/v1/chat/completions')}\n{json.dumps(body, indent=2)}", err=True)
    with client.request("POST", "/engines/v1/chat/completions", json_body=body) as reply:
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
