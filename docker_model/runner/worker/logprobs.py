"""Log probabilities of generated tokens, read from the logits llama.cpp computed for them.

They are the model's own distribution (a log-softmax of the raw logits), before any sampler (temperature,
top-k, penalties, grammar) reshapes it, as OpenAI reports them. A token's entry reaches the client with
the text it produced: text held back (a possible stop string, part of a UTF-8 character) holds back its
entries too, and the tokens of a stop string are never reported.
"""

from __future__ import annotations

import ctypes
from collections import deque
from dataclasses import dataclass

import numpy as np

from .bindings import lc


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: int
    logprob: float
    top: tuple[tuple[int, float], ...]  # the `top` most likely tokens and their logprobs, most likely first


def token_logprob(ctx: ctypes.c_void_p, index: int, n_vocab: int, token: int, top: int) -> TokenLogprob:
    """The logprob of `token` at output `index` of the last decode, with the `top` most likely tokens."""
    pointer = lc.llama_get_logits_ith(ctx, index)
    logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,))
    peak = float(logits.max())
    log_total = peak + float(np.log(np.exp(logits - peak).sum()))
    best: tuple[tuple[int, float], ...] = ()
    if top > 0:
        candidates = np.argpartition(logits, -top)[-top:]
        ranked = candidates[np.argsort(-logits[candidates], kind="stable")]
        best = tuple((int(t), float(logits[t]) - log_total) for t in ranked)
    return TokenLogprob(token, float(logits[token]) - log_total, best)


class HeldLogprobs:
    """A sequence's entries waiting for their text: released once every byte of a token's text is sent."""

    __slots__ = ("_held", "_received", "_sent", "top")

    def __init__(self, top: int) -> None:
        self.top = top  # alternatives reported per token
        self._held: deque[tuple[int, int, TokenLogprob]] = deque()  # (first byte, end byte, entry)
        self._received = 0  # bytes of every token held or released
        self._sent = 0  # bytes of text sent to the client

    def add(self, entry: TokenLogprob, size: int) -> None:
        """An entry for a token whose text is `size` bytes long."""
        self._held.append((self._received, self._received + size, entry))
        self._received += size

    def release(self, sent_text: str, final: bool = False) -> list[TokenLogprob]:
        """The entries whose text `sent_text` completes. `final`: the output ends with it; a token whose
        text was partly sent (cut by a stop string) is released, those not sent at all are dropped."""
        self._sent += len(sent_text.encode())
        released = []
        while self._held and (self._held[0][1] <= self._sent or (final and self._held[0][0] < self._sent)):
            released.append(self._held.popleft()[2])
        if final:
            self._held.clear()
        return released
