"""Agent workload: concurrent multi-turn conversations over one long shared system prompt, side by side.

    .venv/bin/python benchmarks/agents.py [--rounds 3] [--clients 4] [--turns 6] [--system-tokens 1500]
        [--max-tokens 48] [--systems runner,llama-server-defaults,llama-server] [--threads N]
        [--ctx-size 4096] [--model GGUF]
        [--contention N [--contention-nice 19]] [--workdir DIR]

As coding agents use a server: `--clients` clients at once, each holding a `--turns`-turn conversation that
resends its whole history every turn (system, user 1, assistant 1, user 2, ...; the assistant messages are
the answers the server gave), all clients sharing one system prompt of about `--system-tokens` tokens (a
project's coding guidelines and tool manual). Answers are streamed at temperature 0 with `--max-tokens`
and stop at end of generation (no ignore_eos).

The systems run side by side (runner: runtime flag `--parallel N` with N = `--clients`; llama-server:
`--parallel N -c N*ctx`, otherwise its defaults; llama-server-defaults: llama-server as a user starts it,
only `-t` set, hence 4 slots sharing one unified KV cache of the model's trained context) and get one
warm-up request each; then, in each of `--rounds` rounds, each system in turn (the order rotating) serves
the round's conversations while the others idle. Every round has a system prompt of its own (another
project: its name first, its sections in another order) and questions of its own, the same for every
system, so no server has a round cached from an earlier one. What this shares with serve.py is in harness.py.

Prints a Markdown table: requests, failures, completion tokens, time to first token (request sent to the
first text; p50 and p95 over all requests, p50 of first turns and of later turns), the wall time for all
clients to finish all turns summed over rounds, and ratios (medians of per-round ratios) to
llama-server-defaults, or to llama-server when that one is not measured;
then the machine and the settings. Per-turn figures (TTFT, prompt tokens and those the server reports as
cached) go to stderr. Exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import baselines
import harness
import loadgen
from loadgen import LevelResult, RequestResult
from servers import Endpoint

SYSTEMS = ("runner", "llama-server-defaults", "llama-server")
# The baseline is llama-server as users start it; "llama-server" (4 slots of the same context as the
# runner's, separate KV caches) is the like-for-like comparison.
REFERENCES = ("llama-server-defaults", "llama-server")
CHARS_PER_TOKEN = 4.25  # of the guidelines below, as SmolLM2's tokenizer counts them; the count is printed
TIMEOUT = 600.0  # seconds, per request

PROJECTS = (
    "Heron", "Basalt", "Quill", "Marlin", "Juniper", "Cobalt",
    "Tundra", "Saffron", "Orchid", "Granite", "Pelican", "Zephyr",
)  # fmt: skip

# (title, text): {project} and {package} are the round's project and its Python package
SECTIONS = (
    (
        "Repository layout",
        "The {project} repository keeps its source under src/{package}/, its tests under tests/ and its "
        "documentation under docs/. Never create top-level directories without asking. Configuration lives in "
        "pyproject.toml; do not add setup.py, setup.cfg or requirements files. Generated files go under build/ "
        "and are never committed. When you add a module, add its tests at the mirror path under tests/ and "
        "mention both in your summary.",
    ),
    (
        "Code style",
        "Write Python 3.10 or later. Format with ruff format and lint with ruff check; a change that does not "
        "pass both is not finished. Lines are at most 120 characters. Use f-strings, pathlib instead of os.path, "
        "and dataclasses for plain records. Prefer small functions with one purpose; a function longer than "
        "forty lines should be split. Do not leave commented-out code, debugging prints, or TODO comments "
        "without an issue number of the {project} tracker.",
    ),
    (
        "Naming",
        "Modules, functions and variables use snake_case; classes use CapWords; constants use UPPER_CASE. Names "
        "say what a thing is, not how it is computed: pending_orders, not filtered_list2. Boolean names read as "
        "statements: is_ready, has_children. Avoid abbreviations except well-known ones such as url, id and "
        "http. The public names of {package} are listed in its __all__; every other name starts with an "
        "underscore.",
    ),
    (
        "Type hints",
        "Every public function of {package} has type hints on its parameters and its return value. Use the "
        "built-in generics (list[int], dict[str, float]) and the | operator for unions. Prefer precise types: "
        "Sequence for read-only inputs, Iterator for generators, and dataclasses or TypedDict instead of loose "
        "dictionaries. mypy runs in strict mode on src/{package}; do not silence it with a type: ignore comment "
        "unless the same line explains why.",
    ),
    (
        "Errors",
        "Raise specific exceptions, never a bare Exception. The {project} error hierarchy is defined in "
        "src/{package}/errors.py, and every error derives from {project}Error. Never catch an exception only to "
        "ignore it. Error messages start with a lowercase letter, name the value that was wrong and say what "
        "was expected, for example: timeout must be positive, got -3. At the boundaries with users, the command "
        "line and the HTTP API, errors become messages; everywhere else they propagate.",
    ),
    (
        "Testing",
        "Tests use pytest. Each test checks one behaviour, and its name says which, for example "
        "test_parse_duration_rejects_negative_values. Prefer real objects to mocks; mock only the network, the "
        "clock and randomness. Use the tmp_path fixture for files. Tests must not depend on each other or on "
        "their order, must not sleep, and must each finish in under one second unless marked slow. A bug fix "
        "starts with a test that fails without the fix.",
    ),
    (
        "Documentation",
        "Every public module, class and function of {package} has a docstring. Its first line is one sentence "
        "in the imperative mood that ends with a period; further paragraphs explain the parameters that are not "
        "obvious, the return value and the exceptions raised. Keep docs/ in step with the code: a change to the "
        "command line or to the HTTP API of {project} updates docs/usage.md in the same commit.",
    ),
    (
        "Commits",
        "A commit message has a subject of at most 72 characters in the imperative mood, without a trailing "
        "period, then a blank line, then a body that explains why the change is needed. Reference issues as "
        "{project}#123. Make one logical change per commit; formatting changes go in commits of their own. "
        "Never commit secrets, large binary files or generated files.",
    ),
    (
        "Tool: read_file",
        "read_file(path, start_line, end_line) returns the lines of a file of the workspace with their numbers. "
        "Read a file before you change it, and read only the lines you need: the files of {project} can be "
        "long. Paths are relative to the repository root. The tool fails on binary files and on paths outside "
        "the workspace.",
    ),
    (
        "Tool: edit_file",
        "edit_file(path, old_text, new_text) replaces one exact occurrence of old_text with new_text. Include "
        "enough surrounding lines to make old_text unique; the call fails when it matches no text or more than "
        "once. Keep the indentation of the file. After an edit, read the changed region again to check the "
        "result.",
    ),
    (
        "Tool: run_command",
        "run_command(command, timeout_seconds) runs a shell command in the repository root and returns its exit "
        "status, standard output and standard error. Use it to run the tests (pytest -q tests/...), the linter "
        "and the formatter. Do not run commands that need the network, change global configuration or run for "
        "longer than the timeout. Never use sudo.",
    ),
    (
        "Tool: search",
        "search(pattern, path) lists the lines that match a regular expression, with file names and line "
        "numbers. Search before you add a helper: {package} may already have one. Prefer searching for a "
        "definition (def name, class Name) to reading whole directories.",
    ),
    (
        "Answers",
        "Answer in English, briefly. When you write code, give one complete function in a single Python code "
        "block, then at most three sentences of explanation. Do not repeat the question. When a request is "
        "ambiguous, state the assumption you make and go on. When asked for tests, give pytest functions. When "
        "asked for a commit message, give only the message.",
    ),
    (
        "Security",
        "Never execute code taken from user input, never build shell commands by joining strings, and never "
        "turn off certificate checks. Read secrets from environment variables whose names start with "
        "{PACKAGE}_, never from files in the repository. Validate every input that comes from outside the "
        "process: sizes, ranges and formats.",
    ),
    (
        "Performance",
        "Measure before optimizing, with the benchmarks under benchmarks/. Prefer clear code unless a "
        "measurement shows a problem. Avoid quadratic loops over inputs that can grow; use sets and "
        "dictionaries for membership tests. Never cache results without a bound on the size of the cache.",
    ),
    (
        "Dependencies",
        "{project} depends only on the standard library and on the packages listed in pyproject.toml. Ask "
        "before adding a dependency and explain what it brings; never add one for a function of a few lines. "
        "Pin nothing in pyproject.toml except lower bounds.",
    ),
    (
        "Logging",
        "Use the logging module with one logger per module, named after it: logging.getLogger(__name__). Log "
        "at debug level what helps to follow a request, at info level what an operator of {project} wants to "
        "see, and at warning level what needs attention. Never log secrets or whole request bodies. Library "
        "code in {package} never configures handlers; only the entry points do.",
    ),
    (
        "Concurrency",
        "{project} serves requests with asyncio. Never block the event loop: run file and CPU-heavy work in "
        "a thread with asyncio.to_thread. Every task that is started is awaited or cancelled before its owner "
        "returns. Protect shared state with a lock, or better, do not share it. Timeouts are explicit on every "
        "network call.",
    ),
)

# (function name, what it does): the first question of a conversation
TASKS = (
    ("parse_duration", "turns strings such as '1h30m' or '45s' into a number of seconds"),
    ("slugify", "turns a title into a lowercase URL slug"),
    ("merge_intervals", "merges overlapping integer intervals"),
    ("chunked", "splits a list into chunks of at most n items"),
    ("is_palindrome", "checks whether a sentence is a palindrome, ignoring case and punctuation"),
    ("word_counts", "counts how often each word occurs in a text"),
    ("flatten", "flattens arbitrarily nested lists"),
    ("parse_semver", "parses a semantic version string into a tuple of three integers"),
    ("rolling_average", "returns the rolling averages of a list of numbers over a window of n"),
    ("deduplicate", "removes duplicates from a list, keeping the first occurrence of each item"),
    ("camel_to_snake", "converts CamelCase names to snake_case"),
    ("retry", "calls a function up to n times until it stops raising an exception"),
    ("read_config", "reads key=value lines from a file into a dictionary, skipping comments"),
    ("top_k", "returns the k most frequent items of a list"),
    ("looks_like_email", "checks whether a string looks like an email address"),
    ("human_size", "formats a number of bytes as a readable size such as 1.5 MiB"),
    ("transpose", "transposes a matrix given as a list of rows"),
    ("binary_search", "finds the index of a value in a sorted list, or returns -1"),
    ("group_by", "groups the items of a list by the result of a key function"),
    ("roman_numeral", "converts an integer from 1 to 3999 to a Roman numeral"),
    ("wrap_text", "wraps a paragraph at a given width without splitting words"),
    ("parse_csv_line", "splits one CSV line into fields, honouring quoted fields"),
    ("business_days", "counts the weekdays between two dates"),
    ("lru_get", "looks a key up in a small least-recently-used cache and updates its order"),
)
FOLLOW_UPS = (
    "Add type hints and a docstring to `{name}`, as the guidelines ask.",
    "Write two pytest tests for `{name}`.",
    "What should `{name}` do with empty input? Change it if needed.",
    "Rename anything in `{name}` that breaks the naming rules.",
    "Which error should `{name}` raise for invalid input? Show the change.",
    "Write the commit message for adding `{name}`.",
    "Make `{name}` faster if you can, and say why it is faster.",
    "Which tool calls would you make to add `{name}` to the repository?",
)


def project(round_index: int) -> str:
    name = PROJECTS[round_index % len(PROJECTS)]
    return name if round_index < len(PROJECTS) else f"{name}{round_index // len(PROJECTS) + 1}"


def system_prompt(round_index: int, tokens: int) -> str:
    """The shared system prompt of a round: a project's coding guidelines and tool manual, about `tokens`
    tokens long. It starts with the project's name and orders its sections by round, so it shares no
    more than a word with another round's."""
    name = project(round_index)
    fields = {"project": name, "package": name.lower(), "PACKAGE": name.upper()}
    parts = [
        f"{name} agent manual, revision {round_index + 1}.\n\nYou are the coding agent of the {name} project. "
        "Follow these guidelines in every answer."
    ]
    order = random.Random(round_index).sample(SECTIONS, len(SECTIONS))  # then again, if more is needed
    length, wanted = len(parts[0]), tokens * CHARS_PER_TOKEN
    while True:
        title, text = order[(len(parts) - 1) % len(order)]
        section = f"## {len(parts)}. {title}\n{text.format(**fields)}"
        if length + len(section) / 2 > wanted:  # closer to `tokens` without it
            return "\n\n".join(parts)
        parts.append(section)
        length += len(section) + 2


