"""Pooled inference (llama.cpp's RPC backend) against the model in the runner's own worker, and what latency costs.

    .venv/bin/python benchmarks/rpc_pool.py [--levels 1,4] [--delays 0,0.5,2,5] [--max-tokens 128] [--rounds 3]
        [--systems local,pooled-loopback,pooled-netns,proxied] [--requests-per-stream 2] [--threads N]
        [--ctx-size 4096] [--model GGUF] [--workdir DIR] [--quick]

Systems, all started side by side (one runner each, SmolLM2 with `--parallel` = the highest level):
- local: the model in the runner's worker;
- pooled-loopback: the worker holds no layers; two `docker model rpc-server`s on 127.0.0.1 hold them
  (runtime flag `--rpc A,B`; the split by their offers);
- pooled-netns: the same two servers, each in a network namespace of its own (a veth pair to the host, as
  tests/fixtures/netns.py makes them; needs root, else left out with a note);
- proxied-D: pooled-loopback with benchmarks/delay_proxy.py in front of each server, adding D ms to every round
  trip (D/2 each way), for each D of --delays.

Then, in each of --rounds rounds, each system in turn (the order rotating; the others idle) serves each level's
streams (loadgen: temperature 0, max_tokens with ignore_eos, prompts of their own per round). The first table
gives time to first token and tokens/s per system and level, with ratios to local (medians of per-round
ratios); the second, per added round trip, the decode time per token and what it adds over the proxy at 0 ms.
Added time per token divided by the measured round trip is how many round trips a token waits for: the cost
per hop, which the last line extrapolates to a network's round trip. Every rpc-server gets as many threads as
the runner's worker (--threads; default one per physical core). On two cores the servers compute in turn
(llama.cpp runs the layers of one token one device after another), so pooling here measures the protocol's
cost, not more compute. Exit status 1 if a request failed. `--quick` (CI's smoke test): one round, level 1,
8 tokens, delays 0 and 2, a 1024-token context.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness
import loadgen
from delay_proxy import delayed, round_trip_ms
from loadgen import LevelResult
from servers import MODEL, Endpoint, configure_runner, prepare_store, start_runner

from docker_model.runner.shared.cpu import default_threads
from tests.fixtures.netns import other_machine
from tests.fixtures.registry import free_port
from tests.fixtures.rpc_servers import rpc_server

KINDS = ("local", "pooled-loopback", "pooled-netns", "proxied")
REFERENCE = "local"
QUICK = ["--rounds", "1", "--levels", "1", "--max-tokens", "8", "--requests-per-stream", "1"]
QUICK += ["--delays", "0,2", "--ctx-size", "1024"]


@dataclass(frozen=True)
class Settings(harness.Settings):
    levels: tuple[int, ...] = (1, 4)
    delays: tuple[float, ...] = (0.0, 0.5, 2.0, 5.0)  # ms added to a round trip
    requests_per_stream: int = 2

    @property
    def engine_threads(self) -> int:
        return self.threads or default_threads()


@dataclass
class Row:
    system: str
    rounds: list[LevelResult] = field(default_factory=list)

    @cached_property
    def result(self) -> LevelResult:
        return loadgen.pooled(self.rounds)


def delay_name(delay: float) -> str:
    return f"proxied-{delay:g}"


@contextmanager
def runner_over(settings: Settings, workdir: Path, name: str, rpc: Sequence[str]) -> Iterator[Endpoint]:
    """A runner with the model loaded: in its worker, or over the RPC servers at `rpc` (host:port each)."""
    models = workdir / "models"
    if not models.exists():
        prepare_store(settings.gguf, models)
    with start_runner(models, workdir / name) as (env, _process):
        flags = ["--parallel", str(max(settings.levels)), "--threads", str(settings.engine_threads)]
        configure_runner(env, settings.ctx_per_seq, flags + (["--rpc", ",".join(rpc)] if rpc else []))
        [loaded] = httpx.get(f"{env.base_url}/engines/ps", timeout=30).json()
        holding = [share["endpoint"] for share in loaded["rpc"]]
        if holding != list(rpc):
            raise RuntimeError(f"{name}: the model's layers went to {holding or 'this machine'}, not to {rpc}")
        yield Endpoint(f"{env.base_url}/engines/v1", MODEL)


def start_systems(systems: Sequence[str], settings: Settings, workdir: Path, running: ExitStack) -> dict[str, Endpoint]:
    """Each system with its own RPC servers, warmed up with one request."""
    threads = ["--threads", str(settings.engine_threads)]
    loopback = partial(rpc_server, workdir / "rpc", options=threads)
    endpoints: dict[str, Endpoint] = {}
    for system in systems:
        print(f"starting {system}", file=sys.stderr)
        if system == "local":
            rpc: list[str] = []
        elif system == "pooled-loopback":
            rpc = [running.enter_context(loopback(port=free_port())).endpoint.address for _ in range(2)]
        elif system == "pooled-netns":
            machines = [running.enter_context(other_machine()) for _ in range(2)]
            servers = [
                running.enter_context(rpc_server(workdir / "rpc", machine.address, machine=machine, options=threads))
                for machine in machines
            ]
            rpc = [server.endpoint.address for server in servers]
        else:
            delay = float(system.removeprefix("proxied-"))
            targets = [running.enter_context(loopback(port=free_port())).endpoint.address for _ in range(2)]
            rpc = [running.enter_context(delayed(target, delay / 2)) for target in targets]
        endpoints[system] = endpoint = running.enter_context(runner_over(settings, workdir, system, rpc))
        loadgen.run(endpoint.base_url, endpoint.model, [])  # the warm-up request
    return endpoints


def serve_round(endpoint: Endpoint, turn: int, *, settings: Settings) -> list[LevelResult]:
    """Each level's streams against one system, with the prompts of round `turn`."""
    per_round = sum(settings.levels) * settings.requests_per_stream
    return loadgen.run(
        endpoint.base_url,
        endpoint.model,
        settings.levels,
        warmup=False,
        max_tokens=settings.max_tokens,
        requests_per_stream=settings.requests_per_stream,
        first_prompt=turn * per_round,
    )


