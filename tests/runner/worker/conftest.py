"""Real worker processes serving the real SmolLM2 model on free loopback ports."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.fixtures.registry import free_port

SYSTEM = "You are a helpful assistant."
FRANCE = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "What is the capital of France?"},
]


@dataclass
class Worker:
    process: subprocess.Popen
    base_url: str  # the OpenAI base URL, ending in /v1
    log: Path

    @property
    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="unused", max_retries=0, timeout=120)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_worker(model: Path, log: Path, *args: str) -> Worker:
    port = free_port()
    command = [sys.executable, "-m", "docker_model.runner.worker", "--model", str(model)]
    with open(log, "wb") as out:
        process = subprocess.Popen([*command, "--port", str(port), *args], stdout=out, stderr=subprocess.STDOUT)
    worker = Worker(process, f"http://127.0.0.1:{port}/v1", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return worker
        except httpx.TransportError:
            time.sleep(0.1)
    worker.stop()
    raise RuntimeError(f"worker did not come up: {log.read_text()}")


@pytest.fixture
def worker_factory(smollm2_gguf: Path, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start workers with the given extra arguments; all are stopped at the end of the test."""
    started: list[Worker] = []

    def start(*args: str) -> Worker:
        started.append(start_worker(smollm2_gguf, tmp_path / f"worker-{len(started)}.log", *args))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def worker(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One shared worker: two parallel sequences of 1024 tokens each."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    started = start_worker(smollm2_gguf, log, "--parallel", "2", "--ctx-size", "1024")
    yield started
    started.stop()
