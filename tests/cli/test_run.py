"""`docker model run`, `ps`, `unload`, `configure`: one-shot answers, piped input, and the chat REPL in a
real pseudo-terminal, all through the real docker CLI and a runner it started."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.runner import RunnerEnv

pytestmark = pytest.mark.integration

MODEL = "ai/smollm2"


@pytest.fixture(scope="module")
def chat_cli(model_cli: DockerCLI, smollm2_gguf: Path) -> DockerCLI:
    packaged = model_cli.run("model", "package", "--gguf", str(smollm2_gguf), MODEL)
    assert packaged.returncode == 0, packaged.stderr
    # Greedy sampling keeps a 135M model's answers short and repeatable (at 0.8 it may ramble for minutes).
    configured = model_cli.run("model", "configure", MODEL, "--", "--temp", "0")
    assert configured.returncode == 0, configured.stderr
    return model_cli


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
    assert header.split() == ["MODEL", "NAME", "BACKEND", "MODE", "UNTIL"]
    assert rows[0].split()[:3] == ["smollm2", "llama.cpp", "completion"]
    assert "from now" in rows[0]

    unloaded = chat_cli.run("model", "unload", MODEL)
    assert unloaded.stdout.strip() == "Unloaded 1 model(s)"
    assert chat_cli.run("model", "ps").stdout.strip().splitlines()[1:] == []


def test_configure_keep_alive_never_and_bad_flags(chat_cli: DockerCLI) -> None:
    configured = chat_cli.run("model", "configure", "--keep-alive", "-1", MODEL)
    assert configured.returncode == 0, configured.stderr
    ps = chat_cli.run("model", "ps").stdout
    assert "Never" in ps
    refused = chat_cli.run("model", "configure", MODEL, "--", "--rpc", "1.2.3.4:50052")
    assert refused.returncode == 1
    assert "runtime flag --rpc is not allowed" in refused.stderr
    chat_cli.run("model", "configure", "--keep-alive", "5m", MODEL)


@pytest.fixture
def repl(chat_cli: DockerCLI) -> Iterator[pexpect.spawn]:
    session = pexpect.spawn(
        "docker",
        ["model", "run", "--debug", "--color", "no", MODEL],
        env=chat_cli.environment(),
        encoding="utf-8",
        timeout=120,
        dimensions=(50, 200),
    )
    session.expect_exact("Type '/bye' to exit")
    yield session
    session.close(force=True)


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
