"""Logprobs (chat and text completions, streamed or not) and `n` answers per request, through the
official openai SDK against a real worker."""

from __future__ import annotations

import math
from collections import defaultdict

import openai
import pytest

from .conftest import FRANCE, Worker

pytestmark = pytest.mark.integration


def test_chat_logprobs_cover_the_answer_token_by_token(worker: Worker) -> None:
    reply = worker.client.chat.completions.create(
        model="m", messages=FRANCE, max_tokens=12, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    entries = choice.logprobs.content
    assert "".join(entry.token for entry in entries) == choice.message.content
    assert len(entries) == reply.usage.completion_tokens  # type: ignore[union-attr]
    for entry in entries:
        assert bytes(entry.bytes or []).decode() == entry.token
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token  # greedy: the chosen token is the likeliest
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)
        assert all(a.logprob >= b.logprob for a, b in zip(entry.top_logprobs, entry.top_logprobs[1:], strict=False))
        assert sum(math.exp(alt.logprob) for alt in entry.top_logprobs) <= 1.0 + 1e-6


def test_streamed_logprobs_arrive_with_their_text(worker: Worker) -> None:
    stream = worker.client.chat.completions.create(
        model="m", messages=FRANCE, max_tokens=12, temperature=0, logprobs=True, stream=True
    )
    text, tokens = [], []
    for chunk in stream:
        choice = chunk.choices[0]
        if choice.logprobs is not None and choice.logprobs.content:
            chunk_tokens = [entry.token for entry in choice.logprobs.content]
            assert "".join(chunk_tokens) == choice.delta.content
            assert all(entry.top_logprobs == [] for entry in choice.logprobs.content)
            tokens.extend(chunk_tokens)
        text.append(choice.delta.content or "")
    assert tokens and "".join(tokens) == "".join(text)


def test_completion_logprobs_stop_where_the_text_stops(worker: Worker) -> None:
    reply = worker.client.completions.create(
        model="m", prompt="The capital of France is", max_tokens=16, temperature=0, logprobs=2, stop=["."]
    )
    choice = reply.choices[0]
    logprobs = choice.logprobs
    assert choice.finish_reason == "stop" and logprobs is not None and logprobs.tokens
    assert "".join(logprobs.tokens) == choice.text  # the stop string's token is not reported
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(logprobs.tokens))]
    assert logprobs.top_logprobs is not None
    for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs or [], logprobs.top_logprobs, strict=True):
        assert len(top) == 2 and top[token] == pytest.approx(logprob)


def test_n_answers_share_one_prompt_and_a_seed_makes_them_reproducible(worker: Worker) -> None:
    def ask() -> openai.types.chat.ChatCompletion:
        return worker.client.chat.completions.create(
            model="m", messages=FRANCE, max_tokens=16, n=2, seed=7, temperature=1.2
        )

    first, again = ask(), ask()
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]
    assert first.choices[0].message.content != first.choices[1].message.content  # seeds 7 and 8
    assert first.usage is not None and first.usage.prompt_tokens == again.usage.prompt_tokens  # type: ignore[union-attr]
    single = worker.client.chat.completions.create(model="m", messages=FRANCE, max_tokens=16)
    assert first.usage.prompt_tokens == single.usage.prompt_tokens  # type: ignore[union-attr]  # counted once


def test_streamed_choices_each_carry_their_index_and_finish(worker: Worker) -> None:
    stream = worker.client.chat.completions.create(
        model="m",
        messages=FRANCE,
        max_tokens=10,
        n=2,
        seed=3,
        temperature=1.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts: dict[int, str] = defaultdict(str)
    finishes: dict[int, str] = {}
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert set(texts) == set(finishes) == {0, 1}
    assert usage is not None and usage.completion_tokens <= 20


def test_more_answers_than_parallel_sequences_is_a_400_naming_n(worker: Worker) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        worker.client.chat.completions.create(model="m", messages=FRANCE, max_tokens=2, n=3)
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "n"
