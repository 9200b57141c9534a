"""Incremental text handling for generated tokens: UTF-8 reassembly and stop strings.

Both hold back a little text: bytes of a UTF-8 character split across tokens, and a tail that could
still grow into a stop string, so that a stop string never leaks partially into the output.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


def partial_suffix_len(text: str, needles: Sequence[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `needles`."""
    longest = max((len(n) for n in needles), default=1) - 1
    for size in range(min(len(text), longest), 0, -1):
        tail = text[-size:]
        if any(n.startswith(tail) for n in needles):
            return size
    return 0


class StopMatcher:
    """Cuts the output at the first stop string, holding back any tail that may start one."""

    __slots__ = ("_held", "_stops")

    def __init__(self, stops: Sequence[str]):
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Return the text that is safe to emit, and whether a stop string was reached."""
        buffer = self._held + text
        found = [i for i in (buffer.find(s) for s in self._stops) if i >= 0]
        if found:
            self._held = ""
            return buffer[: min(found)], True
        keep = partial_suffix_len(buffer, self._stops)
        self._held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """The held-back tail, once generation ended without reaching a stop string."""
        held, self._held = self._held, ""
        return held


class TokenText:
    """Turns a stream of token pieces (bytes) into text, applying stop strings when there are any."""

    __slots__ = ("_decode", "_stop")

    def __init__(self, stops: Sequence[str]):
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._stop = StopMatcher(stops) if any(stops) else None

    def feed(self, piece: bytes) -> tuple[str, bool]:
        text = self._decode(piece)
        if self._stop is None:
            return text, False
        return self._stop.feed(text)

    def flush(self) -> str:
        text = self._decode(b"", True)
        if self._stop is None:
            return text
        emitted, _ = self._stop.feed(text)
        return emitted + self._stop.flush()