def question(conversation: int, turn: int) -> str:
    """The user's message at `turn` (from 0) of a conversation: a function to write, then follow-ups on it."""
    name, task = TASKS[conversation % len(TASKS)]
    if turn == 0:
        return f"Write a Python function `{name}` that {task}."
    return FOLLOW_UPS[(conversation + turn - 1) % len(FOLLOW_UPS)].format(name=name)


def count_tokens(gguf: Path, texts: Sequence[str]) -> list[int]:
    """The tokens of each text, as the model's own tokenizer counts them (without BOS)."""
    import llama_cpp

    vocab = llama_cpp.Llama(str(gguf), vocab_only=True, verbose=False)
    try:
        return [len(vocab.tokenize(text.encode(), add_bos=False, special=False)) for text in texts]
    finally:
        vocab.close()


@dataclass(frozen=True)
class Settings(harness.Settings):
    clients: int = 4
    turns: int = 6
    system_tokens: int = 1500


@dataclass
class Round:
    conversations: list[list[RequestResult]]  # per client, one per turn; a conversation ends at a failure
    wall_seconds: float  # from the first request sent to the last answer of all clients

    @property
    def requests(self) -> list[RequestResult]:
        return [result for conversation in self.conversations for result in conversation]

    @property
    def ttft_p50_ms(self) -> float:
        return ttft_p50_ms(self.requests)


