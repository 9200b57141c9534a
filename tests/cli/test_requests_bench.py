"""`docker model requests` and `docker model bench` through the real docker CLI, against a runner the CLI
started, with SmolLM2: chats (streamed and not) show up in `requests`, `--follow` prints the ones made
after it starts, the store keeps only the newest and cuts huge bodies, and credentials never show;
`bench` measures at the concurrencies it is given (its figures are checked for shape, never for speed)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from docker_model.runner.recent_requests import BODY_BYTES, KEPT_PER_MODEL
from tests.cli.conftest import MODEL
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.runner import RunnerEnv

pytestmark = pytest.mark.integration


def chat(env: RunnerEnv, content: str, headers: dict[str, str] | None = None, **fields: Any) -> requests.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 4, **fields}
    answer = requests.post(f"{env.base_url}/engines/v1/chat/completions", json=body, headers=headers, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer


def recorded(cli: DockerCLI, *args: str) -> list[dict[str, Any]]:
    """The records `docker model requests` prints, of every model, oldest first."""
    result = cli.run("model", "requests", *args)
    assert result.returncode == 0, result.stderr
    return [record for group in json.loads(result.stdout) for record in group["records"]]


def asking(record: dict[str, Any]) -> str:
    return json.loads(record["request"])["messages"][-1]["content"]


@contextmanager
def following(cli: DockerCLI, *args: str) -> Iterator[queue.Queue[str]]:
    """`docker model requests --follow ARGS` running, its output lines in a queue once it is connected."""
    process = subprocess.Popen(
        ["docker", "model", "requests", "--follow", *args],
        env=cli.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # to end the plugin with the docker CLI that runs it
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        banner = process.stderr.readline()
        assert "press Ctrl+C to stop" in banner, banner + process.stderr.read()
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
        yield lines
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()


def next_record(lines: queue.Queue[str]) -> dict[str, Any]:
    groups = json.loads(lines.get(timeout=120))
    assert len(groups) == 1 and groups[0]["count"] == 1
    return groups[0]["records"][0]


def test_chats_streamed_and_not_are_shown(chat_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    streamed = chat_cli.run("model", "run", MODEL, "Name a color.")
    assert streamed.returncode == 0, streamed.stderr
    plain = chat(runner_env, "Name a fruit.").json()
    records = recorded(chat_cli, "--model", MODEL)
    by_question = {asking(record): record for record in records}
    run_record, plain_record = by_question["Name a color."], by_question["Name a fruit."]
    assert run_record["status_code"] == plain_record["status_code"] == 200
    assert run_record["url"] == "/engines/v1/chat/completions" and run_record["method"] == "POST"
    assert run_record["model"] == MODEL and run_record["timestamp"] > 0 and run_record["duration_ms"] > 0
    assembled = json.loads(run_record["response"])  # the stream, shown as the one answer it made
    assert assembled["object"] == "chat.completion"
    assert assembled["choices"][0]["message"]["content"].strip() in streamed.stdout
    assert json.loads(plain_record["response"])["choices"] == plain["choices"]
    assert recorded(chat_cli) == records  # one model: the same with or without --model


def test_follow_prints_requests_made_after_it_started(chat_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    marker = f"follow {uuid.uuid4().hex[:8]}"
    with following(chat_cli) as lines:
        chat(runner_env, marker, stream=True)
        record = next_record(lines)
    assert asking(record) == marker and record["status_code"] == 200
    with following(chat_cli, "--include-existing", "--model", MODEL) as lines:
        existing = [next_record(lines) for _ in recorded(chat_cli, "--model", MODEL)]
    assert marker in [asking(record) for record in existing]


def test_only_the_newest_requests_are_kept(chat_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    questions = [f"Count {number}." for number in range(KEPT_PER_MODEL + 2)]
    for question in questions:
        chat(runner_env, question, max_tokens=1)
    assert [asking(record) for record in recorded(chat_cli, "--model", MODEL)] == questions[2:]


def test_a_huge_body_is_cut_and_marked(chat_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    marker = f"huge {uuid.uuid4().hex[:8]}"
    chat(runner_env, marker, user="x" * (2 * BODY_BYTES))  # `user`: accepted, and without meaning here
    record = recorded(chat_cli, "--model", MODEL)[-1]
    assert record["request_truncated"] and not record["response_truncated"]
    assert record["request"].startswith('{"model"') and marker in record["request"]
    assert record["request"].endswith(" bytes in all]") and len(record["request"]) < BODY_BYTES + 100


def test_credentials_never_show(chat_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    secrets = {"Authorization": "Bearer sk-test-authorization", "x-api-key": "sk-test-x-api-key"}
    with following(chat_cli) as lines:
        chat(runner_env, "Repeat: sk-test-authorization sk-test-x-api-key", headers=secrets)
        followed = lines.get(timeout=120)
    listed = chat_cli.run("model", "requests")
    for output in (followed, listed.stdout):
        assert "sk-test-" not in output and "[redacted]" in output


def test_requests_flags_are_checked(chat_cli: DockerCLI) -> None:
    alone = chat_cli.run("model", "requests", "--include-existing")
    assert alone.returncode != 0 and "--include-existing only applies with --follow" in alone.stderr
    missing = chat_cli.run("model", "requests", "--model", "ai/not-here")
    assert missing.returncode == 1 and "model not found: ai/not-here" in missing.stderr


def test_bench_measures_each_concurrency_as_json(chat_cli: DockerCLI) -> None:
    args = ("--concurrency", "1,2", "--duration", "1s", "--prompt", "Say hi.", "--json")
    result = chat_cli.run("model", "bench", MODEL, *args)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == MODEL and report["prompt"] == "Say hi."
    assert [level["Concurrency"] for level in report["results"]] == [1, 2]
    for level in report["results"]:
        assert level["Requests"] >= 1 and level["Errors"] == 0
        assert len(level["TokenCounts"]) == level["Requests"] and sum(level["TokenCounts"]) == level["TotalTokens"]
        for figure in ("TPS", "MeanRPS", "TotalTime", "MeanTTFT", "TotalTokens"):
            assert level[figure] > 0, figure


def test_bench_prints_a_table(chat_cli: DockerCLI) -> None:
    result = chat_cli.run("model", "bench", MODEL, "--concurrency", "1", "--duration", "1s", "--prompt", "Say hi.")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header.split()[:3] == ["CONCURRENCY", "TOKENS/S", "REL."]
    assert row.split()[0] == "1" and float(row.split()[1]) > 0 and row.split()[2] == "1.00x"
    assert "Concurrency levels: [1]" in result.stderr


def test_bench_refuses_bad_flags_and_unknown_models(chat_cli: DockerCLI) -> None:
    for args, problem in [
        (("--concurrency", "0"), "0 is not between 1 and 256"),
        (("--concurrency", "two"), "'two' is not a whole number"),
        (("--duration", "soon"), "invalid duration 'soon'"),
    ]:
        result = chat_cli.run("model", "bench", MODEL, *args)
        assert result.returncode == 2 and problem in result.stderr, result.stderr
    missing = chat_cli.run("model", "bench", "ai/not-here", "--duration", "1s")
    assert missing.returncode == 1 and "model not found: ai/not-here" in missing.stderr
