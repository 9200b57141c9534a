"""A streamed answer rendered as Markdown on a terminal, each block printed once, as written.

Finished blocks (up to the last blank line outside a code fence) are printed once, above a live area
that redraws only the block in progress and is cropped to the window, so a long answer never repeats
itself in the scrollback. The model's line breaks are kept (Markdown would join them), lines carry no
padding to the terminal's width, and terminal escape sequences in the model's text are removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.text import Text

from docker_model.cli.chat_stream import Piece
from docker_model.cli.render import safe_for_terminal

CODE_FENCE = re.compile(r" {0,3}(```|~~~)")
HARD_BREAK = "  "  # two spaces before a newline: a line break Markdown keeps


def finished_length(text: str) -> int:
    """How much of `text` is complete blocks: up to its last blank line outside a code fence."""
    position = end = 0
    in_fence = False
    for line in text.splitlines(keepends=True):
        position += len(line)
        if not line.endswith("\n"):
            break  # still being written
        if CODE_FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and not line.strip():
            end = position
    return end


def keep_line_breaks(text: str) -> str:
    """Mark each line break inside a paragraph as a hard break, so that a poem keeps its lines."""
    lines = text.split("\n")
    in_fence = False
    for index, line in enumerate(lines[:-1]):
        if CODE_FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.strip() and lines[index + 1].strip():
            lines[index] = line.rstrip(" ") + HARD_BREAK
    return "\n".join(lines)


class Block:
    """Markdown text rendered without the padding rich adds up to the console's width."""

    def __init__(self, text: str) -> None:
        self.markdown = Markdown(keep_line_breaks(safe_for_terminal(text)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in console.render_lines(self.markdown, options, pad=False):
            yield from unpadded(line)
            yield Segment.line()


def unpadded(line: list[Segment]) -> list[Segment]:
    while line and not line[-1].control and not line[-1].text.strip(" "):
        line = line[:-1]
    if line and not line[-1].control:
        last = line[-1]
        line = [*line[:-1], Segment(last.text.rstrip(" "), last.style)]
    return line


def print_markdown(pieces: Iterator[Piece]) -> str:
    """Print a reply as it streams; returns the answer text (reasoning is shown dimmed, not returned)."""
    console = Console()
    reasoning: list[str] = []
    answer = ""
    printed = 0  # characters of the answer already printed as finished blocks

    def in_progress() -> Group:
        thinking = [Text(safe_for_terminal("".join(reasoning)), style="dim italic")] if reasoning and not answer else []
        return Group(*thinking, Block(answer[printed:]))

    try:
        with Live(
            in_progress(), console=console, refresh_per_second=12, vertical_overflow="crop", transient=True
        ) as live:
            for piece in pieces:
                if piece.reasoning:
                    reasoning.append(piece.text)
                else:
                    if not answer and reasoning:
                        live.console.print(Text(safe_for_terminal("".join(reasoning)), style="dim italic"))
                    answer += piece.text
                    done = finished_length(answer)
                    if done > printed:
                        live.console.print(Block(answer[printed:done]))
                        printed = done
                live.update(in_progress())
    finally:  # the live area is gone: what was in it is printed once, even when the stream broke
        if answer[printed:].strip():
            console.print(Block(answer[printed:]))
        elif reasoning and not answer:
            console.print(Text(safe_for_terminal("".join(reasoning)), style="dim italic"))
    return answer