def ttft_p50_ms(results: Sequence[RequestResult]) -> float:
    ttfts = [result.ttft * 1000 for result in results if result.ok]
    return statistics.median(ttfts) if ttfts else 0.0


async def converse(
    client: httpx.AsyncClient, endpoint: Endpoint, system: str, conversation: int, settings: Settings
) -> list[RequestResult]:
    """One conversation: each turn resends the whole history, the server's answers included."""
    url = endpoint.base_url.rstrip("/") + "/chat/completions"
    messages = [{"role": "system", "content": system}]
    results = []
    for turn in range(settings.turns):
        messages.append({"role": "user", "content": question(conversation, turn)})
        body = loadgen.chat_body(
            endpoint.model, list(messages), settings.max_tokens, extra=endpoint.extra, ignore_eos=False
        )
        result = await loadgen.one_request(client, url, body, TIMEOUT)
        results.append(result)
        if not result.ok:
            print(f"turn {turn + 1} of conversation {conversation} failed: {result.error}", file=sys.stderr)
            break
        messages.append({"role": "assistant", "content": result.text})
    return results


async def play_round_async(endpoint: Endpoint, round_index: int, settings: Settings) -> Round:
    system = system_prompt(round_index, settings.system_tokens)
    limits = httpx.Limits(max_connections=settings.clients, max_keepalive_connections=settings.clients)
    async with httpx.AsyncClient(limits=limits) as client:
        first = round_index * settings.clients
        begin = time.perf_counter()
        conversations = await asyncio.gather(
            *(converse(client, endpoint, system, first + n, settings) for n in range(settings.clients))
        )
        wall = time.perf_counter() - begin
    return Round(list(conversations), wall)


