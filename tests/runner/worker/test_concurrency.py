"""Requests to one model are decoded together; a client that leaves frees its sequence at once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from .conftest import Worker

pytestmark = pytest.mark.integration

STORY = [{"role": "user", "content": "Tell me a long story about a dragon."}]


def stream_timestamps(
    worker: Worker, max_tokens: int, started: threading.Event | None = None, before: list | None = None
) -> list[float]:
    """Stream one completion (`before` + STORY) and return the arrival time of every text chunk (`started`
    set at the first)."""
    stamps = []
    stream = worker.client.chat.completions.create(
        model="m",
        messages=[*(before or []), *STORY],
        max_tokens=max_tokens,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.monotonic())
            if started is not None:
                started.set()
    return stamps


def test_two_streams_produce_tokens_in_the_same_interval(worker: Worker) -> None:
    results: dict[str, list[float]] = {}
    threads = [
        threading.Thread(target=lambda key=key: results.__setitem__(key, stream_timestamps(worker, 48)))
        for key in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    a, b = results["a"], results["b"]
    start, end = max(a[0], b[0]), min(a[-1], b[-1])
    assert start < end, "the two streams never produced tokens at the same time"
    # Served one after the other, at most one chunk of either stream could fall in the shared interval.
    assert sum(start <= t <= end for t in a) >= 10
    assert sum(start <= t <= end for t in b) >= 10


def open_stream(worker: Worker, max_tokens: int) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(timeout=60)
    body = {"model": "m", "messages": STORY, "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    response = client.send(client.build_request("POST", f"{worker.base_url}/chat/completions", json=body), stream=True)
    assert response.status_code == 200
    return client, response


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list]:
    box: list = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()
    return thread, box


def test_disconnected_stream_frees_its_sequence(worker_factory: Callable[..., Worker]) -> None:
    worker = worker_factory("--parallel", "1", "--ctx-size", "4096")
    client, first = open_stream(worker, max_tokens=4000)
    lines = (line for line in first.iter_lines() if line.startswith("data:"))
    next(lines)
    began = time.monotonic()
    for _ in range(10):
        next(lines)
    seconds_per_token = (time.monotonic() - began) / 10

    def second() -> object:
        return worker.client.chat.completions.create(model="m", messages=STORY, max_tokens=8)

    thread, box = in_thread(second)
    thread.join(2)
    assert thread.is_alive(), "with one sequence, the second request should wait for the first"
    first.close()
    client.close()
    closed = time.monotonic()
    thread.join(300)
    assert box and box[0].usage.completion_tokens == 8
    # Had the first stream kept its sequence, the second would have waited for ~3990 more tokens.
    assert time.monotonic() - closed < 1000 * seconds_per_token


def test_full_queue_is_a_503(worker_factory: Callable[..., Worker]) -> None:
    worker = worker_factory("--parallel", "1", "--max-queue", "0")
    client, first = open_stream(worker, max_tokens=2000)
    try:
        next(line for line in first.iter_lines() if line.startswith("data:"))
        response = httpx.post(f"{worker.base_url}/chat/completions", json={"model": "m", "messages": STORY}, timeout=30)
        assert response.status_code == 503
        assert "busy" in json.loads(response.content)["error"]["message"]
    finally:
        first.close()
        client.close()


def test_embeddings_are_served_while_streams_generate(worker: Worker) -> None:
    idle = worker.client.embeddings.create(model="m", input="A quiet embedding.").data[0].embedding
    started = threading.Event()
    thread, box = in_thread(lambda: stream_timestamps(worker, 64, started))
    assert started.wait(120)
    busy = worker.client.embeddings.create(model="m", input="A quiet embedding.").data[0].embedding
    ended = time.monotonic()
    thread.join(300)
    assert busy == pytest.approx(idle, abs=1e-4)
    assert box and box[0][-1] > ended, "the embedding should not have waited for the stream to finish"


def test_reused_prompt_prefix_gives_the_same_answer(worker_factory: Callable[..., Worker]) -> None:
    """A slot keeps its KV cells as a prompt cache; reusing part of them must not change the output."""
    worker = worker_factory("--parallel", "1")

    def ask(question: str) -> str:
        messages = [
            {"role": "system", "content": "You are a geography teacher."},
            {"role": "user", "content": question},
        ]
        reply = worker.client.chat.completions.create(model="m", messages=messages, temperature=0, max_tokens=32)
        return reply.choices[0].message.content

    fresh = ask("What is the capital of Italy?")
    ask("What is the capital of Spain?")  # shares the system prompt, then differs
    assert ask("What is the capital of Italy?") == fresh


@pytest.mark.timeout(120)
def test_a_request_queued_behind_the_only_sequence_starts_when_it_finishes(
    worker_factory: Callable[..., Worker],
) -> None:
    """With one sequence, a second request waits; once the first ends it must start at once (the engine once
    slept until a third request arrived, and the second hung)."""
    worker = worker_factory("--parallel", "1")
    results: dict[str, list[float]] = {}
    threads = [
        threading.Thread(target=lambda key=key: results.__setitem__(key, stream_timestamps(worker, 16)))
        for key in ("first", "second")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not any(thread.is_alive() for thread in threads), "a queued request was never started"
    assert results["first"] and results["second"], results
