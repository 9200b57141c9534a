"""Streaming chat completions from the runner, read as Server-Sent Events."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import click

from docker_model.cli.client import RunnerClient


@dataclass(frozen=True)
class Piece:
    """A piece of a streamed reply: answer text, or reasoning the model shows before its answer."""

    text: str
    reasoning: bool = False


def stream_chat(
    client: RunnerClient, model: str, messages: list[dict], debug: bool = False, options: dict | None = None
) -> Iterator[Piece]:
    body = {"model": model, "messages": messages, "stream": True, **(options or {})}
    if debug:
        click.echo(f"POST {client.url('/engines/v1/chat/completions')}\n{json.dumps(body, indent=2)}", err=True)
    with client.request("POST", "/engines/v1/chat/completions", json_body=body) as reply:
        for raw in reply.iter_lines():
            line = raw.decode("utf-8", errors="replace")
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            if "error" in chunk:
                error = chunk["error"]
                raise click.ClickException(error.get("message", str(error)) if isinstance(error, dict) else str(error))
            for choice in chunk.get("choices", []):
                delta = choice.get("delta") or {}
                if delta.get("reasoning_content"):
                    yield Piece(delta["reasoning_content"], reasoning=True)
                if delta.get("content"):
                    yield Piece(delta["content"])


def print_reply(pieces: Iterator[Piece], markdown: bool) -> str:
    """Print a reply as it streams; returns the answer text (reasoning is shown, not returned)."""
    if markdown:
        return print_markdown(pieces)
    answer: list[str] = []
    thinking = False
    for piece in pieces:
        if piece.reasoning and not thinking:
            sys.stdout.write("Thinking:\n")
            thinking = True
        elif not piece.reasoning and thinking:
            sys.stdout.write("\n\n")
            thinking = False
        sys.stdout.write(piece.text)
        sys.stdout.flush()
        if not piece.reasoning:
            answer.append(piece.text)
    sys.stdout.write("\n")
    return "".join(answer)


def print_markdown(pieces: Iterator[Piece]) -> str:
    from rich.console import Console, Group
    from rich.live import Live
    from rich.markdown import Markdown
    from rich.text import Text

    reasoning: list[str] = []
    answer: list[str] = []
    console = Console()

    def view() -> Group:
        parts = [Text("".join(reasoning), style="dim italic")] if reasoning else []
        return Group(*parts, Markdown("".join(answer)))

    with Live(view(), console=console, refresh_per_second=12, vertical_overflow="visible") as live:
        for piece in pieces:
            (reasoning if piece.reasoning else answer).append(piece.text)
            live.update(view())
    return "".join(answer)
