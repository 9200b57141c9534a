"""The runner's recent history, for the console's Monitor (`GET /engines/history`): every 5 s, memory and each
model's tokens per second, requests, errors, queue, time to first token and memory; and the alerts they raise.

Resolution 5 s over a window of 15 min: a ring of 180 samples (a deque with a maxlen), so a console opened
now shows what happened before. Memory: the ring holds about 0.7 KiB plus 0.4 KiB per model a sample, that
is about 125 KiB plus 70 KiB per model present in every sample: tests/runner/test_metrics_history.py checks
that 180 samples of 4 models stay under 0.5 MiB (about 0.35 MiB measured). A sample holds the models loaded
then (at most DOCKER_MODEL_MAX_LOADED_MODELS) and those asked within its interval, so the worst case grows
with how many different models are asked every 5 s: 64 of them in every sample hold about 4.3 MiB.

Sampling is cheap: one `/metrics` gathering from each loaded worker per interval, as a scrape of the runner's
`/metrics` does (`gather_worker_metrics`), and nothing but the memory figures and the runner's own counters
while no model is loaded.

Alerts: `memory` while the models' memory is at 90% of its limit or more (the budget, else what is available
plus what they use); `queue` only while a model's queue is full: it was full at a sample, or refused requests
(the worker's only 503), within the last minute (QUEUE_ALERT_SECONDS; since the first time in the window);
`crash`, one a model, for its workers that died without the runner stopping them (`Scheduler._take_off`)
within the window: how many times, the latest cause, since the first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psutil
from prometheus_client.parser import text_string_to_metric_families

from docker_model.api_types import History, HistoryAlert, HistoryMemory, HistoryModel, HistorySample
from docker_model.runner.metrics import WorkerCrash, gather_worker_metrics
from docker_model.runner.runtime_flags import flag_value
from docker_model.units import human_bytes

if TYPE_CHECKING:
    from docker_model.runner.scheduler import LoadedModel, Scheduler

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 5
WINDOW_SECONDS = 15 * 60
MEMORY_ALERT_FRACTION = 0.9
QUEUE_ALERT_SECONDS = 60  # a queue alert lasts this long after the queue was last seen full
QUEUE_FULL_STATUS = 503  # what a worker answers, and only then, when its queue is full (worker/routes.py)


@dataclass(frozen=True)
class WorkerReading:
    """What one worker's metrics said at a sample (its counters since it started)."""

    pid: int
    generated_tokens: float = 0
    ttft_sum: float = 0
    ttft_count: float = 0
    queue: int = 0
    busy: int = 0
    parallel: int = 1
    max_queue: int | None = None  # its `--max-queue` runtime flag, when set
    memory_bytes: int = 0


@dataclass(frozen=True)
class QueueFull:
    """A model's queue was full in a sample's interval."""

    max_queue: int | None  # its limit, when set
    refused: int  # requests refused for it (503) in the interval


@dataclass(frozen=True)
class Reading:
    """The runner's figures at one moment: counters as they stand, not yet turned into rates."""

    time: float
    available: int
    budget: int | None
    workers: dict[str, WorkerReading | None]  # loaded models by name; None: its worker did not answer
    answered: dict[tuple[str, int], float] = field(default_factory=dict)  # requests by (model, status)


