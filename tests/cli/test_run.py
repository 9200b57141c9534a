"""`docker model run`, `ps`, `unload`, `configure`: one-shot answers, piped input, and the chat REPL in a
real pseudo-terminal, all through the real docker CLI and a runner it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import openai
import pexpect
import pytest
import requests

from tests.cli.conftest import MODEL
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.runner import RunnerEnv

pytestmark = pytest.mark.integration


def test_run_answers_a_prompt_and_exits(chat_cli: DockerCLI) -> None:
    result = chat_cli.run("model", "run", MODEL, "My", "name", "is", "Ada.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_run_appends_piped_stdin_after_a_blank_line(chat_cli: DockerCLI) -> None:
    result = chat_cli.run("model", "run", "--debug", MODEL, "Summarize this:", input="The sky is blue.\n")
    assert result.returncode == 0, result.stderr
    request = json.loads(result.stderr[result.stderr.index("{") :])
    assert request["messages"] == [{"role": "user", "content": "Summarize this:\n\nThe sky is blue."}]
    assert result.stdout.strip()


def test_run_pulls_a_missing_model_first(chat_cli: DockerCLI) -> None:
    result = chat_cli.run("model", "run", "127.0.0.1:1/ai/missing", "hi")
    assert result.returncode != 0
    assert "Unable to find model '127.0.0.1:1/ai/missing' locally. Pulling from the server." in result.stderr
    assert "cannot reach registry" in result.stderr


def test_detach_preloads_and_ps_shows_it(chat_cli: DockerCLI) -> None:
    chat_cli.run("model", "unload", "--all")
    result = chat_cli.run("model", "run", "--detach", MODEL)
    assert result.returncode == 0, result.stderr
    ps = chat_cli.run("model", "ps")
    header, *rows = ps.stdout.strip().splitlines()
    assert header.split() == [
        "MODEL", "NAME", "BACKEND", "MODE", "UNTIL", "CONTEXT", "SEQUENCES", "MEMORY", "EST.", "MEMORY", "USED"
    ]  # fmt: skip
    assert rows[0].split()[:3] == ["smollm2", "llama.cpp", "completion"]
    assert "from now" in rows[0]
    context, sequences, estimated, used = rows[0].split()[-4:]
    assert (context, sequences) == ("4096", "4") and estimated.endswith("MB") and used.endswith("MB")


def test_show_tells_how_the_model_fits_and_configure_show_why(chat_cli: DockerCLI) -> None:
    shown = chat_cli.run("model", "show", MODEL)
    assert shown.returncode == 0, shown.stderr
    facts = dict(re.split(r"\s{3,}", line, maxsplit=1) for line in shown.stdout.strip().splitlines())
    assert (facts["Architecture"], facts["Quantization"], facts["Fits"]) == ("llama", "Q4_1", "yes")
    assert facts["Context"] == "trained 8192"
    assert facts["Loads with"] == "4096 tokens × 4 sequences (the default)"
    assert "weights" in facts["Memory"] and "KV cache" in facts["Memory"]
    huge = chat_cli.run("model", "show", "--context-size", "10000000", MODEL)
    assert huge.returncode == 0, huge.stderr
    assert "Fits           no" in huge.stdout and "10000000 tokens × 4 sequences" in huge.stdout

    table = chat_cli.run("model", "configure", "show", MODEL)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.strip().splitlines()
    assert header.split()[:4] == ["MODEL", "NAME", "CONTEXT", "SET"]
    assert row.split()[:4] == ["smollm2", "-", "4096", "4"] and row.endswith("the default")

    unloaded = chat_cli.run("model", "unload", MODEL)
    assert unloaded.stdout.strip() == "Unloaded 1 model(s)"
    assert chat_cli.run("model", "ps").stdout.strip().splitlines()[1:] == []


def test_configure_keep_alive_never_and_bad_flags(chat_cli: DockerCLI) -> None:
    configured = chat_cli.run("model", "configure", "--keep-alive", "-1", MODEL)
    assert configured.returncode == 0, configured.stderr
    ps = chat_cli.run("model", "ps").stdout
    assert "Never" in ps
    refused = chat_cli.run("model", "configure", MODEL, "--", "--mmproj", "projector.gguf")
    assert refused.returncode == 1
    assert "runtime flag --mmproj is not allowed" in refused.stderr
    unreachable = chat_cli.run("model", "configure", MODEL, "--", "--rpc", "127.0.0.1:9")  # the discard port: closed
    assert unreachable.returncode == 1
    assert "RPC server 127.0.0.1:9 is unreachable" in unreachable.stderr, unreachable.stderr
    chat_cli.run("model", "configure", "--keep-alive", "5m", MODEL)


def sent_messages(session: pexpect.spawn) -> list[dict]:
    """The messages of the request that --debug printed for the last turn."""
    session.expect(r"POST \S+/chat/completions\r\n")
    session.expect(r"\r\n\}\r\n")
    return json.loads("{" + session.before.split("{", 1)[1] + "}")["messages"]


def test_repl_keeps_history_reads_fenced_blocks_and_leaves_on_bye(repl: pexpect.spawn) -> None:
    repl.expect_exact("> ")
    repl.sendline("/set parameter max_tokens 24")  # a 135M model may ramble: keep every turn short
    repl.expect_exact("Set parameter 'max_tokens' to '24'")
    repl.expect_exact("> ")
    repl.sendline("My name is Ada.")
    assert sent_messages(repl) == [{"role": "user", "content": "My name is Ada."}]
    repl.expect_exact("> ")

    repl.sendline('"""First line')
    repl.sendline('second line"""')
    messages = sent_messages(repl)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "My name is Ada."
    assert messages[1]["content"]  # the first answer is part of the history
    assert messages[2] == {"role": "user", "content": "First line\nsecond line"}
    repl.expect_exact("> ")

    repl.sendline("/set system Answer in French.")
    repl.expect_exact("Set the system message.")
    repl.sendline("/clear")
    repl.expect_exact("Cleared the conversation.")
    repl.sendline("Bonjour")
    assert sent_messages(repl) == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Bonjour"},
    ]
    repl.expect_exact("> ")
    repl.sendline("/bye")
    repl.expect(pexpect.EOF)
    repl.close()
    assert repl.exitstatus == 0


