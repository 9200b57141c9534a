"""Separating a model's `<think>...</think>` reasoning from its answer (`reasoning_content`)."""

from __future__ import annotations

from .text import partial_suffix_len

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


def prompt_opens_thinking(prompt: str) -> bool:
    """Some chat templates end the generation prompt inside an open `<think>` block."""
    text = prompt.rstrip()
    return text.endswith(OPEN_TAG) or (text.rfind(OPEN_TAG) > text.rfind(CLOSE_TAG))


class ReasoningSplitter:
    """Splits streamed text into (content, reasoning). A `<think>` counts only before any answer text."""

    __slots__ = ("_answered", "_held", "_strip_next", "_thinking")

    def __init__(self, thinking: bool = False):
        self._thinking = thinking
        self._answered = False
        self._strip_next = False
        self._held = ""

    def feed(self, text: str) -> tuple[str, str]:
        if self._answered and not self._thinking:
            return text, ""
        buffer = self._held + text
        self._held = ""
        content: list[str] = []
        reasoning: list[str] = []
        while buffer:
            tag = CLOSE_TAG if self._thinking else OPEN_TAG
            at = buffer.find(tag)
            if not self._thinking and at >= 0 and buffer[:at].strip():
                at = -1  # text before <think>: this is an answer, not reasoning
            if at < 0:
                keep = partial_suffix_len(buffer, (tag,))
                if not self._thinking and buffer[: len(buffer) - keep].strip():
                    keep = 0
                self._held = buffer[len(buffer) - keep :]
                self._add(buffer[: len(buffer) - keep], content, reasoning)
                break
            self._add(buffer[:at], content, reasoning)
            self._thinking = not self._thinking
            self._strip_next = not self._thinking
            buffer = buffer[at + len(tag) :]
        return "".join(content), "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        held, self._held = self._held, ""
        return ("", held) if self._thinking else (held, "")

    def _add(self, text: str, content: list[str], reasoning: list[str]) -> None:
        if self._thinking:
            reasoning.append(text)
            return
        if self._strip_next:
            text = text.lstrip()
            self._strip_next = not text
        if text.strip():
            self._answered = True
        content.append(text)