def measure(systems: Sequence[str], settings: Settings, workdir: Path) -> dict[tuple[str, int], Row]:
    rows = {(system, level): Row(system) for system in systems for level in settings.levels}
    with ExitStack() as running:
        endpoints = start_systems(systems, settings, workdir, running)
        by_system = harness.interleaved(endpoints, settings, partial(serve_round, settings=settings))
    for system, rounds in by_system.items():
        for levels in rounds:
            for result in levels:
                rows[system, result.concurrency].rounds.append(result)
    return rows


def format_speed(rows: dict[tuple[str, int], Row], settings: Settings) -> str:
    lines = [
        "| system | conc | reqs | fail | TTFT p50 ms | TTFT p95 ms | tok/s/stream | tok/s all | stream ×local "
        "| all ×local |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (system, level), row in rows.items():
        r = row.result
        reference = rows.get((REFERENCE, level))
        against = reference.rounds if reference else None
        lines.append(
            f"| {system} | {level} | {r.requests} | {r.failures} | {r.ttft_median_ms:.0f} | {r.ttft_p95_ms:.0f} "
            f"| {r.decode_tps_per_stream:.1f} | {r.aggregate_tps:.1f} "
            f"| {harness.paired_ratio(row.rounds, against, lambda x: x.decode_tps_per_stream)} "
            f"| {harness.paired_ratio(row.rounds, against, lambda x: x.aggregate_tps)} |"
        )
    return "\n".join(lines)


def ms_per_token(row: Row) -> float:
    rate = row.result.decode_tps_per_stream
    return 1000 / rate if rate else float("nan")


def format_latency(rows: dict[tuple[str, int], Row], settings: Settings, round_trips: dict[float, float]) -> str:
    """Per added round trip: decode time per token, what it adds over the proxy at 0 ms, and that over the
    measured round trip (round trips a token waits for); then the cost per hop from a fit over the delays."""
    lines = [
        "| RTT added, set ms | RTT through the proxy ms | conc | tok/s/stream | ms/token | + ms/token "
        "| round trips/token |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base_rtt = round_trips[0.0]
    slopes = {}
    for level in settings.levels:
        base = rows[delay_name(0.0), level]
        points = []
        for delay in settings.delays:
            row = rows[delay_name(delay), level]
            added_rtt = round_trips[delay] - base_rtt
            added = ms_per_token(row) - ms_per_token(base)
            trips = f"{added / added_rtt:.1f}" if added_rtt > 0.05 else "–"
            lines.append(
                f"| {delay:g} | {round_trips[delay]:.2f} | {level} | {row.result.decode_tps_per_stream:.1f} "
                f"| {ms_per_token(row):.2f} | {added:+.2f} | {trips} |"
            )
            points.append((added_rtt, added))
        if len(points) > 1 and len({x for x, _ in points}) > 1:
            slopes[level] = statistics.linear_regression(*zip(*points, strict=True)).slope
    fits = "; ".join(
        f"{level} stream(s): {slope:.1f} round trips per token, so {slope:.1f} ms per token for each ms of round trip"
        for level, slope in slopes.items()
    )
    return "\n".join(lines) + (f"\n\nCost per hop (least squares over the delays): {fits}." if fits else "")


def other_load() -> str:
    """The processes (not this benchmark's) that used over 5 % of a core in one second before the run."""
    mine = {os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True))}
    processes = [process for process in psutil.process_iter(["name"]) if process.pid not in mine]
    for process in processes:
        with suppress(psutil.Error):
            process.cpu_percent(None)
    psutil.cpu_percent(1.0)
    busy = []
    for process in processes:
        try:
            percent = process.cpu_percent(None)
        except psutil.Error:
            continue
        if percent > 5:
            busy.append(f"{process.info['name']} ({percent:.0f} %)")
    return "Other processes busy before the run: " + (", ".join(busy) if busy else "none") + "."


