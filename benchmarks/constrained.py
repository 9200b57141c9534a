"""Grammar-constrained decoding: a JSON Schema request against the same request free, runner and llama-server.

    .venv/bin/python benchmarks/constrained.py [--levels 1,4] [--max-tokens 320] [--rounds 5]
        [--systems runner,llama-server] [--requests-per-stream 2] [--threads N] [--ctx-size 4096] [--model GGUF]
        [--contention N [--contention-nice 19]] [--workdir DIR]

Both systems serve the same GGUF with the same threads and context per sequence, each started once with as
many slots as the highest level (runner: runtime flag `--parallel N`; llama-server: `--parallel N -c N*ctx`),
and get one warm-up request free and one with the schema. Each request asks for an order as JSON; in mode
`schema` it carries SCHEMA (nested objects, arrays of objects and of strings, an enum) as OpenAI's
`response_format: {"type": "json_schema", "json_schema": {"name": "order", "schema": ..., "strict": true}}`,
which both systems honour; in mode `free` it is the same request without it. Streamed at temperature 0,
`--max-tokens` per answer (SmolLM2's orders under the schema take about 240 tokens), stopping at end of
generation (no ignore_eos: the runner refuses it with a constraint, the answer ends where the JSON does), so
answers differ in length and the figures to compare are decode rates: completion tokens after the first over
the time after the first token.

For each level N, in each of `--rounds` rounds, each (system, mode) pair in turn (the order rotating) serves
N streams of `--requests-per-stream` requests while the others idle. Every round and mode has prompts of its
own, the same for both systems, so no server answers a prompt it has cached.

Every answer of mode `schema` is checked: it must parse as JSON and be valid against SCHEMA (`jsonschema`).
Answers that are not, and that stopped at `max_tokens` (finish_reason "length"), are counted as cut, the
others as invalid; the invalid ones are printed to stderr.

Prints a Markdown table (figures over all rounds; ratios as medians of per-round ratios, to llama-server in
the same mode and to the same system's free mode), then the machine and the settings. Exit status 1 if any
request failed or any answer was invalid. The rounds, the options and the machine note are harness.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import baselines
import harness
import loadgen
from harness import REFERENCE
from loadgen import LevelResult, RequestResult
from servers import Endpoint

SYSTEMS = ("runner", "llama-server")
MODES = ("free", "schema")


def _text(longest: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": longest}


# Bounded strings and arrays: a small model at temperature 0 tends to fill a string with digits until its end.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": _text(12),
        "customer": {
            "type": "object",
            "properties": {"name": _text(32), "email": _text(40)},
            "required": ["name", "email"],
            "additionalProperties": False,
        },
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": _text(12), "quantity": {"type": "integer"}, "price": {"type": "number"}},
                "required": ["sku", "quantity", "price"],
                "additionalProperties": False,
            },
            "minItems": 1,
            "maxItems": 3,
        },
        "shipping_address": {
            "type": "object",
            "properties": {"street": _text(32), "city": _text(32), "postal_code": _text(12), "country": _text(32)},
            "required": ["street", "city", "postal_code", "country"],
            "additionalProperties": False,
        },
        "status": {"enum": ["pending", "paid", "shipped"]},
        "tags": {"type": "array", "items": _text(16), "maxItems": 3},
    },
    "required": ["order_id", "customer", "items", "shipping_address", "status", "tags"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "order", "schema": SCHEMA, "strict": True}}
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

CUSTOMERS = (
    ("Ada Brooks", "Leeds"), ("Bruno Keller", "Basel"), ("Chloe Martin", "Lyon"), ("Dmitri Orlov", "Riga"),
    ("Elena Rossi", "Turin"), ("Farid Haddad", "Lille"), ("Greta Lund", "Malmo"), ("Hugo Silva", "Porto"),
    ("Ines Navarro", "Seville"), ("Jonas Weber", "Bremen"), ("Kaito Mori", "Osaka"), ("Lena Novak", "Brno"),
    ("Mateo Cruz", "Cordoba"), ("Nora Quinn", "Galway"), ("Oskar Berg", "Bergen"), ("Priya Nair", "Kochi"),
)  # fmt: skip
GOODS = (
    "garden tools",
    "coffee beans and a grinder",
    "children's books",
    "running shoes and socks",
    "kitchen knives",
    "paint and brushes",
    "camping gear",
    "board games",
)
PROMPT_COUNT = len(CUSTOMERS) * len(GOODS)


def prompt(index: int) -> str:
    """The index-th of PROMPT_COUNT distinct requests for an order as JSON (then they repeat)."""
    name, city = CUSTOMERS[index // len(GOODS) % len(CUSTOMERS)]
    return (
        f"{name} from {city} orders {GOODS[index % len(GOODS)]}. Write this order as a JSON object with: "
        "order_id; customer (name, email); items, a list of objects with sku, quantity and price; "
        "shipping_address (street, city, postal_code, country); status (pending, paid or shipped); tags, a list "
        "of short strings. Reply with the JSON only."
    )


def with_mode(endpoint: Endpoint, mode: str) -> Endpoint:
    """The endpoint whose requests carry the schema (mode "schema") or not ("free")."""
    extra = {**endpoint.extra, "response_format": RESPONSE_FORMAT} if mode == "schema" else endpoint.extra
    return Endpoint(endpoint.base_url, endpoint.model, extra)


def mode_of(endpoint: Endpoint) -> str:
    return "schema" if "response_format" in endpoint.extra else "free"


def verdict(result: RequestResult) -> str:
    """The answer's kind: valid (JSON valid against SCHEMA), else cut (stopped at max_tokens) or invalid."""
    try:
        if VALIDATOR.is_valid(json.loads(result.text)):
            return "valid"
    except json.JSONDecodeError:
        pass
    return "cut" if result.finish_reason == "length" else "invalid"


