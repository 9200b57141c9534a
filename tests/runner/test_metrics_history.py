"""The runner's metrics history (`GET /engines/history`) and its alerts: fast tests feed it readings on a fake
clock; crashes are counted by the scheduler with stand-in workers; then the real runner with SmolLM2: the
requests made show in it, a budget just above use raises the memory alert, a queue of one with parallel
requests the queue alert, `kill -9` of the worker the crash alert; and a client that leaves mid-stream frees
its sequence and stops the token counter."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from docker_model.distribution import Model, Store
from docker_model.runner.metrics import WorkerCrash
from docker_model.runner.metrics_history import MetricsHistory, Reading, WorkerReading
from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env
from tests.fixtures.waiting import wait_until
from tests.runner.conftest import MODEL, load_model
from tests.runner.test_host_side import StandInLauncher, models, scheduler_for  # noqa: F401 - a fixture

MiB = 1024**2
GiB = 1024**3
T0 = 1_800_000_000.0


def reading(
    seconds: float, available: int = 8 * GiB, budget: int | None = None, **workers: WorkerReading | None
) -> Reading:
    return Reading(T0 + seconds, available, budget, dict(workers))


def test_samples_turn_counters_into_rates_per_interval() -> None:
    history = MetricsHistory()
    history.add(reading(5, m=WorkerReading(pid=7, generated_tokens=10, ttft_sum=0.5, ttft_count=1, memory_bytes=GiB)))
    worker = WorkerReading(pid=7, generated_tokens=60, ttft_sum=1.1, ttft_count=3, queue=2, memory_bytes=GiB)
    history.add(Reading(T0 + 10, 7 * GiB, None, {"m": worker}, {("m", 200): 4, ("m", 500): 1, ("", 404): 9}))
    report = history.report([], T0 + 10)
    first, second = (sample["models"]["m"] for sample in report["samples"])
    assert first["tokens_per_second"] == 2.0 and first["ttft_seconds"] == 0.5  # from 0: the worker is new
    assert second == {
        "tokens_per_second": 10.0,
        "requests": 5,
        "errors": 1,
        "queue": 2,
        "ttft_seconds": pytest.approx(0.3),
        "memory_bytes": GiB,
    }
    assert report["samples"][1]["memory"] == {"used": GiB, "available": 7 * GiB, "budget": None, "limit": 8 * GiB}
    assert (report["interval_seconds"], report["window_seconds"], report["alerts"]) == (5, 900, [])


def test_a_new_worker_and_a_silent_one_never_make_negative_or_doubled_rates() -> None:
    history = MetricsHistory()
    history.add(reading(5, m=WorkerReading(pid=7, generated_tokens=500)))
    history.add(reading(10, m=None))  # it did not answer: its counters wait for the next sample
    history.add(reading(15, m=WorkerReading(pid=7, generated_tokens=600)))
    history.add(reading(20, m=WorkerReading(pid=8, generated_tokens=25)))  # started again: from 0
    rates = [s["models"]["m"]["tokens_per_second"] for s in history.report([], T0 + 20)["samples"]]
    assert rates == [100.0, 0.0, 20.0, 5.0]


def test_a_model_asked_but_no_longer_loaded_still_shows_its_requests() -> None:
    history = MetricsHistory()
    history.add(reading(5))
    history.add(Reading(T0 + 10, GiB, None, {}, {("gone", 200): 2}))
    [_, sample] = history.report([], T0 + 10)["samples"]
    assert sample["models"]["gone"]["requests"] == 2 and sample["models"]["gone"]["memory_bytes"] == 0


def test_the_ring_keeps_15_minutes_and_its_memory_bound_holds() -> None:
    """180 samples of 4 models each: under the bound metrics_history.py states for them (0.5 MiB)."""
    history = MetricsHistory()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for step in range(400):
        workers = {f"ai/model-{n}": WorkerReading(pid=n, generated_tokens=step * 10.0 + n) for n in range(4)}
        answered = {(f"ai/model-{n}", 200): float(step) for n in range(4)}
        history.add(Reading(T0 + 5 * step, GiB, None, workers, answered))  # type: ignore[arg-type]
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    samples = history.report([], T0 + 5 * 399)["samples"]
    assert len(samples) == 180 and samples[0]["time"] == T0 + 5 * 220
    assert held < 0.5 * MiB, held


def test_memory_near_its_limit_raises_an_alert_while_it_lasts() -> None:
    history = MetricsHistory()
    history.add(reading(5, budget=10 * GiB, m=WorkerReading(pid=7, memory_bytes=5 * GiB)))
    history.add(reading(10, budget=10 * GiB, m=WorkerReading(pid=7, memory_bytes=9 * GiB)))
    history.add(reading(15, budget=10 * GiB, m=WorkerReading(pid=7, memory_bytes=int(9.5 * GiB))))
    [alert] = history.report([], T0 + 15)["alerts"]
    assert alert["kind"] == "memory" and alert["model"] is None and alert["since"] == T0 + 10
    assert "95%" in alert["message"] and "budget" in alert["message"]
    history.add(reading(20, budget=10 * GiB, m=WorkerReading(pid=7, memory_bytes=8 * GiB)))
    assert history.report([], T0 + 20)["alerts"] == []
    without_budget = MetricsHistory()  # the limit: what is available plus what the models use
    without_budget.add(reading(5, available=GiB // 2, m=WorkerReading(pid=7, memory_bytes=5 * GiB)))
    assert [a["kind"] for a in without_budget.report([], T0 + 5)["alerts"]] == ["memory"]


def test_a_full_queue_or_refused_requests_raise_the_queue_alert_while_full_within_the_last_minute() -> None:
    history = MetricsHistory()
    full = WorkerReading(pid=7, queue=1, busy=1, parallel=1, max_queue=1)
    history.add(reading(5, m=full))
    history.add(reading(10, m=WorkerReading(pid=7, parallel=1, max_queue=1)))
    history.add(Reading(T0 + 15, GiB, None, {"n": WorkerReading(pid=9)}, {("n", 503): 3}))  # refused: full
    alerts = {a["model"]: a for a in history.report([], T0 + 15)["alerts"]}
    assert (
        alerts["m"]["kind"] == "queue"
        and alerts["m"]["since"] == T0 + 5
        and "at most 1 waiting" in alerts["m"]["message"]
    )
    assert "503 in the window: 3" in alerts["n"]["message"]
    assert history.report([], T0 + 5 + 61)["alerts"] == [alerts["n"]]  # m not full for a minute: past
    assert history.report([], T0 + 15 + 61)["alerts"] == []


def test_crashes_within_the_window_are_one_alert_a_model() -> None:
    crashes = [WorkerCrash(T0, "ai/old", "exited with code 70"), WorkerCrash(T0 + 800, "ai/m", "was killed (SIGKILL)")]
    [alert] = MetricsHistory().report(crashes, T0 + 950)["alerts"]
    assert alert == {
        "kind": "crash",
        "model": "ai/m",
        "message": "the worker of ai/m was killed (SIGKILL); the next request starts it again",
        "since": T0 + 800,
    }
    again = [*crashes, WorkerCrash(T0 + 900, "ai/m", "exited with code 75"), WorkerCrash(T0 + 910, "ai/n", "exited")]
    alerts = {alert["model"]: alert for alert in MetricsHistory().report(again, T0 + 950)["alerts"]}
    assert alerts["ai/m"] == {
        "kind": "crash",
        "model": "ai/m",
        "message": "the worker of ai/m crashed 2 times in the window; the last one exited with code 75; "
        "the next request starts it again",
        "since": T0 + 800,
    }
    assert alerts["ai/n"]["since"] == T0 + 910 and list(alerts) == ["ai/m", "ai/n"]


def test_the_scheduler_counts_a_worker_that_died_unstopped_as_a_crash(
    models: tuple[Store, dict[str, Model]],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    store, found = models
    launcher = StandInLauncher()

    async def scenario() -> None:
        scheduler = scheduler_for(store, tmp_path, launcher)
        scheduler.release(await scheduler.acquire(found["a"], "a"))
        scheduler.release(await scheduler.acquire(found["b"], "b"))
        await scheduler.unload([found["b"].id])  # stopped by the runner: no crash
        scheduler.loaded[found["a"].id].worker.alive = False
        scheduler.release(await scheduler.acquire(found["a"], "a"))  # noticed, and started again
        [crash] = scheduler.metrics.crashed
        assert (crash.model, crash.cause) == ("a", "exited")
        assert scheduler.metrics.crashes.labels("a")._value.get() == 1

    asyncio.run(scenario())


# -- the real runner ----------------------------------------------------------------------------------------------


def history_of(env: RunnerEnv) -> dict:
    answer = requests.get(f"{env.base_url}/engines/history", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def chat(env: RunnerEnv, max_tokens: int = 16, **extra: object) -> requests.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me about dragons."}], **extra}
    return requests.post(
        f"{env.base_url}/engines/v1/chat/completions", json={**body, "max_tokens": max_tokens}, timeout=300
    )


def worker_metric(env: RunnerEnv, name: str) -> float:
    text = requests.get(f"{env.base_url}/metrics", timeout=30).text
    values = [s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]
    assert values, f"{name} is not in /metrics"
    return sum(values)


def alerts_of(env: RunnerEnv, kind: str) -> list[dict]:
    return [alert for alert in history_of(env)["alerts"] if alert["kind"] == kind]


@pytest.mark.integration
def test_the_requests_made_show_in_the_history(served: RunnerEnv) -> None:
    for _ in range(3):
        assert chat(served).status_code == 200

    def counted() -> int:
        return sum(s["models"].get(MODEL, {}).get("requests", 0) for s in history_of(served)["samples"])

    assert wait_until(lambda: counted() >= 3, 30), history_of(served)
    seen = [s["models"][MODEL] for s in history_of(served)["samples"] if MODEL in s["models"]]
    assert any(model["tokens_per_second"] > 0 for model in seen)
    assert any(model["ttft_seconds"] for model in seen)
    assert all(model["errors"] == 0 for model in seen)
    assert seen[-1]["memory_bytes"] > 0
    metrics = requests.get(f"{served.base_url}/metrics", timeout=30).text
    assert "docker_model_available_memory_bytes " in metrics


@pytest.mark.integration
def test_a_client_that_leaves_mid_stream_frees_its_sequence_and_stops_the_tokens(served: RunnerEnv) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": 4000,
        "ignore_eos": True,
        "stream": True,
    }
    with (
        httpx.Client(timeout=120) as client,
        client.stream("POST", f"{served.base_url}/engines/v1/chat/completions", json=body) as stream,
    ):
        lines = (line for line in stream.iter_lines() if line.startswith("data:"))
        for _ in range(5):
            next(lines)
    assert wait_until(lambda: worker_metric(served, "docker_model_busy_sequences") == 0, 60)
    before = worker_metric(served, "docker_model_generated_tokens_total")
    answer = chat(served, max_tokens=8, ignore_eos=True)
    assert answer.json()["usage"]["completion_tokens"] == 8
    # Had the stream that left kept generating, more than the 8 tokens of this answer would have been counted.
    assert worker_metric(served, "docker_model_generated_tokens_total") == before + 8

    def in_use() -> list[bool]:
        return [m["in_use"] for m in requests.get(f"{served.base_url}/engines/ps", timeout=30).json()]

    assert wait_until(lambda: in_use() == [False], 30), in_use()  # the runner released it too


@pytest.mark.integration
def test_a_queue_of_one_with_parallel_requests_raises_the_queue_alert(served: RunnerEnv) -> None:
    flags = {"model": MODEL, "runtime_flags": ["--parallel", "1", "--max-queue", "1"]}
    assert requests.post(f"{served.base_url}/engines/_configure", json=flags, timeout=300).ok
    statuses: list[int] = []

    def ask() -> None:
        statuses.append(chat(served, max_tokens=48, ignore_eos=True).status_code)

    try:
        while not alerts_of(served, "queue"):  # waves of 4: one answered, one waiting, the others refused
            threads = [threading.Thread(target=ask) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
            assert len(statuses) % 4 == 0, "a request was never answered"  # the one waiting must be served
            assert len(statuses) <= 40, f"no queue alert after {len(statuses)} requests: {statuses}"
            wait_until(lambda: bool(alerts_of(served, "queue")), 10)
    finally:
        reset = {"model": MODEL, "runtime_flags": []}
        assert requests.post(f"{served.base_url}/engines/_configure", json=reset, timeout=300).ok
    assert set(statuses) == {200, 503}
    [alert] = [a for a in alerts_of(served, "queue") if a["model"] == MODEL]
    assert "at most 1 waiting" in alert["message"] and "--max-queue" in alert["message"]
    assert any(s["models"].get(MODEL, {}).get("errors") for s in history_of(served)["samples"])


@pytest.mark.integration
def test_kill_9_of_the_worker_raises_the_crash_alert(served: RunnerEnv) -> None:
    assert chat(served).status_code == 200
    [pid] = [m["pid"] for m in requests.get(f"{served.base_url}/engines/ps", timeout=30).json()]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: bool(alerts_of(served, "crash")), 30), history_of(served)
    [alert] = alerts_of(served, "crash")
    assert alert["model"] == MODEL and "SIGKILL" in alert["message"]
    assert worker_metric(served, "docker_model_worker_crashes_total") == 1
    assert chat(served).status_code == 200  # started again
    assert len(alerts_of(served, "crash")) == 1


@pytest.fixture(scope="module")
def estimate(served: RunnerEnv) -> int:
    """What SmolLM2 takes loaded, as the served runner estimated and measured it."""
    assert chat(served).status_code == 200
    [loaded] = requests.get(f"{served.base_url}/engines/ps", timeout=30).json()
    return max(loaded["memory_estimated"], loaded["memory_measured"])


@pytest.fixture
def budgeted(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path, estimate: int) -> Iterator[RunnerEnv]:
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_MEMORY_BUDGET=str(int(estimate * 1.03)))
    with direct_runner(env):
        load_model(env.base_url, smollm2_gguf, MODEL)
        yield env


@pytest.mark.integration
def test_a_budget_just_above_use_raises_the_memory_alert(budgeted: RunnerEnv) -> None:
    assert chat(budgeted).status_code == 200
    assert wait_until(lambda: bool(alerts_of(budgeted, "memory")), 30), history_of(budgeted)
    [alert] = alerts_of(budgeted, "memory")
    assert "budget" in alert["message"] and alert["model"] is None
    memory = history_of(budgeted)["samples"][-1]["memory"]
    assert memory["budget"] == memory["limit"] and memory["used"] >= 0.9 * memory["budget"]
    assert worker_metric(budgeted, "docker_model_memory_budget_bytes") == memory["budget"]
