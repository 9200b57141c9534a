"""Serving speed side by side: the runner, llama-server and llama-cpp-python's server, in one table.

    .venv/bin/python benchmarks/serve.py [--concurrency 1,2,4,8] [--max-tokens 128] [--rounds 5]
        [--systems runner,llama-server,llama-cpp-python] [--requests-per-stream 2] [--no-costs]
        [--contention N [--contention-nice 19]]

Every system serves the same GGUF with the same threads and context per sequence. For each concurrency
level N all systems are started side by side with N slots (runner: runtime flag `--parallel N`;
llama-server: `--parallel N -c N*ctx`; llama-cpp-python's server has a single slot whatever N) and get one
warm-up request each; then, for each of `--rounds` rounds, each system in turn (the order rotating) serves
loadgen.py's N streams while the others idle. Every round has prompts of its own (the same for every
system), so no server answers a prompt it has cached. A shared machine's speed drifts by tens of percent within
minutes; short interleaved rounds meet the same drift, and ratios are taken within a round.

`--contention N` measures a busy machine, as users run it: N processes that each keep a core busy (`yes`,
at `--contention-nice` priority) run while each system serves its turn of every round, started from this
harness as the servers are (so all share one session, which Linux schedules as one group).

Prints a Markdown table (figures over all rounds; ratios to llama-server as the median of the per-round
ratios), the machine and the settings, then the cost figures of costs.py. Exit status 1 if any request
failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import baselines
import costs
import loadgen
from loadgen import LevelResult
from servers import Endpoint, prepare_store, runner

from tests.fixtures.models import fetch_smollm2

# (gguf, workdir, parallel, threads, ctx_per_seq) -> a running server
Start = Callable[[Path, Path, int, int, int], AbstractContextManager[Endpoint]]


def _runner(
    gguf: Path, workdir: Path, parallel: int, threads: int, ctx_per_seq: int
) -> AbstractContextManager[Endpoint]:
    models_path = workdir / "models"
    if not models_path.exists():
        prepare_store(gguf, models_path)
    return runner(models_path, workdir / f"runner-{parallel}", parallel, threads, ctx_per_seq)


SYSTEMS: dict[str, Start] = {
    "runner": _runner,
    "llama-server": baselines.llama_server,
    "llama-cpp-python": baselines.llama_cpp_python,
}
REFERENCE = "llama-server"


@dataclass(frozen=True)
class Settings:
    gguf: Path
    threads: int = 2
    ctx_per_seq: int = 4096
    max_tokens: int = 128
    requests_per_stream: int = 2
    rounds: int = 5
    contention: int = 0
    contention_nice: int = 0


@dataclass
class Row:
    system: str
    slots: int
    rounds: list[LevelResult]  # one per round, in order

    @cached_property
    def result(self) -> LevelResult:
        """All rounds pooled: every request, over the summed wall time."""
        requests = [request for level in self.rounds for request in level.results]
        wall = sum(level.wall_seconds for level in self.rounds)
        return loadgen.summarize(self.rounds[0].concurrency, requests, wall)


def slots(system: str, level: int) -> int:
    return 1 if system == "llama-cpp-python" else level


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


def measure(systems: list[str], levels: Sequence[int], settings: Settings, workdir: Path) -> list[Row]:
    rows = []
    for level in levels:
        with ExitStack() as running:
            endpoints = {}
            for system in systems:
                print(f"starting {system} with {slots(system, level)} slots", file=sys.stderr)
                start = SYSTEMS[system]
                args = (settings.gguf, workdir, slots(system, level), settings.threads, settings.ctx_per_seq)
                endpoints[system] = endpoint = running.enter_context(start(*args))
                loadgen.run(endpoint.base_url, endpoint.model, [], extra=endpoint.extra)  # the warm-up request
            by_system: dict[str, list[LevelResult]] = {system: [] for system in systems}
            for turn in range(settings.rounds):
                print(f"concurrency {level}: round {turn + 1} of {settings.rounds}", file=sys.stderr)
                for system in systems[turn % len(systems) :] + systems[: turn % len(systems)]:
                    endpoint = endpoints[system]
                    with busy_processes(settings.contention, settings.contention_nice):
                        [result] = loadgen.run(
                            endpoint.base_url,
                            endpoint.model,
                            [level],
                            warmup=False,
                            max_tokens=settings.max_tokens,
                            requests_per_stream=settings.requests_per_stream,
                            extra=endpoint.extra,
                            first_prompt=turn * level * settings.requests_per_stream,
                        )
                    by_system[system].append(result)
        rows += [Row(system, slots(system, level), by_system[system]) for system in systems]
    return sorted(rows, key=lambda row: (list(systems).index(row.system), row.result.concurrency))


def paired_ratio(row: Row, reference: Row | None, figure: Callable[[LevelResult], float]) -> str:
    """Median over rounds of `figure` of `row` / `figure` of `reference` in the same round."""
    if reference is None:
        return "–"
    ratios = [
        figure(mine) / figure(theirs)
        for mine, theirs in zip(row.rounds, reference.rounds, strict=True)
        if figure(theirs)
    ]
    return f"{statistics.median(ratios):.2f}" if ratios else "–"


def format_table(rows: Sequence[Row]) -> str:
    reference = {row.result.concurrency: row for row in rows if row.system == REFERENCE}
    lines = [
        "| system | conc | slots | reqs | fail | TTFT p50 ms | TTFT p95 ms | tok/s/stream | tok/s all "
        "| stream ×ls | all ×ls | TTFT p50 − ls ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        r = row.result
        ref = reference.get(r.concurrency)
        ttft_delta = f"{r.ttft_median_ms - ref.result.ttft_median_ms:+.0f}" if ref else "–"
        lines.append(
            f"| {row.system} | {r.concurrency} | {row.slots} | {r.requests} | {r.failures} "
            f"| {r.ttft_median_ms:.0f} | {r.ttft_p95_ms:.0f} | {r.decode_tps_per_stream:.1f} | {r.aggregate_tps:.1f} "
            f"| {paired_ratio(row, ref, lambda level: level.decode_tps_per_stream)} "
            f"| {paired_ratio(row, ref, lambda level: level.aggregate_tps)} | {ttft_delta} |"
        )
    return "\n".join(lines)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe(settings: Settings, load_before: float) -> str:
    memory_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / (1 << 30)
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} "
        f"{platform.release()}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.\n"
        f"Settings: {settings.gguf.name}, llama.cpp of llama-cpp-python {baselines.llama_cpp_version()} in all "
        f"three; {settings.threads} threads; context {settings.ctx_per_seq} per sequence; temperature 0; "
        f"max_tokens {settings.max_tokens} with ignore_eos (llama-cpp-python: a logit bias on end-of-generation "
        f"tokens); slots = concurrency (llama-cpp-python: one slot); per level, all systems running side by side "
        f"after one warm-up request each, then {settings.rounds} rounds in which each system in turn serves "
        f"{settings.requests_per_stream} requests per stream. Figures pool all rounds; ratios (×ls) are medians "
        "of per-round ratios to llama-server at the same concurrency; TTFT differences are of the pooled medians."
        + (
            f" Contention: {settings.contention} busy process(es) at nice {settings.contention_nice} during every turn."
            if settings.contention
            else " No other load."
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,2,4,8", help="comma-separated levels (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--requests-per-stream", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per level (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx-size", type=int, default=4096, help="context per sequence (default: %(default)s)")
    parser.add_argument("--model", type=Path, help="GGUF file (default: SmolLM2-135M-Instruct Q4_1)")
    parser.add_argument("--no-costs", action="store_true", help="skip the cost figures")
    parser.add_argument("--contention", type=int, default=0, help="busy processes during every turn (default: 0)")
    parser.add_argument("--contention-nice", type=int, default=0, help="their niceness, 0 to 19 (default: 0)")
    args = parser.parse_args(argv)
    systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {', '.join(sorted(unknown))} (known: {', '.join(SYSTEMS)})")
    levels = [int(level) for level in args.concurrency.split(",") if level.strip()]
    model = args.model or fetch_smollm2()
    settings = Settings(
        model,
        args.threads,
        args.ctx_size,
        args.max_tokens,
        args.requests_per_stream,
        args.rounds,
        args.contention,
        args.contention_nice,
    )
    if REFERENCE in systems:
        baselines.llama_server_binary()  # build before measuring, not in the middle
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        rows = measure(systems, levels, settings, Path(scratch))
        print(format_table(rows))
        print()
        print(describe(settings, load_before))
        if not args.no_costs:
            print()
            print(
                costs.measure(settings.gguf, Path(scratch) / "costs", settings.threads, settings.ctx_per_seq).format()
            )
    return 1 if any(row.result.failures for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
