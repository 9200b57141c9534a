"""`run --openaiurl`, `@file` in prompts, `/set num_ctx` in the chat, `logs --no-engines` and `stop`, through
the real docker CLI, the real runner and SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest
import requests

from tests.cli.conftest import MODEL
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env

pytestmark = pytest.mark.integration


def sent_request(stderr: str) -> dict:
    """The request body `run --debug` printed."""
    return json.loads(stderr[stderr.index("{") : stderr.rindex("}") + 1])


def test_a_prompt_word_at_path_includes_the_file(chat_cli: DockerCLI, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("The secret word is banana.")
    spaced = tmp_path / "my notes.txt"
    spaced.write_text("Second file.")
    result = chat_cli.run(
        "model",
        "run",
        "--debug",
        MODEL,
        "Read",
        f"@{notes}",
        f'@"{spaced}"',
        "and",
        "mail",
        "ada@example.com",
        "@@team",
    )
    assert result.returncode == 0, result.stderr
    content = sent_request(result.stderr)["messages"][0]["content"]
    assert content == "Read The secret word is banana. Second file. and mail ada@example.com @team"

    piped = chat_cli.run("model", "run", "--debug", MODEL, "Explain:", input="@dataclass\nclass A: ...\n")
    assert piped.returncode == 0, piped.stderr
    assert sent_request(piped.stderr)["messages"][0]["content"] == "Explain:\n\n@dataclass\nclass A: ..."


def test_a_missing_file_is_one_line_error(chat_cli: DockerCLI, tmp_path: Path) -> None:
    result = chat_cli.run("model", "run", "--debug", MODEL, "Summarize", f"@{tmp_path}/absent.txt")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot include @{tmp_path}/absent.txt: No such file or directory "
        f"(write @@{tmp_path}/absent.txt to send the word as it is)"
    ]


def test_chat_includes_files_and_sets_num_ctx(
    repl: pexpect.spawn, chat_cli: DockerCLI, runner_env: RunnerEnv, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Paris is in France.")
    repl.expect_exact("> ")
    repl.sendline("/set parameter max_tokens 8")
    repl.expect_exact("> ")
    repl.sendline(f"Where is Paris? @{notes}")
    repl.expect(r"POST \S+/chat/completions\r\n")
    repl.expect(r"\r\n\}\r\n")
    sent = json.loads("{" + repl.before.split("{", 1)[1] + "}")["messages"]
    assert sent == [{"role": "user", "content": "Where is Paris? Paris is in France."}]
    repl.expect_exact("> ")
    repl.sendline(f"@{tmp_path}/absent.txt")
    repl.expect_exact(f"Error: cannot include @{tmp_path}/absent.txt")
    repl.expect_exact("> ")

    repl.sendline("/set num_ctx lots")
    repl.expect_exact("'lots' is not a valid value for num_ctx")
    repl.expect_exact("> ")
    repl.sendline("/set num_ctx 2048")
    repl.expect_exact("Set num_ctx to 2048")
    ps = chat_cli.run("model", "ps")
    assert ps.returncode == 0, ps.stderr
    (row,) = ps.stdout.strip().splitlines()[1:]
    assert row.split()[-4] == "2048"  # the CONTEXT column: the model was reloaded with it
    repl.expect_exact("> ")
    repl.sendline("/set parameter num_ctx 100000")  # Docker Model Runner's older form; past what it was trained for
    repl.expect_exact("more than the 8192")
    repl.expect_exact("> ")
    repl.sendline("/bye")
    repl.expect(pexpect.EOF)
    reset = requests.post(
        f"{runner_env.base_url}/engines/_configure", json={"model": MODEL, "context-size": None}, timeout=300
    )
    assert reset.status_code == 202, reset.text


def test_openaiurl_chats_with_any_openai_server_without_a_local_runner(
    chat_cli: DockerCLI, runner_env: RunnerEnv
) -> None:
    chat_cli.run("model", "status")  # the runner of this module is up: it plays the remote OpenAI server
    nobody = free_port()
    away = DockerCLI(chat_cli.docker_config, {**chat_cli.env, "MODEL_RUNNER_HOST": f"http://127.0.0.1:{nobody}"})
    url = f"{runner_env.base_url}/engines/v1"
    result = away.run("model", "run", "--debug", "--openaiurl", url, MODEL, "Say", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert f"POST {url}/chat/completions" in result.stderr
    assert sent_request(result.stderr)["model"] == MODEL  # the name as given
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{nobody}/", timeout=5)  # no runner was started for it

    detached = away.run("model", "run", "--detach", "--openaiurl", url, MODEL)
    assert detached.returncode == 2 and "cannot be used with --openaiurl" in detached.stderr
    not_http = away.run("model", "run", "--openaiurl", "ftp://example", MODEL, "hi")
    assert not_http.returncode == 2 and "'ftp://example' is not an http(s) URL" in not_http.stderr


def test_openaiurl_sends_openai_api_key_and_never_the_runners_token(
    installed_plugin: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A token-requiring runner plays the --openaiurl server: without OPENAI_API_KEY it refuses, though the
    CLI has the runner's token at hand twice (MODEL_RUNNER_TOKEN, and the token file of the shared state dir)."""
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_REQUIRE_TOKEN="all")
    with direct_runner(env):
        url = f"{env.base_url}/engines/v1"
        token = (env.state_dir / "token").read_text().strip()
        at_hand = {"MODEL_RUNNER_TOKEN": token, "DOCKER_MODEL_STATE_DIR": str(env.state_dir)}
        cli = DockerCLI(installed_plugin, {"MODEL_RUNNER_HOST": f"http://127.0.0.1:{free_port()}", **at_hand})
        no_key = cli.run("model", "run", "--openaiurl", url, "ai/absent", "hi")
        assert no_key.returncode == 1 and f"{url}/chat/completions answered HTTP 401" in no_key.stderr
        not_listed = cli.run("model", "list", "--openaiurl", url)
        assert not_listed.returncode == 1 and f"{url}/models answered HTTP 401" in not_listed.stderr
        keyed = DockerCLI(installed_plugin, {**cli.env, "OPENAI_API_KEY": token})
        with_key = keyed.run("model", "run", "--openaiurl", url, "ai/absent", "hi")
        assert with_key.returncode == 1
        assert "model not found: ai/absent" in with_key.stderr  # past the token check: the key was sent
        listed = keyed.run("model", "list", "--openaiurl", url)
        assert listed.returncode == 0, listed.stderr  # `list` sends the key too


