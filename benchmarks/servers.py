"""Server processes for the benchmarks: each on a free loopback port, up once healthy, stopped on exit.

`running` is the common lifecycle; `start_runner` starts this project's runner over a prepared store,
`configure_runner` loads the model into it. The baselines are in `baselines.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docker_model.distribution import Store, package
from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv

MODEL = "ai/smollm2"


@dataclass
class Endpoint:
    """Where loadgen sends requests."""

    base_url: str  # OpenAI base URL, ending in /v1
    model: str
    extra: dict[str, Any] = field(default_factory=dict)  # merged into every request body


class ServerStartError(RuntimeError):
    pass


def _is_healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running(
    argv: Sequence[str], health_url: str, log_path: Path, env: dict[str, str] | None = None, timeout: float = 180.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv`, wait until `health_url` answers 200, and terminate the process on exit."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _is_healthy(health_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise ServerStartError(f"{argv[0]} did not become healthy ({log_path}):\n{tail}")
                time.sleep(0.2)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def prepare_store(gguf: Path, models_path: Path) -> None:
    """Put the GGUF into a model store as MODEL, as `docker model package` would."""
    Store(models_path).write_artifact(package(gguf), tags=[MODEL])


@contextmanager
def start_runner(models_path: Path, workdir: Path) -> Iterator[tuple[RunnerEnv, subprocess.Popen[bytes]]]:
    """`python -m docker_model.runner` over `models_path`, with its own state directory; no model loaded."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = RunnerEnv(free_port(), models_path, workdir / "state")
    argv = [sys.executable, "-m", "docker_model.runner", "--port", str(env.port)]
    with running(argv, env.base_url + "/", workdir / "runner.log", {**os.environ, **env.variables()}) as process:
        yield env, process


def configure_runner(env: RunnerEnv, context_size: int, runtime_flags: Sequence[str]) -> None:
    """Set the model's context and flags; the runner (re)loads it before answering."""
    body = {"model": MODEL, "context-size": context_size, "runtime-flags": list(runtime_flags)}
    response = httpx.post(f"{env.base_url}/engines/_configure", json=body, timeout=300)
    if response.status_code != 202:
        raise ServerStartError(f"configure failed: HTTP {response.status_code} {response.text}")


@contextmanager
def runner(
    models_path: Path, workdir: Path, parallel: int, threads: int | None, ctx_per_seq: int
) -> Iterator[Endpoint]:
    """The runner with `parallel` slots; `threads` None: its default thread count, which adapts to load."""
    with start_runner(models_path, workdir) as (env, _process):
        flags = ["--parallel", str(parallel)] + (["--threads", str(threads)] if threads else [])
        configure_runner(env, ctx_per_seq, flags)
        yield Endpoint(f"{env.base_url}/engines/v1", MODEL)
