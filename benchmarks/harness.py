"""What the side-by-side benchmarks (serve.py, agents.py) share.

- the systems under test, started side by side on the same GGUF, threads and context per sequence, each
  warmed up with one request (`started`);
- interleaved rounds, the order of the systems rotating, with optional busy processes during each
  system's turn (`interleaved`, `busy_processes`);
- ratios to llama-server as the median of per-round ratios (`paired_ratio`);
- the options they have in common (`add_arguments`, `parse`) and the note of the machine (`machine`).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import baselines
import loadgen
from servers import Endpoint, prepare_store, runner

from docker_model.runner.shared.cpu import default_threads
from tests.fixtures.models import fetch_smollm2

T = TypeVar("T")

# (gguf, workdir, parallel, threads, ctx_per_seq) -> a running server; threads None only for the runner
Start = Callable[[Path, Path, int, Any, int], AbstractContextManager[Endpoint]]


def _runner(
    gguf: Path, workdir: Path, parallel: int, threads: int | None, ctx_per_seq: int
) -> AbstractContextManager[Endpoint]:
    models_path = workdir / "models"
    if not models_path.exists():
        prepare_store(gguf, models_path)
    return runner(models_path, workdir / f"runner-{parallel}", parallel, threads, ctx_per_seq)


SYSTEMS: dict[str, Start] = {
    "runner": _runner,
    "llama-server": baselines.llama_server,
    "llama-server-defaults": baselines.llama_server_defaults,
    "llama-cpp-python": baselines.llama_cpp_python,
}
REFERENCE = "llama-server"


@dataclass(frozen=True)
class Settings:
    """What every side-by-side benchmark sets; each script adds its own fields."""

    gguf: Path
    threads: int | None = None  # None: the runner's default (adaptive); the baselines get default_threads()
    ctx_per_seq: int = 4096
    max_tokens: int = 128
    rounds: int = 5
    contention: int = 0
    contention_nice: int = 0

    def threads_note(self) -> str:
        if self.threads is not None:
            return f"{self.threads} threads in every system"
        return (
            f"{default_threads()} threads (one per physical core) in the baselines; the runner with its default: "
            "as many, fewer while other programs keep cores busy"
        )

    def contention_note(self) -> str:
        if not self.contention:
            return "No other load."
        return f"Contention: {self.contention} busy process(es) at nice {self.contention_nice} during every turn."


def add_arguments(parser: argparse.ArgumentParser, systems: Sequence[str], rounds: int, max_tokens: int) -> None:
    """The options of `Settings`, plus --systems (of `systems`, all by default) and --workdir."""
    parser.add_argument("--systems", default=",".join(systems), help="comma-separated (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=rounds, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=max_tokens, help="per request (default: %(default)s)")
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for every system (default: the runner chooses its own, the others one per physical core)",
    )
    parser.add_argument("--ctx-size", type=int, default=4096, help="context per sequence (default: %(default)s)")
    parser.add_argument("--model", type=Path, help="GGUF file (default: SmolLM2-135M-Instruct Q4_1)")
    parser.add_argument("--contention", type=int, default=0, help="busy processes during every turn (default: 0)")
    parser.add_argument("--contention-nice", type=int, default=0, help="their niceness, 0 to 19 (default: 0)")
    parser.add_argument("--workdir", type=Path, help="keep the servers' logs here (default: a temporary directory)")
    parser.set_defaults(known_systems=list(systems))


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The arguments, and the systems chosen (checked against those `add_arguments` was given)."""
    args = parser.parse_args(argv)
    systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = set(systems) - set(args.known_systems)
    if unknown:
        parser.error(f"unknown systems {', '.join(sorted(unknown))} (known: {', '.join(args.known_systems)})")
    return args, systems


def settings_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The `Settings` fields from arguments that `add_arguments` defined (the model fetched if not given)."""
    return {
        "gguf": args.model or fetch_smollm2(),
        "threads": args.threads,
        "ctx_per_seq": args.ctx_size,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "contention": args.contention,
        "contention_nice": args.contention_nice,
    }


@contextmanager
def workdir(path: Path | None, prefix: str) -> Iterator[Path]:
    """`path` (created), or a temporary directory removed on exit. A SIGTERM (`kill`, `timeout`) ends the
    run as Ctrl-C does, so that the servers it started are stopped rather than left running."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        yield Path(scratch)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def started(
    systems: Sequence[str], settings: Settings, workdir: Path, slots: Callable[[str], int]
) -> Iterator[dict[str, Endpoint]]:
    """Every system running side by side with `slots(system)` slots, each after one warm-up request."""
    if any(system.startswith("llama-server") for system in systems):
        baselines.llama_server_binary()  # build before measuring, not in the middle
    with ExitStack() as running:
        endpoints = {}
        for system in systems:
            print(f"starting {system} with {slots(system)} slots", file=sys.stderr)
            start = SYSTEMS[system]
            threads = settings.threads if system == "runner" else settings.threads or default_threads()
            args = (settings.gguf, workdir, slots(system), threads, settings.ctx_per_seq)
            endpoints[system] = endpoint = running.enter_context(start(*args))
            loadgen.run(endpoint.base_url, endpoint.model, [], extra=endpoint.extra)  # the warm-up request
        yield endpoints


@contextmanager
def busy_processes(count: int, niceness: int) -> Iterator[None]:
    """`count` processes that each keep a core busy, for the duration of the block."""
    hogs = [subprocess.Popen(["nice", "-n", str(niceness), "yes"], stdout=subprocess.DEVNULL) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def interleaved(
    endpoints: dict[str, Endpoint], settings: Settings, measure: Callable[[Endpoint, int], T], label: str = ""
) -> dict[str, list[T]]:
    """`measure(endpoint, round)` for each of `settings.rounds` rounds and, within a round, for each system
    in turn (the order rotating; the others idle), with `settings.contention` busy processes meanwhile."""
    systems = list(endpoints)
    by_system: dict[str, list[T]] = {system: [] for system in systems}
    for turn in range(settings.rounds):
        print(f"{label}round {turn + 1} of {settings.rounds}", file=sys.stderr)
        for system in systems[turn % len(systems) :] + systems[: turn % len(systems)]:
            with busy_processes(settings.contention, settings.contention_nice):
                by_system[system].append(measure(endpoints[system], turn))
    return by_system


def paired_ratio(rounds: Sequence[T], reference: Sequence[T] | None, figure: Callable[[T], float]) -> str:
    """Median over rounds of `figure` of a system's round / `figure` of the reference's same round."""
    if reference is None:
        return "–"
    ratios = [figure(mine) / figure(theirs) for mine, theirs in zip(rounds, reference, strict=True) if figure(theirs)]
    return f"{statistics.median(ratios):.2f}" if ratios else "–"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine(load_before: float) -> str:
    """The "Machine:" line: CPU, cores, memory, kernel, load average before the run and now."""
    memory_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / (1 << 30)
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} "
        f"{platform.release()}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after."
    )
