"""Soak: the runner under steady load with clients that leave and a model switch every minute.

Four concurrent streamed chat requests at all times, for `--minutes` (10 by default). A quarter of the
clients drop their connection at a random point mid-answer. Every minute the clients switch to the other
of two models (the same GGUF packaged twice, so two workers; `DOCKER_MODEL_MAX_LOADED_MODELS=1` makes
each switch unload one and load the other). It reports requests served, clients that left, errors (any
answer that is not a complete stream: the goal is 0), and the resident memory of the runner process at
start and end (the goal: under 5% growth; workers come and go with the switches, so they are reported
at the end only).

    .venv/bin/python benchmarks/soak.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servers import running

from docker_model.distribution import Store, package
from tests.fixtures.models import fetch_smollm2
from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv

MODELS = ("ai/soak-a", "ai/soak-b")
CONCURRENCY = 4
LEAVING_SHARE = 0.25
PROMPTS = ("Tell me about lighthouses.", "Explain rain to a child.", "List ten fruits.", "Describe a city at night.")


@dataclass
class Tally:
    served: int = 0
    left: int = 0
    errors: list[str] = field(default_factory=list)


def prepare(models_path: Path) -> None:
    gguf = fetch_smollm2()
    store = Store(models_path)
    for name, context in zip(MODELS, (4096, 2048), strict=True):  # two packagings: two model IDs
        store.write_artifact(package(gguf, context_size=context), tags=[name])


async def one_request(client: httpx.AsyncClient, model: str, tally: Tally) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": random.choice(PROMPTS)}],
        "max_tokens": random.randint(16, 160),
        "stream": True,
    }
    leave_after = random.randint(1, 20) if random.random() < LEAVING_SHARE else None
    chunks = 0
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                tally.errors.append(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
                return
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    tally.served += 1
                    return
                if '"error"' in line:
                    tally.errors.append(line[:200])
                    return
                chunks += 1
                if leave_after is not None and chunks >= leave_after:
                    tally.left += 1
                    return  # leaving the block closes the connection mid-answer
            tally.errors.append("a stream ended without [DONE]")
    except httpx.HTTPError as error:
        tally.errors.append(f"{type(error).__name__}: {error}")


async def soak(base_url: str, minutes: float, tally: Tally) -> None:
    deadline = time.monotonic() + minutes * 60
    started = time.monotonic()

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=300) as client:
            while time.monotonic() < deadline:
                model = MODELS[int((time.monotonic() - started) // 60) % len(MODELS)]
                await one_request(client, model, tally)

    await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))


def megabytes(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warm-up-minutes", type=float, default=0.25, help="load, not counted (default 0.25)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        work = Path(folder)
        prepare(work / "models")
        env = RunnerEnv(free_port(), work / "models", work / "state", {"DOCKER_MODEL_MAX_LOADED_MODELS": "1"})
        argv = [sys.executable, "-m", "docker_model.runner", "--port", str(env.port)]
        with running(argv, env.base_url + "/", work / "runner.log", {**os.environ, **env.variables()}) as process:
            runner = psutil.Process(process.pid)
            tally = Tally()
            asyncio.run(soak(env.base_url, args.warm_up_minutes, Tally()))  # not counted
            start_rss = megabytes(runner)
            began = time.monotonic()
            asyncio.run(soak(env.base_url, args.minutes, tally))
            elapsed = time.monotonic() - began
            end_rss = megabytes(runner)
            workers = [child for child in runner.children(recursive=True) if "worker" in " ".join(child.cmdline())]
            worker_rss = sum(megabytes(worker) for worker in workers)
    growth = (end_rss - start_rss) / start_rss * 100
    print(f"soak: {elapsed / 60:.1f} min, {CONCURRENCY} concurrent streams, a model switch every minute")
    print(f"  requests served whole: {tally.served}; clients that left mid-answer: {tally.left}")
    print(f"  errors: {len(tally.errors)} (goal 0)" + "".join(f"\n    {error}" for error in tally.errors[:10]))
    print(f"  runner RSS: {start_rss:.1f} MiB at start, {end_rss:.1f} MiB at end ({growth:+.1f}%; goal under 5%)")
    print(f"  worker RSS at end: {worker_rss:.1f} MiB ({len(workers)} worker)")
    sys.exit(1 if tally.errors or growth >= 5 else 0)


if __name__ == "__main__":
    main()
