"""`docker model bench MODEL`: tokens per second and time to first token at several concurrencies, measured
against the running runner through its OpenAI streaming route.

At each level, that many clients send the same chat request back to back until `--duration` is over, and
the level ends when their last answers are in. Docker Model Runner's flags and `--json` shape (Go's field
names; durations in nanoseconds), with the time to first token added (`MeanTTFT`) and failed requests
counted (`Errors`). A request the runner refuses (a 4xx, or 507: the model does not fit) stops the benchmark,
as do MAX_FAILURES_IN_A_ROW failures in a row; so does Ctrl-C (exit status 130). Either way the levels
measured until then are shown."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import click
from typing_extensions import TypedDict

from docker_model.cli.chat_stream import pieces_of, sse_chunks
from docker_model.cli.client import Reply, RunnerClient, RunnerError, about_model, model_path
from docker_model.cli.render import table
from docker_model.units import parse_duration

DEFAULT_PROMPT = "In about 100 words, tell how whales live and why they matter to people."
DEFAULT_CONCURRENCY = (1, 2, 4, 8)
DEFAULT_DURATION = "30s"
DEFAULT_TIMEOUT = "5m"
MAX_CONCURRENCY = 256
ROUTE = "/engines/v1/chat/completions"
MAX_FAILURES_IN_A_ROW = 10  # then the runner is down or failing every request: more would only print errors
STOP_WAIT_SECONDS = 2.0  # how long the clients get to end after Ctrl-C


class LevelResult(TypedDict):
    """One concurrency level in `--json`."""

    Concurrency: int
    MeanRPS: float
    TotalTokens: int
    TPS: float
    TotalTime: int  # nanoseconds
    Requests: int
    TokenCounts: list[int]
    MeanTTFT: int  # nanoseconds, over the requests answered
    Errors: int


@dataclass
class Level:
    """What the clients of one level measured, gathered from their threads."""

    concurrency: int
    tokens: list[int] = field(default_factory=list)
    first_token: list[float] = field(default_factory=list)  # seconds
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures_in_a_row: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)
    why_stopped: str | None = None  # None: not stopped, or by Ctrl-C
    answering: set[Reply] = field(default_factory=set)  # the answers being read now

    def answered(self, tokens: int, first_token: float) -> None:
        with self.lock:
            self.tokens.append(tokens)
            self.first_token.append(first_token)
            self.failures_in_a_row = 0

    def failed(self, message: str, refused: bool) -> None:
        """A failed request, shown and counted; a refusal, or too many failures in a row, stops the level."""
        with self.lock:
            if self.stopped.is_set():
                return  # cut short by the stop itself
            click.echo(f"request failed during the benchmark: {message}", err=True)
            self.errors.append(message)
            self.failures_in_a_row += 1
            if refused:
                self.stop(f"the runner refused its request: {message}")
            elif self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                self.stop(f"{MAX_FAILURES_IN_A_ROW} requests failed in a row, the last: {message}")

    def stop(self, why: str | None) -> None:
        """Stop every client: none sends another request, and the answers being read are cut (hold the lock)."""
        if not self.stopped.is_set():
            self.why_stopped = why
            self.stopped.set()
        for reply in self.answering:
            cut(reply)

    @contextlib.contextmanager
    def reading(self, reply: Reply) -> Iterator[None]:
        with self.lock:
            self.answering.add(reply)
            if self.stopped.is_set():
                cut(reply)
        try:
            yield
        finally:
            with self.lock:
                self.answering.discard(reply)

    def result(self, seconds: float) -> LevelResult:
        return {
            "Concurrency": self.concurrency,
            "MeanRPS": len(self.tokens) / seconds,
            "TotalTokens": sum(self.tokens),
            "TPS": sum(self.tokens) / seconds,
            "TotalTime": int(seconds * 1e9),
            "Requests": len(self.tokens),
            "TokenCounts": self.tokens,
            "MeanTTFT": int(sum(self.first_token) / len(self.first_token) * 1e9) if self.first_token else 0,
            "Errors": len(self.errors),
        }


class RequestFailed(Exception):
    pass


class BenchStopped(click.ClickException):
    pass


def cut(reply: Reply) -> None:
    """End the reading of `reply` from another thread (closing its socket alone would not wake a blocked read)."""
    sock = reply.connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def refused(error: Exception) -> bool:
    """Whether the runner refuses the request as such (asking again would fail again): a 4xx other than a
    timeout or too many requests, or a 507 (the model does not fit in memory)."""
    return isinstance(error, RunnerError) and (
        error.status == 507 or (400 <= error.status < 500 and error.status not in (408, 429))
    )


def concurrency_levels(values: tuple[str, ...]) -> list[int]:
    """`--concurrency 1,2 --concurrency 4` as [1, 2, 4]."""
    levels = set()
    for value in values:
        for part in value.split(","):
            try:
                level = int(part)
            except ValueError:
                raise click.BadParameter(
                    f"{part.strip()!r} is not a whole number", param_hint="--concurrency"
                ) from None
            if not 1 <= level <= MAX_CONCURRENCY:
                raise click.BadParameter(f"{level} is not between 1 and {MAX_CONCURRENCY}", param_hint="--concurrency")
            levels.add(level)
    return sorted(levels) if levels else list(DEFAULT_CONCURRENCY)


def seconds_of(value: str, name: str, default: str) -> float:
    """A duration flag in seconds: Go's syntax (`30s`, `1m30s`, `500ms`); 0 means the default, as in DMR."""
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=name) from None
    if seconds < 0:
        raise click.BadParameter(f"{value!r} is negative: give a duration like {default}", param_hint=name)
    return seconds or parse_duration(default)


