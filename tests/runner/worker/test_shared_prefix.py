"""A prompt prefix one sequence holds (an agent's long system prompt, sent by several clients) is copied
to the others, not evaluated again; copied cells give the same answer as evaluated ones."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from openai.types.chat import ChatCompletion

from .conftest import Worker
from .test_concurrency import stream_timestamps

pytestmark = pytest.mark.integration


def rules(subject: str) -> str:
    """A system prompt of about 400 tokens: well above what a copy costs."""
    return " ".join(
        f"Rule {n}: when a user asks about {subject} number {n}, answer in one short sentence and mention {n}."
        for n in range(1, 21)
    )


def ask(worker: Worker, system: str, question: str) -> ChatCompletion:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return worker.client.chat.completions.create(model="m", messages=messages, temperature=0, max_tokens=24)


def cached_tokens(reply: ChatCompletion) -> int:
    assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
    return reply.usage.prompt_tokens_details.cached_tokens or 0


def test_a_busy_sequences_prefix_is_copied_and_answers_as_if_evaluated(
    worker: Worker, worker_factory: Callable[..., Worker]
) -> None:
    started = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        system = rules("topic")
        busy = pool.submit(stream_timestamps, worker, 64, started, [{"role": "system", "content": system}])
        assert started.wait(120)
        copied = ask(worker, system, "Tell me about topic number 7.")
        assert busy.result(120)
    prompt_tokens = copied.usage.prompt_tokens if copied.usage else 0
    assert 300 < cached_tokens(copied) < prompt_tokens
    evaluated = ask(worker_factory("--parallel", "1"), system, "Tell me about topic number 7.")
    assert cached_tokens(evaluated) == 0
    assert copied.choices[0].message.content == evaluated.choices[0].message.content


def test_clients_sending_one_prefix_at_once_evaluate_it_once(worker_factory: Callable[..., Worker]) -> None:
    # Small decodes: the prefix takes several steps, so the second request arrives while it is evaluated.
    worker = worker_factory("--parallel", "2", "--batch-size", "64")
    with ThreadPoolExecutor(2) as pool:
        system = rules("planet")
        replies = list(pool.map(lambda n: ask(worker, system, f"Tell me about planet number {n}."), (3, 4)))
    assert all(reply.choices[0].message.content for reply in replies)
    assert max(cached_tokens(reply) for reply in replies) > 300