def play_round(endpoint: Endpoint, round_index: int, *, settings: Settings) -> Round:
    """The round's `settings.clients` conversations, at once, against one system."""
    return asyncio.run(play_round_async(endpoint, round_index, settings))


@dataclass
class Row:
    system: str
    rounds: list[Round]

    @cached_property
    def result(self) -> LevelResult:
        """All requests of all rounds, over the summed wall time."""
        requests = [result for played in self.rounds for result in played.requests]
        return loadgen.summarize(len(self.rounds[0].conversations), requests, self.total_seconds)

    @property
    def total_seconds(self) -> float:
        return sum(played.wall_seconds for played in self.rounds)

    def turns(self, first: int, stop: int | None = None) -> list[RequestResult]:
        """The requests of turns `first` to `stop` (excluded, counted from 0) of every conversation."""
        return [r for played in self.rounds for talk in played.conversations for r in talk[first:stop]]


def measure(systems: Sequence[str], settings: Settings, workdir: Path) -> list[Row]:
    with harness.started(systems, settings, workdir, lambda system: settings.clients) as endpoints:
        by_system = harness.interleaved(endpoints, settings, partial(play_round, settings=settings))
    return [Row(system, by_system[system]) for system in systems]


def format_table(rows: Sequence[Row]) -> str:
    reference = next((row for name in REFERENCES for row in rows if row.system == name), None)
    lines = [
        "| system | reqs | fail | tokens | TTFT p50 ms | TTFT p95 ms | TTFT p50 turn 1 ms | TTFT p50 turns 2+ ms "
        "| total s | TTFT p50 ×ref | total ×ref |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        r = row.result
        ls_rounds = reference and reference.rounds
        tokens = sum(result.tokens for result in r.results if result.ok)
        lines.append(
            f"| {row.system} | {r.requests} | {r.failures} | {tokens} | {r.ttft_median_ms:.0f} | {r.ttft_p95_ms:.0f} "
            f"| {ttft_p50_ms(row.turns(0, 1)):.0f} | {ttft_p50_ms(row.turns(1)):.0f} | {row.total_seconds:.1f} "
            f"| {harness.paired_ratio(row.rounds, ls_rounds, lambda played: played.ttft_p50_ms)} "
            f"| {harness.paired_ratio(row.rounds, ls_rounds, lambda played: played.wall_seconds)} |"
        )
    return "\n".join(lines)


def _mean(values: Sequence[int | None]) -> str:
    known = [value for value in values if value is not None]
    return f"{statistics.mean(known):.0f}" if known else "–"


def format_turns(rows: Sequence[Row], turns: int) -> str:
    """Per system and turn, over all rounds: TTFT p50, median decode rate and the mean tokens the servers
    report (prompt, of which cached, and completion)."""
    lines = [
        "| system | turn | reqs | TTFT p50 ms | tok/s/stream | prompt tokens | cached tokens | completion tokens |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        for turn in range(turns):
            results = [r for r in row.turns(turn, turn + 1) if r.ok]
            lines.append(
                f"| {row.system} | {turn + 1} | {len(results)} | {ttft_p50_ms(results):.0f} "
                f"| {statistics.median(r.decode_tps for r in results) if results else 0:.1f} "
                f"| {_mean([r.prompt_tokens for r in results])} | {_mean([r.cached_tokens for r in results])} "
                f"| {_mean([r.tokens for r in results])} |"
            )
    return "\n".join(lines)


def describe(settings: Settings, system_tokens: Sequence[int], load_before: float) -> str:
    low, high = min(system_tokens), max(system_tokens)
    counted = f"{low}" if low == high else f"{low}–{high}"
    return (
        f"{harness.machine(load_before)}\n"
        f"Settings: {settings.gguf.name}, llama.cpp of llama-cpp-python {baselines.llama_cpp_version()} in both; "
        f"{settings.threads_note()}; context {settings.ctx_per_seq} per sequence; {settings.clients} slots; "
        f"{settings.clients} clients at once, each a {settings.turns}-turn conversation resending its whole "
        f"history, all sharing a system prompt of {counted} tokens (the model's tokenizer; another one every "
        f"round); temperature 0; max_tokens {settings.max_tokens} per answer, stopping at end of generation; "
        f"all systems running side by side after one warm-up request each, then {settings.rounds} "
        f"round{'s' if settings.rounds != 1 else ''} in which each system in turn serves the round's "
        "conversations. TTFT: request sent to the first text; total: wall time for all clients to finish all "
        "turns, summed over rounds; ratios (×ref) are medians of per-round ratios to llama-server-defaults "
        "(llama-server as started with only -t; else to llama-server). " + settings.contention_note()
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_arguments(parser, SYSTEMS, rounds=3, max_tokens=48)
    parser.add_argument("--clients", type=int, default=4, help="conversations at once, = slots (default: 4)")
    parser.add_argument("--turns", type=int, default=6, help="user messages per conversation (default: 6)")
    parser.add_argument("--system-tokens", type=int, default=1500, help="shared system prompt (default: 1500)")
    args, systems = harness.parse(parser, argv)
    settings = Settings(
        **harness.settings_fields(args), clients=args.clients, turns=args.turns, system_tokens=args.system_tokens
    )
    prompts = [system_prompt(round_index, settings.system_tokens) for round_index in range(settings.rounds)]
    system_tokens = count_tokens(settings.gguf, prompts)
    print(f"system prompts of {', '.join(map(str, system_tokens))} tokens", file=sys.stderr)
    load_before = os.getloadavg()[0]
    with harness.workdir(args.workdir, "bench-agents-") as scratch:
        rows = measure(systems, settings, scratch)
    print(format_turns(rows, settings.turns), file=sys.stderr)
    print(format_table(rows))
    print()
    print(describe(settings, system_tokens, load_before))
    return 1 if any(row.result.failures for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
