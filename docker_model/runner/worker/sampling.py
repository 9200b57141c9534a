"""Per-request sampling, done in C by a llama.cpp sampler chain (one chain per sequence).

A grammar is checked the way llama-server checks it: the chain samples freely, and only when the grammar
rejects that token are the candidates filtered by the grammar and sampled again. Filtering the whole
vocabulary costs about as much as decoding a token of a small model; checking one token costs nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .bindings import lc
from .llama import LlamaModel


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Defaults are llama-server's, which is what Docker Model Runner's users get."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    seed: int | None = None
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    penalty_last_n: int = 64  # -1: the whole context
    typical_p: float = 1.0
    top_n_sigma: float = -1.0  # off when not positive
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    dynatemp_range: float = 0.0
    dynatemp_exponent: float = 1.0
    mirostat: int = 0  # 1 or 2: Mirostat's version, in place of top-k, top-p and the others
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    dry_multiplier: float = 0.0  # DRY's repetition penalty, off at 0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1  # -1: the whole context
    dry_sequence_breakers: tuple[str, ...] = ("\n", ":", '"', "*")
    ignore_eos: bool = False
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token, added to its logit), as OpenAI's logit_bias
    grammar: str | None = None  # GBNF the output must match (checked before it gets here)
    grammar_trigger: str | None = None  # a regex: the grammar applies from its first group's match on

    def updated(self, **overrides: Any) -> SamplingParams:
        """A copy with the overrides that are not None (fields a request left out keep the default)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def grammar_sampler(model: LlamaModel, grammar: str, trigger: str | None = None) -> ctypes.c_void_p:
    """llama.cpp's grammar sampler (root rule `root`); lazy when `trigger` is given. NULL when the grammar
    does not parse."""
    if trigger is None:
        return lc.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
    patterns = (ctypes.c_char_p * 1)(trigger.encode())
    return lc.llama_sampler_init_grammar_lazy_patterns(model.vocab, grammar.encode(), b"root", patterns, 1, None, 0)


TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])  # llama_token_data


class Candidates:
    """A reusable llama_token_data_array over the whole vocabulary, filled from a decode's logits."""

    def __init__(self, n_vocab: int):
        self.n_vocab = n_vocab
        self.data = np.zeros(n_vocab, TOKEN_DATA)
        self.ids = np.arange(n_vocab, dtype=np.int32)
        pointer = self.data.ctypes.data_as(lc.llama_token_data_p)
        self.array = lc.llama_token_data_array(data=pointer, size=n_vocab, selected=-1, sorted=False)
        self.one = np.zeros(1, TOKEN_DATA)
        self.one_array = lc.llama_token_data_array(
            data=self.one.ctypes.data_as(lc.llama_token_data_p), size=1, selected=-1, sorted=False
        )

    def fill(self, ctx: ctypes.c_void_p, index: int) -> Any:
        """The candidates of output `index` of the last decode, as a pointer for llama_sampler_apply."""
        logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, index), shape=(self.n_vocab,))
        self.data["id"] = self.ids
        self.data["logit"] = logits
        self.array.size, self.array.selected, self.array.sorted = self.n_vocab, -1, False
        return ctypes.byref(self.array)

    def selected(self) -> int:
        return int(self.data["id"][self.array.selected])

    def allows(self, grammar: ctypes.c_void_p, token: int) -> bool:
        """Whether `grammar` allows `token` next."""
        self.one[0] = (token, 0.0, 0.0)
        self.one_array.size, self.one_array.selected, self.one_array.sorted = 1, -1, False
        lc.llama_sampler_apply(grammar, ctypes.byref(self.one_array))
        return bool(np.isfinite(self.one["logit"][0]))


class SequenceSampler:
    """The sampling of one sequence: its chain, and its grammar when the request constrains the output."""

    def __init__(self, chain: ctypes.c_void_p, grammar: ctypes.c_void_p | None, candidates: Candidates | None):
        self.chain = chain
        self.grammar = grammar
        self.candidates = candidates

    def sample(self, ctx: ctypes.c_void_p, index: int) -> int:
        """The next token, from output `index` of the last decode; the chain (and grammar) accept it."""
        if self.grammar is None or self.candidates is None:
            return int(lc.llama_sampler_sample(self.chain, ctx, index))
        candidates = self.candidates
        lc.llama_sampler_apply(self.chain, candidates.fill(ctx, index))
        token = candidates.selected()
        if not candidates.allows(self.grammar, token):
            filled = candidates.fill(ctx, index)
            lc.llama_sampler_apply(self.grammar, filled)
            lc.llama_sampler_apply(self.chain, filled)
            token = candidates.selected()
            if not candidates.allows(self.grammar, token):  # accepting it would abort the process
                raise ValueError("the grammar allows no token here")
        lc.llama_sampler_accept(self.grammar, token)
        lc.llama_sampler_accept(self.chain, token)
        return token

    def free(self) -> None:
        lc.llama_sampler_free(self.chain)
        if self.grammar is not None:
            lc.llama_sampler_free(self.grammar)