def test_repl_ctrl_c_hint_help_and_ctrl_d(repl: pexpect.spawn) -> None:
    repl.expect_exact("> ")
    repl.sendintr()
    repl.expect_exact("Use Ctrl + d or /bye to exit.")
    repl.sendline("/?")
    repl.expect_exact("/set system <text>")
    repl.expect_exact("> ")
    repl.sendeof()
    repl.expect(pexpect.EOF)
    repl.close()
    assert repl.exitstatus == 0


def test_repl_ctrl_c_cancels_a_reply(repl: pexpect.spawn) -> None:
    repl.expect_exact("> ")
    repl.sendline("Write a very long story about a dragon.")
    sent_messages(repl)
    repl.expect(re.compile(r"\w+"))  # the reply has started
    repl.sendintr()
    repl.expect_exact("(reply cancelled)")
    repl.expect_exact("> ")
    repl.sendline("/exit")
    repl.expect(pexpect.EOF)


def test_logs_show_the_runner_log(chat_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    result = chat_cli.run("model", "logs")
    assert result.returncode == 0, result.stderr
    assert f"listening on http://127.0.0.1:{runner_env.port}" in result.stdout


def test_configure_with_a_lone_separator_clears_the_runtime_flags(chat_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    def flags() -> list[str]:
        entries = requests.get(f"{runner_env.base_url}/engines/_configure", timeout=10).json()
        model_id = json.loads(chat_cli.run("model", "inspect", MODEL).stdout)["id"]
        return next(entry["Config"].get("runtime-flags", []) for entry in entries if entry["ModelID"] == model_id)

    assert chat_cli.run("model", "configure", MODEL, "--", "--top-k", "5", "--temp", "0").returncode == 0
    assert flags() == ["--top-k", "5", "--temp", "0"]
    assert chat_cli.run("model", "configure", "--keep-alive", "5m", MODEL).returncode == 0
    assert flags() == ["--top-k", "5", "--temp", "0"]  # no `--`: the flags stay
    assert chat_cli.run("model", "configure", MODEL, "--").returncode == 0
    assert flags() == []
    assert chat_cli.run("model", "configure", MODEL, "--", "--temp", "0").returncode == 0


def long_stream(runner_env: RunnerEnv, started: threading.Event, finish: list) -> None:
    client = openai.OpenAI(base_url=f"{runner_env.base_url}/engines/v1", api_key="-", max_retries=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count."}],
        max_tokens=120,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    try:
        for chunk in stream:
            started.set()
            if chunk.choices and chunk.choices[0].finish_reason:
                finish.append(chunk.choices[0].finish_reason)
    except Exception as error:  # the test reads what happened
        finish.append(error)


def test_rm_refuses_a_model_that_is_answering_unless_forced(
    chat_cli: DockerCLI, runner_env: RunnerEnv, smollm2_gguf: Path
) -> None:
    started, finish = threading.Event(), []
    streamer = threading.Thread(target=long_stream, args=(runner_env, started, finish))
    streamer.start()
    assert started.wait(60)
    refused = chat_cli.run("model", "rm", MODEL)
    assert refused.returncode == 1
    assert "is answering 1 request(s)" in refused.stderr and "--force" in refused.stderr
    streamer.join(120)
    assert finish == ["length"]  # the answer went on, whole
    assert json.loads(chat_cli.run("model", "list", "--json").stdout)  # the model is still there

    started, finish = threading.Event(), []
    streamer = threading.Thread(target=long_stream, args=(runner_env, started, finish))
    streamer.start()
    assert started.wait(60)
    forced = chat_cli.run("model", "rm", "--force", MODEL)
    assert forced.returncode == 0, forced.stderr
    streamer.join(120)
    assert finish and finish[0] != "length"  # forced: that answer stopped
    assert chat_cli.run("model", "package", "--gguf", str(smollm2_gguf), MODEL).returncode == 0
    assert chat_cli.run("model", "configure", MODEL, "--", "--temp", "0").returncode == 0


def test_an_answer_cut_off_by_a_dying_worker_is_an_error(chat_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    chat_cli.run("model", "run", "--detach", MODEL)
    answer = subprocess.Popen(
        ["docker", "model", "run", MODEL, "Write a very long story about a dragon, with many chapters."],
        env=chat_cli.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert answer.stdout is not None
    answer.stdout.read(20)  # the answer is streaming
    running = requests.get(f"{runner_env.base_url}/engines/ps", timeout=10).json()
    os.kill(next(entry["pid"] for entry in running if entry["model_name"].endswith("smollm2")), signal.SIGKILL)
    _, err = answer.communicate(timeout=120)
    assert answer.returncode == 1
    (line,) = err.decode().strip().splitlines()
    # The runner reports the worker's death itself (how depends on whether it has reaped it yet); the CLI
    # would report a stream that merely stopped as incomplete.
    assert line.startswith("Error: ")
    assert any(cause in line for cause in ("incomplete", "was killed (SIGKILL)", "worker process was lost"))
