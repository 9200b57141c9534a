"""What the runner costs besides tokens: memory, cold start to the first token, `docker model list`.

    .venv/bin/python benchmarks/costs.py [--runs 3]

- resident memory of the runner with no model loaded, then with SmolLM2 loaded (runner + worker);
- `docker model run ai/smollm2 "hi"` with no runner running: wall time from starting the command to the
  first byte on its stdout (so it includes starting the runner and loading the model);
- `docker model list` against that now-warm runner.
The plugin is installed by install.sh into a temporary DOCKER_CONFIG, as a user would have it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli_latency import timed
from servers import MODEL, configure_runner, prepare_store, start_runner

from tests.fixtures.docker_cli import run_install
from tests.fixtures.models import fetch_smollm2
from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv

MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Costs:
    idle_rss: int  # bytes, runner alone
    runner_rss: int  # bytes, runner with the model loaded
    worker_rss: int  # bytes, the model's worker process(es)
    cold_run_seconds: list[float]
    list_seconds: list[float]

    def format(self) -> str:
        loaded = self.runner_rss + self.worker_rss
        cold = statistics.median(self.cold_run_seconds) * 1000
        listing = statistics.median(self.list_seconds) * 1000
        return "\n".join(
            [
                "| cost | measured | goal |",
                "| --- | --- | --- |",
                f"| runner RSS, no model loaded | {self.idle_rss / MIB:.0f} MiB | ≤ 80 MB |",
                f"| RSS with SmolLM2 loaded (runner + worker) | {loaded / MIB:.0f} MiB "
                f"({self.runner_rss / MIB:.0f} + {self.worker_rss / MIB:.0f}) | |",
                f'| `docker model run {MODEL} "hi"`, cold runner, to first token '
                f"| {cold:.0f} ms (median of {len(self.cold_run_seconds)}) | |",
                f"| `docker model list`, warm runner | {listing:.0f} ms (median of {len(self.list_seconds)}) "
                "| ≤ 200 ms |",
            ]
        )


def rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        children = parents.get(pending.pop(), [])
        found += children
        pending += children
    return found


def memory(models_path: Path, workdir: Path, threads: int | None, ctx_per_seq: int) -> tuple[int, int, int]:
    """RSS of the idle runner, then of the runner and its workers once the model is loaded."""
    with start_runner(models_path, workdir) as (env, process):
        time.sleep(1)  # let start-up garbage settle
        idle = rss(process.pid)
        configure_runner(env, ctx_per_seq, ["--threads", str(threads)] if threads else [])
        return idle, rss(process.pid), sum(rss(child) for child in descendants(process.pid))


def first_byte_seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    first = process.stdout.read(1)
    elapsed = time.perf_counter() - start
    process.communicate(timeout=300)
    if not first or process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed (exit {process.returncode})")
    return elapsed


def cli_figures(models_path: Path, workdir: Path, runs: int) -> tuple[list[float], list[float]]:
    """Cold `docker model run` (the runner stopped before each run), then `docker model list` warm."""
    docker_config = workdir / "docker"
    installed = run_install(docker_config, Path(sys.prefix), "--dev")
    if installed.returncode:
        raise RuntimeError(f"install.sh failed:\n{installed.stderr}")
    runner = RunnerEnv(free_port(), models_path, workdir / "cli-state")
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config), **runner.variables()}
    cold = []
    try:
        for _ in range(runs):
            runner.stop()
            cold.append(first_byte_seconds(["docker", "model", "run", MODEL, "hi"], env))
        listing = timed(["docker", "model", "list"], env, max(runs, 10))
    finally:
        runner.stop()
    return cold, listing


def measure(gguf: Path, workdir: Path, threads: int | None = None, ctx_per_seq: int = 4096, runs: int = 3) -> Costs:
    workdir.mkdir(parents=True, exist_ok=True)
    models_path = workdir / "models"
    prepare_store(gguf, models_path)
    idle, runner_rss, worker_rss = memory(models_path, workdir / "memory", threads, ctx_per_seq)
    cold, listing = cli_figures(models_path, workdir, runs)
    return Costs(idle, runner_rss, worker_rss, cold, listing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold starts to time (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        print(measure(fetch_smollm2(), Path(scratch), runs=args.runs).format())


if __name__ == "__main__":
    main()