def ask(client: RunnerClient, body: bytes, timeout: float, level: Level) -> tuple[int, float]:
    """One streamed answer: its completion tokens and the seconds until its first token."""
    began = time.perf_counter()
    first: float | None = None
    tokens = pieces = 0
    with (
        client.request(
            "POST", ROUTE, data=body, headers={"Content-Type": "application/json"}, timeout=timeout
        ) as reply,
        level.reading(reply),
    ):
        for chunk in sse_chunks(reply):  # IncompleteAnswer when the answer ends before `[DONE]`
            if time.perf_counter() - began > timeout:
                raise RequestFailed(f"no complete answer within --timeout ({timeout:g}s)")
            got = sum(1 for _ in pieces_of(chunk))  # raises the runner's error, when the stream reports one
            if got and first is None:
                first = time.perf_counter() - began
            pieces += got
            usage = chunk.get("usage") or {}
            tokens = usage["completion_tokens"] if isinstance(usage.get("completion_tokens"), int) else tokens
    if first is None:
        raise RequestFailed("the answer was empty: try another --prompt")
    return tokens or pieces, first


def run_level(client: RunnerClient, body: bytes, concurrency: int, seconds: float, timeout: float) -> LevelResult:
    level = Level(concurrency)
    deadline = time.perf_counter() + seconds

    def client_loop() -> None:
        while time.perf_counter() < deadline and not level.stopped.is_set():
            try:
                tokens, first = ask(client, body, timeout, level)
            except (click.ClickException, RequestFailed, OSError, http.client.HTTPException, ValueError) as error:
                message = error.format_message() if isinstance(error, click.ClickException) else str(error)
                level.failed(message, refused(error))
                continue
            level.answered(tokens, first)

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(concurrency)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        with level.lock:
            level.stop(None)
        give_up = time.monotonic() + STOP_WAIT_SECONDS
        for thread in threads:
            if thread.is_alive():
                thread.join(max(0.0, give_up - time.monotonic()))
        raise
    if level.why_stopped:
        raise BenchStopped(f"the benchmark stopped at concurrency {concurrency}: {level.why_stopped}")
    if not level.tokens:
        last = level.errors[-1] if level.errors else "none was answered within --duration"
        raise BenchStopped(f"every request at concurrency {concurrency} failed: {last}")
    return level.result(time.perf_counter() - started)


def summary_table(results: list[LevelResult]) -> str:
    base = next((r["TPS"] for r in results if r["Concurrency"] == 1), results[0]["TPS"])
    rows = [
        [
            str(r["Concurrency"]),
            f"{r['TPS']:.2f}",
            f"{r['TPS'] / base:.2f}x" if base else "-",
            f"{r['MeanRPS']:.2f}",
            f"{r['MeanTTFT'] / 1e6:.0f} ms",
            str(r["Requests"]),
            str(r["TotalTokens"]),
            str(r["Errors"]),
        ]
        for r in results
    ]
    headers = ["CONCURRENCY", "TOKENS/S", "REL. SPEED", "REQUESTS/S", "MEAN TTFT", "REQUESTS", "TOKENS", "ERRORS"]
    return table(headers, rows)


@click.command()
@click.argument("model")
@click.option("--prompt", default=DEFAULT_PROMPT, show_default=True, help="Prompt to send in every request")
@click.option("--duration", default=DEFAULT_DURATION, show_default=True, help="How long to run each level")
@click.option(
    "--concurrency",
    multiple=True,
    help="Concurrency levels, comma-separated or repeated  [default: 1,2,4,8]",
)
@click.option("--timeout", default=DEFAULT_TIMEOUT, show_default=True, help="Longest wait for one request")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON")
def bench(model: str, prompt: str, duration: str, concurrency: tuple[str, ...], timeout: str, as_json: bool) -> None:
    """Measure MODEL's tokens per second and time to first token at concurrency 1, 2, 4 and 8."""
    levels = concurrency_levels(concurrency)
    seconds = seconds_of(duration, "--duration", DEFAULT_DURATION)
    request_timeout = seconds_of(timeout, "--timeout", DEFAULT_TIMEOUT)
    if not prompt.strip():
        raise click.BadParameter("the prompt is empty", param_hint="--prompt")
    client = RunnerClient()
    with about_model(model):
        client.request("GET", model_path(model)).close()
    messages = [{"role": "user", "content": prompt}]
    data = json.dumps({"model": model, "messages": messages, "stream": True, "stream_options": {"include_usage": True}})
    if not as_json:
        click.echo(f"Prompt: {prompt}\nDuration: {duration} per level\nConcurrency levels: {levels}\n", err=True)
    results: list[LevelResult] = []
    try:
        for level in levels:
            if not as_json:
                click.echo(f"Running at concurrency {level}...", err=True)
            results.append(run_level(client, data.encode(), level, seconds, request_timeout))
    except KeyboardInterrupt:
        click.echo(
            f"\nBenchmark interrupted{'; the levels measured:' if results else ' before a level ended'}", err=True
        )
        show_results(model, prompt, results, as_json)
        sys.exit(130)
    except BenchStopped:
        show_results(model, prompt, results, as_json)
        raise
    show_results(model, prompt, results, as_json)


def show_results(model: str, prompt: str, results: list[LevelResult], as_json: bool) -> None:
    """The levels measured, as a table or as JSON; nothing when there are none."""
    if not results:
        return
    if as_json:
        sys.stdout.write(json.dumps({"model": model, "prompt": prompt, "results": results}, indent=2) + "\n")
    else:
        click.echo(summary_table(results))