class MetricsHistory:
    """The ring of samples; `add` a reading every interval, `report` the samples and the alerts."""

    def __init__(self, interval: int = INTERVAL_SECONDS, window: int = WINDOW_SECONDS) -> None:
        self.interval = interval
        self.window = window
        # Each sample with the models whose queue was full in its interval.
        self._samples: deque[tuple[HistorySample, dict[str, QueueFull]]] = deque(maxlen=window // interval)
        self._last: Reading | None = None

    def add(self, reading: Reading) -> None:
        last = self._last
        elapsed = reading.time - last.time if last is not None else self.interval
        workers = {
            name: worker if worker is not None else (last.workers.get(name) if last else None)
            for name, worker in reading.workers.items()
        }  # a worker that did not answer keeps its last figures: its counters are counted at the next sample
        answered = _new_answers(reading.answered, last.answered if last else {})
        names = set(workers) | {model for model, _ in answered}
        models: dict[str, HistoryModel] = {}
        full: dict[str, QueueFull] = {}
        for name in sorted(names):
            worker = workers.get(name)
            before = last.workers.get(name) if last is not None else None
            if before is None or worker is None or before.pid != worker.pid:
                before = WorkerReading(pid=0)  # a new worker: its counters started at 0
            statuses = {status: count for (model, status), count in answered.items() if model == name}
            models[name] = _model_sample(worker, before, statuses, elapsed)
            refused = statuses.get(QUEUE_FULL_STATUS, 0)
            if refused or (worker is not None and _queue_full(worker)):
                full[name] = QueueFull(worker.max_queue if worker is not None else None, refused)
        used = sum(model["memory_bytes"] for model in models.values())
        limit = reading.budget if reading.budget is not None else reading.available + used
        memory: HistoryMemory = {"used": used, "available": reading.available, "budget": reading.budget, "limit": limit}
        self._samples.append(({"time": reading.time, "memory": memory, "models": models}, full))
        self._last = Reading(reading.time, reading.available, reading.budget, workers, reading.answered)

    def report(self, crashes: Iterable[WorkerCrash], now: float) -> History:
        kept = [(sample, full) for sample, full in self._samples if sample["time"] > now - self.window]
        alerts = [*_memory_alert([sample for sample, _ in kept]), *_queue_alerts(kept, now)]
        alerts += _crash_alerts([crash for crash in crashes if crash.time > now - self.window])
        samples = [sample for sample, _ in kept]
        return {"interval_seconds": self.interval, "window_seconds": self.window, "samples": samples, "alerts": alerts}


def _new_answers(now: dict[tuple[str, int], float], before: dict[tuple[str, int], float]) -> dict[tuple[str, int], int]:
    """Requests answered since `before`, by (model, status), for the requests routed to a model."""
    new = {key: int(count - before.get(key, 0)) for key, count in now.items() if key[0]}
    return {key: count for key, count in new.items() if count > 0}


def _model_sample(
    worker: WorkerReading | None, before: WorkerReading, statuses: dict[int, int], elapsed: float
) -> HistoryModel:
    """One model over the interval: rates from the counters' growth since `before`."""
    now = worker or before
    firsts = now.ttft_count - before.ttft_count
    return {
        "tokens_per_second": max(now.generated_tokens - before.generated_tokens, 0) / elapsed if elapsed > 0 else 0.0,
        "requests": sum(statuses.values()),
        "errors": sum(count for status, count in statuses.items() if status >= 500),
        "queue": now.queue if worker else 0,
        "ttft_seconds": (now.ttft_sum - before.ttft_sum) / firsts if firsts > 0 else None,
        "memory_bytes": now.memory_bytes if worker else 0,
    }


def _queue_full(worker: WorkerReading) -> bool:
    return worker.max_queue is not None and worker.busy >= worker.parallel and worker.queue >= worker.max_queue


def _memory_alert(samples: list[HistorySample]) -> list[HistoryAlert]:
    """The memory alert while the latest sample is at the limit, since the first sample of that stretch."""
    since = None
    for sample in reversed(samples):
        used, limit = sample["memory"]["used"], sample["memory"]["limit"]
        if not used or used < MEMORY_ALERT_FRACTION * limit:
            break
        since = sample["time"]
    if since is None:
        return []
    memory = samples[-1]["memory"]
    of = "the budget (DOCKER_MODEL_MEMORY_BUDGET)" if memory["budget"] is not None else "what they can have"
    message = (
        f"models use {human_bytes(memory['used'])}, {memory['used'] / memory['limit']:.0%} of {of}, "
        f"{human_bytes(memory['limit'])}: unload a model, or give them more room"
    )
    return [{"kind": "memory", "model": None, "message": message, "since": since}]


def _queue_alerts(kept: list[tuple[HistorySample, dict[str, QueueFull]]], now: float) -> list[HistoryAlert]:
    """A queue alert for each model whose queue was full within the last QUEUE_ALERT_SECONDS, since the first
    time within the window."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    limits: dict[str, int | None] = {}
    refused: dict[str, int] = {}
    for sample, full in kept:
        for name, queue in full.items():
            first.setdefault(name, sample["time"])
            last[name] = sample["time"]
            limits[name] = queue.max_queue if queue.max_queue is not None else limits.get(name)
            refused[name] = refused.get(name, 0) + queue.refused
    alerts: list[HistoryAlert] = []
    for name, since in first.items():
        if last[name] < now - QUEUE_ALERT_SECONDS:
            continue
        limit = f" (at most {limits[name]} waiting)" if limits[name] is not None else ""
        message = (
            f"the queue of {name} was full{limit}; requests it refused with 503 in the window: {refused[name]}. "
            "Raise --max-queue or --parallel with `docker model configure`"
        )
        alerts.append({"kind": "queue", "model": name, "message": message, "since": since})
    return alerts


def _crash_alerts(crashes: list[WorkerCrash]) -> list[HistoryAlert]:
    """One alert a model for its workers' `crashes`: how many, the latest cause, since the first."""
    by_model: dict[str, list[WorkerCrash]] = {}
    for crash in sorted(crashes, key=lambda crash: crash.time):
        by_model.setdefault(crash.model, []).append(crash)
    alerts: list[HistoryAlert] = []
    for model, its in by_model.items():
        what = f"crashed {len(its)} times in the window; the last one {its[-1].cause}" if its[1:] else its[0].cause
        message = f"the worker of {model} {what}; the next request starts it again"
        alerts.append({"kind": "crash", "model": model, "message": message, "since": its[0].time})
    return alerts


def read_worker(loaded: LoadedModel, text: str | None) -> WorkerReading | None:
    """A loaded model's figures from its worker's metrics `text` (None: it did not answer)."""
    if text is None:
        return None
    values = {sample.name: sample.value for family in text_string_to_metric_families(text) for sample in family.samples}
    flags = loaded.worker.spec.runtime_flags
    parallel = flag_value(flags, "-np", "--parallel")
    max_queue = flag_value(flags, "--max-queue")
    return WorkerReading(
        pid=loaded.worker.pid,
        generated_tokens=values.get("docker_model_generated_tokens_total", 0),
        ttft_sum=values.get("docker_model_time_to_first_token_seconds_sum", 0),
        ttft_count=values.get("docker_model_time_to_first_token_seconds_count", 0),
        queue=int(values.get("docker_model_queue_depth", 0)),
        busy=int(values.get("docker_model_busy_sequences", 0)),
        parallel=int(parallel) if parallel is not None else loaded.worker.spec.parallel,
        max_queue=int(max_queue) if max_queue is not None else None,
        memory_bytes=loaded.worker.rss_bytes() or 0,
    )


async def read(scheduler: Scheduler, clock: Callable[[], float] = time.time) -> Reading:
    """The runner's figures now: its workers' metrics (one gathering, none while no model is loaded), its
    request counter and the machine's memory."""
    loaded = scheduler.running()
    texts = await gather_worker_metrics(loaded)
    answered: dict[tuple[str, int], float] = {}
    for family in scheduler.metrics.requests.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = (sample.labels["model"], int(sample.labels["status"]))
                answered[key] = answered.get(key, 0) + sample.value
    return Reading(
        time=clock(),
        available=psutil.virtual_memory().available,
        budget=scheduler.memory_budget,
        workers={model.name: read_worker(model, text) for model, text in zip(loaded, texts, strict=True)},
        answered=answered,
    )


async def sample_forever(history: MetricsHistory, scheduler: Scheduler) -> None:
    """Add a reading every interval, from the runner's start: a failed one is logged and the next goes on."""
    while True:
        await asyncio.sleep(history.interval)
        try:
            history.add(await read(scheduler))
        except Exception:
            log.exception("could not sample the runner's metrics for its history")
