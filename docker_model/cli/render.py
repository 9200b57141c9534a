"""Plain-text output as docker prints it: borderless tables, relative times, display names."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

COLUMN_GAP = "   "
# Terminal control characters and escape sequences that a model's text or a model file's metadata could
# carry to move the cursor, retitle the window or rewrite what is on screen; newlines and tabs stay.
CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_for_terminal(text: str) -> str:
    return CONTROL.sub("", text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by three spaces, no borders, no trailing blanks; a cell is one line
    of plain text whatever its source (a model file's metadata included)."""
    rows = [[" ".join(safe_for_terminal(cell).split()) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        COLUMN_GAP.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in (headers, *rows)
    ]
    return "\n".join(line.rstrip() for line in lines)


def human_duration(seconds: float) -> str:
    """Docker's wording for a span of time: `Less than a second`, `About a minute`, `2 months`."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = seconds / 60
    if int(minutes) == 1:
        return "About a minute"
    if minutes < 60:
        return f"{int(minutes)} minutes"
    hours = round(minutes / 60)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def time_ago(timestamp: float, now: float | None = None) -> str:
    return f"{human_duration((now or time.time()) - timestamp)} ago"


def time_until(timestamp: float | None, now: float | None = None) -> str:
    if timestamp is None:
        return "Never"
    remaining = timestamp - (now or time.time())
    return "Now" if remaining <= 0 else f"{human_duration(remaining)} from now"
