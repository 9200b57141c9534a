"""The worker's Prometheus metrics, for the runner's `/metrics` to gather: tokens, time to first token,
time per generated token, and the engine's queue and busy sequences. Labelled by model only (no prompt
text, no request ids). Observed from the engine thread (prometheus_client's metrics are thread-safe)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TOKEN_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2)


class WorkerMetrics:
    def __init__(self, model: str):
        self.registry = CollectorRegistry()
        labels = {"model": model}
        self.prompt_tokens = Counter(
            "docker_model_prompt_tokens", "Prompt tokens of finished requests", ["model"], registry=self.registry
        ).labels(**labels)
        self.generated_tokens = Counter(
            "docker_model_generated_tokens", "Tokens generated", ["model"], registry=self.registry
        ).labels(**labels)
        self.time_to_first_token = Histogram(
            "docker_model_time_to_first_token_seconds",
            "From a request reaching the engine to its first generated token",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.time_per_token = Histogram(
            "docker_model_time_per_output_token_seconds",
            "Between two generated tokens of one request",
            ["model"],
            buckets=TOKEN_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self._queue = Gauge(
            "docker_model_queue_depth", "Requests waiting for a sequence", ["model"], registry=self.registry
        )
        self._busy = Gauge(
            "docker_model_busy_sequences", "Sequences answering a request", ["model"], registry=self.registry
        )
        self._labels = labels

    def watch(self, queued: Callable[[], float], busy: Callable[[], float]) -> None:
        """Read the queue depth and the busy sequences from these, at each scrape."""
        self._queue.labels(**self._labels).set_function(queued)
        self._busy.labels(**self._labels).set_function(busy)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
