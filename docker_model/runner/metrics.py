"""The runner's Prometheus metrics at `/metrics`: requests by route, model and status; model loads, their
time and the evictions; the resident memory of the runner and its workers; and, gathered from each
loaded model's worker at every scrape, its tokens, time to first token, time per token, queue and busy
sequences (`worker/metrics.py`); the memory available, the models' budget, and the workers that crashed.
Low cardinality: routes as declared (`/models/{name:path}`), models by name, no prompt text and no request
ids."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docker_model.runner.handover import HANDED_STATUS

if TYPE_CHECKING:
    from docker_model.runner.scheduler import LoadedModel

MODEL_KEY = "docker_model.model"  # key in the scope: the model a request was routed to
LOAD_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
CRASHES_KEPT = 100  # the latest crashes, for the console's alerts


@dataclass(frozen=True)
class WorkerCrash:
    time: float  # epoch seconds
    model: str
    cause: str  # how it ended, in words (`WorkerProcess.exit_cause`)


class RunnerMetrics:
    def __init__(self, memory_budget: int | None = None) -> None:
        """`memory_budget`: the models' budget in bytes, exported when there is one."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "docker_model_requests", "Requests answered", ["route", "model", "status"], registry=self.registry
        )
        self.loads = Counter("docker_model_model_loads", "Model loads", ["model", "result"], registry=self.registry)
        self.load_seconds = Histogram(
            "docker_model_model_load_seconds",
            "Time to load a model",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=self.registry,
        )
        self.evictions = Counter(
            "docker_model_evictions", "Idle models unloaded to make room", ["reason"], registry=self.registry
        )
        self.memory = Gauge(
            "docker_model_resident_memory_bytes", "Resident memory", ["process", "model"], registry=self.registry
        )
        available = Gauge(
            "docker_model_available_memory_bytes", "Memory the machine has available", registry=self.registry
        )
        available.set_function(lambda: psutil.virtual_memory().available)
        if memory_budget is not None:
            budget = Gauge("docker_model_memory_budget_bytes", "RAM the models may use", registry=self.registry)
            budget.set(memory_budget)
        self.crashes = Counter(
            "docker_model_worker_crashes", "Workers that died unstopped", ["model"], registry=self.registry
        )
        self.crashed: deque[WorkerCrash] = deque(maxlen=CRASHES_KEPT)

    def worker_crashed(self, model: str, cause: str) -> None:
        self.crashes.labels(model).inc()
        self.crashed.append(WorkerCrash(time.time(), model, cause))

    async def exposition(self, loaded: list[LoadedModel]) -> bytes:
        """The runner's metrics and its workers', in Prometheus' text format."""
        self.memory.clear()
        self.memory.labels("runner", "").set(psutil.Process().memory_info().rss)
        for model in loaded:
            self.memory.labels("worker", model.name).set(model.worker.rss_bytes() or 0)
        texts = await gather_worker_metrics(loaded)
        workers = CollectorRegistry()
        workers.register(_Merged([text for text in texts if text]))
        return generate_latest(self.registry) + generate_latest(workers)


async def gather_worker_metrics(loaded: list[LoadedModel]) -> list[str | None]:
    """Each loaded model's worker's metrics text, asked all at once (None: a worker that did not answer)."""
    return list(await asyncio.gather(*(model.worker.metrics_text() for model in loaded))) if loaded else []


class _Merged(Collector):
    """The workers' metrics as one family per name (each worker labels its samples with its model)."""

    def __init__(self, texts: Iterable[str]):
        self.families: dict[str, Metric] = {}
        for text in texts:
            for family in text_string_to_metric_families(text):
                merged = self.families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                merged.samples.extend(family.samples)

    def collect(self) -> Iterable[Metric]:
        return list(self.families.values())


class RequestCounter:
    """ASGI middleware: counts every request by its declared route, its model (set by the inference routes
    in the scope) and its status (the one sent here, or the worker's for a request handed over)."""

    def __init__(self, app: ASGIApp, metrics: RunnerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent: list[int] = []

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            status = scope.get(HANDED_STATUS) or (sent[0] if sent else 500)
            self.metrics.requests.labels(path, scope.get(MODEL_KEY, ""), str(status)).inc()


async def metrics_route(request: Request) -> Response:
    scheduler = request.app.state.runner.scheduler
    body = await scheduler.metrics.exposition(scheduler.running())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def worker_metrics(client: httpx.AsyncClient) -> str | None:
    """A worker's metrics text; None when it does not answer (it is stopping, or busy loading)."""
    with contextlib.suppress(httpx.HTTPError):
        response = await client.get("/metrics", timeout=5)
        if response.status_code == 200:
            return response.text
    return None
