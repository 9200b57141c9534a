"""Serving speed side by side: the runner, llama-server and llama-cpp-python's server, in one table.

    .venv/bin/python benchmarks/serve.py [--concurrency 1,2,4,8] [--max-tokens 128] [--rounds 5]
        [--systems runner,llama-server,llama-cpp-python] [--requests-per-stream 2] [--no-costs]
        [--contention N [--contention-nice 19]] [--threads N] [--ctx-size 4096] [--model GGUF] [--workdir DIR]

Every system serves the same GGUF with the same context per sequence and the same threads: by default
one per physical core, which for the runner is its own default and adapts to load (it uses fewer while
other programs keep cores busy); `--threads N` fixes N for every system. For each concurrency
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
failed. What this shares with agents.py (starting the systems, the rounds, the options) is in harness.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import baselines
import costs
import harness
import loadgen
from harness import REFERENCE, SYSTEMS
from loadgen import LevelResult
from servers import Endpoint


@dataclass(frozen=True)
class Settings(harness.Settings):
    requests_per_stream: int = 2


@dataclass
class Row:
    system: str
    slots: int
    rounds: list[LevelResult]  # one per round, in order

    @cached_property
    def result(self) -> LevelResult:
        """All rounds pooled: every request, over the summed wall time."""
        return loadgen.pooled(self.rounds)


def slots(system: str, level: int) -> int:
    return 1 if system == "llama-cpp-python" else level


def serve_round(endpoint: Endpoint, turn: int, *, level: int, settings: Settings) -> LevelResult:
    """loadgen's `level` streams against one system, with the prompts of round `turn`."""
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
    return result


def measure(systems: list[str], levels: Sequence[int], settings: Settings, workdir: Path) -> list[Row]:
    rows = []
    for level in levels:
        with harness.started(systems, settings, workdir, partial(slots, level=level)) as endpoints:
            play = partial(serve_round, level=level, settings=settings)
            by_system = harness.interleaved(endpoints, settings, play, label=f"concurrency {level}: ")
        rows += [Row(system, slots(system, level), by_system[system]) for system in systems]
    return sorted(rows, key=lambda row: (list(systems).index(row.system), row.result.concurrency))


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
            f"| {harness.paired_ratio(row.rounds, ref and ref.rounds, lambda level: level.decode_tps_per_stream)} "
            f"| {harness.paired_ratio(row.rounds, ref and ref.rounds, lambda level: level.aggregate_tps)} "
            f"| {ttft_delta} |"
        )
    return "\n".join(lines)


def describe(settings: Settings, load_before: float) -> str:
    return (
        f"{harness.machine(load_before)}\n"
        f"Settings: {settings.gguf.name}, llama.cpp of llama-cpp-python {baselines.llama_cpp_version()} in all "
        f"three; {settings.threads_note()}; context {settings.ctx_per_seq} per sequence; temperature 0; "
        f"max_tokens {settings.max_tokens} with ignore_eos (llama-cpp-python: a logit bias on end-of-generation "
        f"tokens); slots = concurrency (llama-cpp-python: one slot); per level, all systems running side by side "
        f"after one warm-up request each, then {settings.rounds} rounds in which each system in turn serves "
        f"{settings.requests_per_stream} requests per stream. Figures pool all rounds; ratios (×ls) are medians "
        "of per-round ratios to llama-server at the same concurrency; TTFT differences are of the pooled medians. "
        + settings.contention_note()
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_arguments(parser, list(SYSTEMS), rounds=5, max_tokens=128)
    parser.add_argument("--concurrency", default="1,2,4,8", help="comma-separated levels (default: %(default)s)")
    parser.add_argument("--requests-per-stream", type=int, default=2)
    parser.add_argument("--no-costs", action="store_true", help="skip the cost figures")
    args, systems = harness.parse(parser, argv)
    levels = [int(level) for level in args.concurrency.split(",") if level.strip()]
    settings = Settings(**harness.settings_fields(args), requests_per_stream=args.requests_per_stream)
    load_before = os.getloadavg()[0]
    with harness.workdir(args.workdir, "bench-serve-") as scratch:
        rows = measure(systems, levels, settings, scratch)
        print(format_table(rows))
        print()
        print(describe(settings, load_before))
        if not args.no_costs:
            print()
            print(costs.measure(settings.gguf, scratch / "costs", settings.threads, settings.ctx_per_seq).format())
    return 1 if any(row.result.failures for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
