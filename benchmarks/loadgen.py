"""Load generator for any OpenAI-compatible chat endpoint.

Fixed prompts, a fixed `max_tokens` with `ignore_eos` (so every request generates the same number
of tokens on servers that honour it), streamed at several concurrency levels. For each level it
reports time to first token (median, p95), decode tokens/s per stream, aggregate tokens/s and
failed requests.

    python benchmarks/loadgen.py --base-url http://127.0.0.1:8080/v1 --model smollm2 --concurrency 1,4

Importable: `run(base_url, model, levels=(1, 2, 4, 8), ...)` returns one `LevelResult` per level.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

TASKS = (
    "Write a short story about {}.",
    "Explain {} to a ten-year-old.",
    "List ten facts about {} and explain each one.",
    "Describe {} in detail.",
    "Write a letter to a friend about {}.",
    "Give step-by-step advice for someone new to {}.",
    "Write a poem about {}.",
    "Compare {} with something from everyday life.",
)
SUBJECTS = (
    "a lighthouse keeper",
    "refrigerators",
    "mountain trips",
    "the water cycle",
    "baking bread",
    "chess",
    "a coastal market at dawn",
    "vegetable gardens",
    "volcanoes",
    "learning a language",
    "a night train",
    "honeybees",
    "old maps",
    "a rainy city",
    "bicycles",
    "the moon",
)
PROMPT_COUNT = len(TASKS) * len(SUBJECTS)


def prompt(index: int) -> str:
    """The index-th of PROMPT_COUNT distinct prompts (then they repeat): while indexes stay distinct, a
    server's prompt cache helps with the chat template's common prefix only."""
    return TASKS[index % len(TASKS)].format(SUBJECTS[index // len(TASKS) % len(SUBJECTS)])


@dataclass
class RequestResult:
    ok: bool
    ttft: float = 0.0  # seconds from sending the request to the first generated text
    tokens: int = 0
    decode_seconds: float = 0.0  # first to last generated text
    error: str | None = None
    text: str = ""  # the answer's content
    prompt_tokens: int | None = None  # from `usage`, when the server sends it
    cached_tokens: int | None = None  # prompt tokens the server reports as reused from its cache
    finish_reason: str | None = None  # "stop", "length", ... as the server reports it

    @property
    def decode_tps(self) -> float:
        return (self.tokens - 1) / self.decode_seconds if self.tokens > 1 and self.decode_seconds > 0 else 0.0


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    failures: int
    ttft_median_ms: float
    ttft_p95_ms: float
    decode_tps_per_stream: float  # median over requests
    aggregate_tps: float  # all generated tokens / wall time of the level
    wall_seconds: float
    results: list[RequestResult] = field(default_factory=list, repr=False)


def summarize(concurrency: int, results: Sequence[RequestResult], wall: float) -> LevelResult:
    """The figures of `results`, requests made at `concurrency` streams within `wall` seconds."""
    good = [r for r in results if r.ok]
    ttfts = [r.ttft * 1000 for r in good]
    return LevelResult(
        concurrency=concurrency,
        requests=len(results),
        failures=len(results) - len(good),
        ttft_median_ms=statistics.median(ttfts) if ttfts else 0.0,
        ttft_p95_ms=_percentile(ttfts, 0.95),
        decode_tps_per_stream=statistics.median(r.decode_tps for r in good) if good else 0.0,
        aggregate_tps=sum(r.tokens for r in good) / wall if wall > 0 else 0.0,
        wall_seconds=wall,
        results=list(results),
    )


def pooled(levels: Sequence[LevelResult]) -> LevelResult:
    """Several runs at one concurrency as one: every request, over the summed wall time."""
    requests = [request for level in levels for request in level.results]
    return summarize(levels[0].concurrency, requests, sum(level.wall_seconds for level in levels))


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _has_text(event: dict[str, Any]) -> bool:
    for choice in event.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or choice.get("text"):
            return True
    return False


def _content(event: dict[str, Any]) -> str:
    return "".join((choice.get("delta") or {}).get("content") or "" for choice in event.get("choices") or ())


def _finish_reason(event: dict[str, Any]) -> str | None:
    return next((choice["finish_reason"] for choice in event.get("choices") or () if choice.get("finish_reason")), None)


async def one_request(client: httpx.AsyncClient, url: str, body: dict[str, Any], timeout: float) -> RequestResult:
    """Stream one chat completion, time it and keep its text. Token count: `usage` if sent, else text chunks."""
    start = time.perf_counter()
    first = last = 0.0
    chunks = 0
    text: list[str] = []
    usage: dict[str, Any] = {}
    finish_reason = None
    try:
        async with client.stream("POST", url, json=body, timeout=timeout) as response:
            if response.status_code != 200:
                detail = (await response.aread()).decode(errors="replace")[:200]
                return RequestResult(False, error=f"HTTP {response.status_code}: {detail}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if "error" in event:
                    return RequestResult(False, error=str(event["error"])[:200])
                if _has_text(event):
                    last = time.perf_counter()
                    first = first or last
                    chunks += 1
                    text.append(_content(event))
                usage = event.get("usage") or usage
                finish_reason = _finish_reason(event) or finish_reason
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        return RequestResult(False, error=f"{type(exc).__name__}: {exc}")
    if not chunks:
        return RequestResult(False, error="no text was generated")
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    return RequestResult(
        True,
        first - start,
        usage.get("completion_tokens") or chunks,
        last - first,
        text="".join(text),
        prompt_tokens=usage.get("prompt_tokens"),
        cached_tokens=cached,
        finish_reason=finish_reason,
    )


def chat_body(
    model: str,
    messages: list[dict[str, str]],
    max_tokens: int,
    temperature: float = 0.0,
    extra: dict[str, Any] | None = None,
    ignore_eos: bool = True,
) -> dict[str, Any]:
    """A streamed chat completion request that asks for `usage` in its last chunk."""
    return {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": temperature,
        **({"ignore_eos": True} if ignore_eos else {}),
        "stream": True,
        "stream_options": {"include_usage": True},
        **(extra or {}),
    }


async def measure_level(
    base_url: str,
    model: str,
    concurrency: int,
    max_tokens: int = 128,
    requests_per_stream: int = 2,
    temperature: float = 0.0,
    extra: dict[str, Any] | None = None,
    timeout: float = 600.0,
    first_prompt: int = 0,
    ignore_eos: bool = True,
    prompts: Callable[[int], str] = prompt,
) -> LevelResult:
    """`concurrency` streams, each sending `requests_per_stream` requests back to back, with prompts
    `first_prompt` onwards (`prompts(i)`, by default this module's `prompt`)."""
    url = base_url.rstrip("/") + "/chat/completions"
    results: list[RequestResult] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(limits=limits) as client:

        async def stream(index: int) -> None:
            for n in range(requests_per_stream):
                text = prompts(first_prompt + index + n * concurrency)
                messages = [{"role": "user", "content": text}]
                body = chat_body(model, messages, max_tokens, temperature, extra, ignore_eos)
                results.append(await one_request(client, url, body, timeout))

        begin = time.perf_counter()
        await asyncio.gather(*(stream(i) for i in range(concurrency)))
        wall = time.perf_counter() - begin

    return summarize(concurrency, results, wall)


async def run_async(
    base_url: str, model: str, levels: Sequence[int] = (1, 2, 4, 8), warmup: bool = True, **options: Any
) -> list[LevelResult]:
    if warmup:  # with the last prompt, which measurements reach last
        extra = options.get("extra")
        await measure_level(base_url, model, 1, 8, requests_per_stream=1, extra=extra, first_prompt=PROMPT_COUNT - 1)
    return [await measure_level(base_url, model, level, **options) for level in levels]


def run(base_url: str, model: str, levels: Sequence[int] = (1, 2, 4, 8), **options: Any) -> list[LevelResult]:
    """Measure each concurrency level in turn (after one short warm-up request)."""
    return asyncio.run(run_async(base_url, model, levels, **options))


def format_table(results: Sequence[LevelResult]) -> str:
    header = (
        f"{'conc':>4} {'reqs':>5} {'fail':>4} {'ttft p50':>9} {'ttft p95':>9} {'tok/s/stream':>12} {'tok/s all':>10}"
    )
    rows = [
        f"{r.concurrency:>4} {r.requests:>5} {r.failures:>4} {r.ttft_median_ms:>7.1f}ms {r.ttft_p95_ms:>7.1f}ms "
        f"{r.decode_tps_per_stream:>12.1f} {r.aggregate_tps:>10.1f}"
        for r in results
    ]
    return "\n".join([header, *rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="OpenAI base URL, e.g. http://127.0.0.1:12434/engines/v1")
    parser.add_argument("--model", required=True)
    parser.add_argument("--concurrency", default="1,2,4,8", help="comma-separated levels (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--requests-per-stream", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--extra", type=json.loads, default={}, help="JSON object merged into each request")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    results = run(
        args.base_url,
        args.model,
        levels,
        max_tokens=args.max_tokens,
        requests_per_stream=args.requests_per_stream,
        temperature=args.temperature,
        extra=args.extra,
    )
    print(json.dumps([asdict(r) for r in results], indent=2) if args.json else format_table(results))
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