@dataclass(frozen=True)
class Settings(harness.Settings):
    requests_per_stream: int = 2


@dataclass
class Row:
    system: str
    mode: str
    rounds: list[LevelResult]  # one per round, in order

    @cached_property
    def result(self) -> LevelResult:
        return loadgen.pooled(self.rounds)

    @property
    def answers(self) -> list[RequestResult]:
        return [request for request in self.result.results if request.ok]

    def count(self, kind: str) -> str:
        """How many answers are `kind` (of `verdict`); "–" in mode free, where nothing is checked."""
        return str(sum(verdict(answer) == kind for answer in self.answers)) if self.mode == "schema" else "–"

    @property
    def invalid(self) -> list[RequestResult]:
        return [answer for answer in self.answers if self.mode == "schema" and verdict(answer) == "invalid"]


def play(endpoint: Endpoint, turn: int, *, level: int, first: int, settings: Settings) -> LevelResult:
    """`level` streams against one system in one mode, with the prompts of round `turn` and that mode
    (from `first` on)."""
    requests = level * settings.requests_per_stream
    [result] = loadgen.run(
        endpoint.base_url,
        endpoint.model,
        [level],
        warmup=False,
        max_tokens=settings.max_tokens,
        requests_per_stream=settings.requests_per_stream,
        extra=endpoint.extra,
        first_prompt=first + (turn * len(MODES) + MODES.index(mode_of(endpoint))) * requests,
        ignore_eos=False,
        prompts=prompt,
    )
    return result


def warm_up(system: str, endpoint: Endpoint) -> None:
    """One short request with the schema: a system that refuses it stops the benchmark before it measures, and
    no timed request is the first to use the schema."""
    [result] = loadgen.run(
        endpoint.base_url,
        endpoint.model,
        [1],
        warmup=False,
        max_tokens=16,
        requests_per_stream=1,
        extra=with_mode(endpoint, "schema").extra,
        first_prompt=PROMPT_COUNT - 1,  # which measurements reach last
        ignore_eos=False,
        prompts=prompt,
    )
    if result.failures:
        raise SystemExit(f"{system} failed a request with the schema: {result.results[0].error}")


def measure(systems: Sequence[str], levels: Sequence[int], settings: Settings, workdir: Path) -> list[Row]:
    rows = []
    first = 0  # each level has prompts of its own: the servers keep running from one level to the next
    with harness.started(systems, settings, workdir, lambda system: max(levels)) as endpoints:
        for system, endpoint in endpoints.items():
            warm_up(system, endpoint)
        pairs = {f"{system}, {mode}": (system, mode) for system in systems for mode in MODES}
        variants = {key: with_mode(endpoints[system], mode) for key, (system, mode) in pairs.items()}
        for level in levels:
            measured = partial(play, level=level, first=first, settings=settings)
            by_key = harness.interleaved(variants, settings, measured, label=f"{level} stream(s): ")
            rows += [Row(system, mode, by_key[key]) for key, (system, mode) in pairs.items()]
            first += settings.rounds * len(MODES) * level * settings.requests_per_stream
    return sorted(rows, key=lambda row: (systems.index(row.system), row.result.concurrency, MODES.index(row.mode)))