def build_sampler(params: SamplingParams, model: LlamaModel, prompt: list[int], n_ctx: int) -> SequenceSampler:
    """A new sampler; free it with `free()`. The chain's samplers come in llama-server's order, so that a
    request gives what it gives there.

    Penalties count the end of the prompt as well as the answer, as llama-server's do: a model asked to
    continue a repetitive text is kept from repeating it. A penalty window of -1 is `n_ctx` tokens.
    """
    params = replace(
        params,
        penalty_last_n=n_ctx if params.penalty_last_n == -1 else params.penalty_last_n,
        dry_penalty_last_n=n_ctx if params.dry_penalty_last_n == -1 else params.dry_penalty_last_n,
    )
    chain = _chain(params, model, prompt)
    if params.grammar is None:
        return SequenceSampler(chain, None, None)
    grammar = grammar_sampler(model, params.grammar, params.grammar_trigger)
    if not grammar:
        lc.llama_sampler_free(chain)
        raise ValueError("llama.cpp could not create the grammar sampler")
    return SequenceSampler(chain, grammar, Candidates(model.n_vocab))


def _chain(params: SamplingParams, model: LlamaModel, prompt: list[int]) -> ctypes.c_void_p:
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())

    def add(sampler: ctypes.c_void_p) -> None:
        if not sampler:
            lc.llama_sampler_free(chain)
            raise ValueError("llama.cpp could not create a sampler")
        lc.llama_sampler_chain_add(chain, sampler)

    for sampler in _bias_and_penalties(params, model, prompt):
        add(sampler)
    seed = lc.LLAMA_DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
    if params.temperature <= 0:
        add(lc.llama_sampler_init_greedy())
    elif params.mirostat:
        add(lc.llama_sampler_init_temp(params.temperature))
        if params.mirostat == 1:
            add(lc.llama_sampler_init_mirostat(model.n_vocab, seed, params.mirostat_tau, params.mirostat_eta, 100))
        else:
            add(lc.llama_sampler_init_mirostat_v2(seed, params.mirostat_tau, params.mirostat_eta))
    else:
        for sampler in _truncations(params, seed):
            add(sampler)
        add(lc.llama_sampler_init_temp_ext(params.temperature, params.dynatemp_range, params.dynatemp_exponent))
        add(lc.llama_sampler_init_dist(seed))
    return chain


def _bias_and_penalties(params: SamplingParams, model: LlamaModel, prompt: list[int]) -> Iterator[ctypes.c_void_p]:
    bias = dict(params.logit_bias)
    if params.ignore_eos:
        bias.update(dict.fromkeys(model.eog_tokens, float("-inf")))
    if bias:
        entries = (lc.llama_logit_bias * len(bias))()
        for entry, (token, value) in zip(entries, sorted(bias.items()), strict=True):
            entry.token, entry.bias = token, value
        yield lc.llama_sampler_init_logit_bias(model.n_vocab, len(entries), entries)
    if params.repeat_penalty != 1.0 or params.frequency_penalty or params.presence_penalty:
        penalties = lc.llama_sampler_init_penalties(
            model.n_vocab,
            params.penalty_last_n,
            params.repeat_penalty,
            params.frequency_penalty,
            params.presence_penalty,
        )
        # The prompt's tail goes to the penalties alone.
        for token in prompt[-params.penalty_last_n :] if params.penalty_last_n > 0 else prompt:
            lc.llama_sampler_accept(penalties, token)
        yield penalties
    if params.dry_multiplier > 0:
        breakers = [text.encode() for text in params.dry_sequence_breakers]
        yield lc.llama_sampler_init_dry(
            model.vocab,
            params.dry_multiplier,
            params.dry_base,
            params.dry_allowed_length,
            params.dry_penalty_last_n,
            (ctypes.c_char_p * len(breakers))(*breakers),
            len(breakers),
        )


def _truncations(params: SamplingParams, seed: int) -> Iterator[ctypes.c_void_p]:
    """The samplers that narrow the candidates before the temperature, each only when it is switched on."""
    if params.top_n_sigma > 0:
        yield lc.llama_sampler_init_top_n_sigma(params.top_n_sigma)
    if params.top_k > 0:
        yield lc.llama_sampler_init_top_k(params.top_k)
    if params.typical_p < 1.0:
        yield lc.llama_sampler_init_typical(params.typical_p, 1)
    if params.top_p < 1.0:
        yield lc.llama_sampler_init_top_p(params.top_p, 1)
    if params.min_p > 0.0:
        yield lc.llama_sampler_init_min_p(params.min_p, 1)
    if params.xtc_probability > 0.0:
        yield lc.llama_sampler_init_xtc(params.xtc_probability, params.xtc_threshold, 1, seed)