def test_logs_shows_engines_unless_no_engines(chat_cli: DockerCLI) -> None:
    assert chat_cli.run("model", "run", MODEL, "hi").returncode == 0  # a worker has written its engine log
    both = chat_cli.run("model", "logs")
    assert both.returncode == 0, both.stderr
    assert "listening on" in both.stdout and "==> " in both.stdout and "serving " in both.stdout
    runner_only = chat_cli.run("model", "logs", "--no-engines")
    assert runner_only.returncode == 0, runner_only.stderr
    assert "listening on" in runner_only.stdout
    assert "==> " not in runner_only.stdout and "serving " not in runner_only.stdout


def test_stop_is_unload_with_dmrs_flags(chat_cli: DockerCLI) -> None:
    assert chat_cli.run("model", "run", "--detach", MODEL).returncode == 0
    stopped = chat_cli.run("model", "stop", "--backend", "llama.cpp", MODEL)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == "Unloaded 1 model(s)"
    assert chat_cli.run("model", "ps").stdout.strip().count("\n") == 0  # the header alone
    both = chat_cli.run("model", "stop", "--all", MODEL)
    assert both.returncode == 2 and "--all unloads every model" in both.stderr
    other = chat_cli.run("model", "unload", "--all", "--backend", "vllm")
    assert other.returncode == 1 and "unknown backend 'vllm'" in other.stderr