def _ratios(row: Row, reference: Row | None) -> str:
    """Medians of the per-round ratios of the decode rate per stream and of all tokens/s, as "stream / all"."""
    if reference is None:
        return "–"
    theirs = reference.rounds
    stream = harness.paired_ratio(row.rounds, theirs, lambda level: level.decode_tps_per_stream)
    return f"{stream} / {harness.paired_ratio(row.rounds, theirs, lambda level: level.aggregate_tps)}"


def format_table(rows: Sequence[Row]) -> str:
    by_key = {(row.system, row.mode, row.result.concurrency): row for row in rows}
    lines = [
        "| system | mode | conc | reqs | fail | valid | cut | invalid | tokens mean | TTFT p50 ms | tok/s/stream "
        "| tok/s all | ×ls same mode (stream / all) | ×own free (stream / all) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        r = row.result
        tokens = statistics.mean(answer.tokens for answer in row.answers) if row.answers else 0
        lines.append(
            f"| {row.system} | {row.mode} | {r.concurrency} | {r.requests} | {r.failures} | {row.count('valid')} "
            f"| {row.count('cut')} | {row.count('invalid')} | {tokens:.0f} | {r.ttft_median_ms:.0f} "
            f"| {r.decode_tps_per_stream:.1f} | {r.aggregate_tps:.1f} "
            f"| {_ratios(row, by_key.get((REFERENCE, row.mode, r.concurrency)))} "
            f"| {_ratios(row, by_key.get((row.system, 'free', r.concurrency)))} |"
        )
    return "\n".join(lines)


def describe(settings: Settings, levels: Sequence[int], load_before: float) -> str:
    return (
        f"{harness.machine(load_before)}\n"
        f"Settings: {settings.gguf.name}, llama.cpp of llama-cpp-python {baselines.llama_cpp_version()} in both; "
        f"{settings.threads_note()}; context {settings.ctx_per_seq} per sequence; {max(levels)} slots; the same "
        "request for an order as JSON in both modes, mode schema adding SCHEMA (an object with nested objects, an "
        "array of objects, an array of strings and an enum; strings and arrays bounded) as response_format "
        f"json_schema, strict; temperature 0; max_tokens {settings.max_tokens}, stopping at end of generation; "
        f"both systems running side by side after one warm-up request each free and with the schema, then, per "
        f"level, {settings.rounds} round{'s' if settings.rounds != 1 else ''} in which each system in each mode "
        f"serves {settings.requests_per_stream} requests per stream. tok/s/stream: median decode rate of a "
        "request after its first token; tok/s all: completion tokens / summed wall time; tokens mean: completion "
        "tokens per answer. valid: answers that parse as JSON valid against SCHEMA; cut: answers that do not and "
        "stopped at max_tokens; invalid: the others. Ratios are medians of per-round ratios, to llama-server in "
        "the same mode and level (×ls) and to the same system's free mode at the same level (×own free). "
        + settings.contention_note()
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_arguments(parser, SYSTEMS, rounds=5, max_tokens=320)
    parser.add_argument("--levels", default="1,4", help="comma-separated stream counts (default: %(default)s)")
    parser.add_argument("--requests-per-stream", type=int, default=2)
    args, systems = harness.parse(parser, argv)
    levels = [int(level) for level in args.levels.split(",") if level.strip()]
    settings = Settings(**harness.settings_fields(args), requests_per_stream=args.requests_per_stream)
    load_before = os.getloadavg()[0]
    with harness.workdir(args.workdir, "bench-constrained-") as scratch:
        rows = measure(systems, levels, settings, scratch)
    for row in rows:
        for answer in row.invalid:
            print(f"invalid answer of {row.system} at {row.result.concurrency}: {answer.text!r}", file=sys.stderr)
    print(format_table(rows))
    print()
    print(describe(settings, levels, load_before))
    return 1 if any(row.result.failures or row.invalid for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