def describe(settings: Settings, systems: Sequence[str], load_before: float, busy_before: str) -> str:
    return (
        f"{harness.machine(load_before)}\n{busy_before}\n"
        f"Settings: {settings.gguf.name}; systems {', '.join(systems)}; {settings.engine_threads} threads in every "
        f"worker and rpc-server; {max(settings.levels)} slots; context {settings.ctx_per_seq} per sequence; "
        f"temperature 0; max_tokens {settings.max_tokens} with ignore_eos; {settings.rounds} interleaved round(s), "
        f"{settings.requests_per_stream} request(s) per stream per level. Figures pool all rounds; ×local are "
        "medians of per-round ratios."
    )


def parse(argv: Sequence[str] | None) -> tuple[Settings, list[str], Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_arguments(parser, KINDS, rounds=3, max_tokens=128)
    parser.add_argument("--levels", default="1,4", help="concurrent streams, comma-separated (default: %(default)s)")
    parser.add_argument("--delays", default="0,0.5,2,5", help="ms added per round trip (default: %(default)s)")
    parser.add_argument("--requests-per-stream", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a smoke run: " + " ".join(QUICK))
    given = list(sys.argv[1:] if argv is None else argv)
    args, kinds = harness.parse(parser, [*QUICK, *given] if "--quick" in given else given)  # given options win
    delays = tuple(sorted({0.0, *(float(delay) for delay in args.delays.split(",") if delay.strip())}))
    if "pooled-netns" in kinds and (os.geteuid() != 0 or shutil.which("ip") is None):
        print("pooled-netns left out: network namespaces need root and `ip`", file=sys.stderr)
        kinds.remove("pooled-netns")
    systems = [name for kind in kinds for name in ([delay_name(d) for d in delays] if kind == "proxied" else [kind])]
    settings = Settings(
        **harness.settings_fields(args),
        levels=tuple(int(level) for level in args.levels.split(",") if level.strip()),
        delays=delays if "proxied" in kinds else (),
        requests_per_stream=args.requests_per_stream,
    )
    return settings, systems, args.workdir


def main(argv: Sequence[str] | None = None) -> int:
    settings, systems, workdir = parse(argv)
    load_before, busy_before = os.getloadavg()[0], other_load()
    round_trips = {delay: round_trip_ms(delay / 2) for delay in settings.delays}
    with harness.workdir(workdir, "bench-rpc-") as scratch:
        rows = measure(systems, settings, scratch)
    print(format_speed(rows, settings))
    if settings.delays:
        print()
        print(format_latency(rows, settings, round_trips))
    print()
    print(describe(settings, systems, load_before, busy_before))
    return 1 if any(row.result.failures for row in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
