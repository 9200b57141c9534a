"""Where the tokens of `docker model context` are kept and where they and HF_TOKEN may go, in-process (no
runner): tokens in their own 0600 file, which Docker Model Runner's CLI does not rewrite, for the host they
were given with; a warning for a token that would travel in clear; no echo of a token typed at a terminal."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pexpect
import pytest
from click.testing import CliRunner, Result

from docker_model.cli import contexts
from docker_model.cli.client import RunnerClient
from docker_model.cli.main import cli
from docker_model.cli.transfer import create_body, hf_token_for

REMOTE = "http://192.168.1.100:12434"
CLEAR_WARNING = (
    "Warning: context 'box' sends its token in clear to http://192.168.1.100:12434 (plain HTTP to another "
    "machine): serve the runner over HTTPS and use --tls, or reach it through an SSH tunnel on localhost\n"
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DOCKER_CONFIG of its own; the contexts file and the tokens file live in its `model` folder."""
    folder = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.delenv("MODEL_RUNNER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_MODEL_STATE_DIR", str(tmp_path / "state"))
    return folder / "model"


def context(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["context", *args], input=input)


def read(path: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads(path.read_text())
    return document


def test_a_token_is_kept_apart_from_docker_model_runners_file(config: Path) -> None:
    created = context("create", "box", "--host", REMOTE, "--token", "-", input="s3cret\n")
    assert (created.exit_code, created.stdout) == (0, 'Context "box" created.\n'), created.output
    assert created.stderr == CLEAR_WARNING
    assert "token" not in read(config / "contexts.json")["contexts"]["box"]  # type: ignore[index]
    tokens = config / "context-tokens.json"
    assert read(tokens)["tokens"] == {"box": {"host": REMOTE, "token": "s3cret"}}
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert context("use", "box").exit_code == 0

    # Docker Model Runner's CLI writes the contexts file with the fields it knows: the token stays.
    written = read(config / "contexts.json")
    (config / "contexts.json").write_text(json.dumps(written))
    endpoint = contexts.active_endpoint()
    assert endpoint is not None and (endpoint.url, endpoint.token) == (REMOTE, "s3cret")
    assert json.loads(context("inspect", "box").stdout)[0]["token"] == "(hidden)"

    # Given for one host, a token never goes to another one the context was pointed at meanwhile.
    written["contexts"]["box"]["host"] = "http://192.168.1.200:12434"  # type: ignore[index]
    (config / "contexts.json").write_text(json.dumps(written))
    moved = CliRunner().invoke(cli, ["context", "inspect", "box"])
    assert "token" not in json.loads(moved.stdout)[0]
    assert moved.stderr.startswith(f"Warning: the token of context 'box' was given for {REMOTE}, not http://")

    assert context("use", "default").exit_code == 0
    assert context("rm", "box").exit_code == 0
    assert not tokens.exists()  # removed with its context


def test_a_token_an_earlier_version_kept_in_the_contexts_file_is_used_then_moved(config: Path) -> None:
    config.mkdir(parents=True)
    earlier = {"version": 1, "current": "old", "contexts": {"old": {"host": REMOTE, "token": "t0", "tls": {}}}}
    (config / "contexts.json").write_text(json.dumps(earlier))
    endpoint = contexts.active_endpoint()
    assert endpoint is not None and endpoint.token == "t0"
    assert context("create", "other", "--host", "http://127.0.0.1:1").exit_code == 0  # any write moves it
    assert read(config / "contexts.json")["contexts"]["old"] == {"host": REMOTE, "tls": {}}  # type: ignore[index]
    assert read(config / "context-tokens.json")["tokens"] == {"old": {"host": REMOTE, "token": "t0"}}
    endpoint = contexts.active_endpoint()
    assert endpoint is not None and endpoint.token == "t0"


@pytest.mark.parametrize(
    "args",
    [
        ["--host", "http://127.0.0.1:12434", "--token", "t"],  # this machine: a tunnel, say
        ["--host", "https://192.168.1.100:12434", "--token", "t"],
        ["--host", "http://192.168.1.100:12434", "--tls", "--token", "t"],
        ["--host", REMOTE],  # no token to carry
    ],
)
def test_no_warning_where_no_token_travels_in_clear(config: Path, args: list[str]) -> None:
    created = context("create", "box", *args)
    assert (created.exit_code, created.stderr) == (0, ""), created.output


def test_a_broken_tokens_file_is_named(config: Path) -> None:
    config.mkdir(parents=True)
    (config / "contexts.json").write_text(json.dumps({"current": "box", "contexts": {"box": {"host": REMOTE}}}))
    (config / "context-tokens.json").write_text('{"tokens": {"box": {"token": "s3cret"}}}')
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: cannot use the context tokens file {config / 'context-tokens.json'}: "
        "a token in it lacks its `host` or `token`; fix or remove it\n"
    )


def test_a_token_typed_at_a_terminal_is_not_echoed(config: Path, tmp_path: Path) -> None:
    session = pexpect.spawn(
        sys.executable,
        ["-m", "docker_model.cli", "context", "create", "box", "--host", REMOTE, "--token", "-"],
        encoding="utf-8",
        timeout=30,
    )
    session.expect("Token: ")
    session.sendline("typed-s3cret")
    session.expect(pexpect.EOF)
    session.close()
    assert session.exitstatus == 0, session.before
    assert "typed-s3cret" not in session.before
    assert 'Context "box" created.' in session.before
    assert read(config / "context-tokens.json")["tokens"] == {"box": {"host": REMOTE, "token": "typed-s3cret"}}


@pytest.mark.parametrize(
    ("runner", "sent"),
    [("http://127.0.0.1:12434", True), ("https://192.168.1.100:12434", True), (REMOTE, False)],
)
def test_hf_token_goes_only_where_it_cannot_be_read_on_the_way(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], runner: str, sent: bool
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    client = RunnerClient(runner)
    token = hf_token_for(client, ["ai/smollm2", "hf.co/org/repo:Q4_K_M"])
    assert token == ("hf_secret" if sent else None)
    body = create_body("hf.co/org/repo:Q4_K_M", token)
    assert body == ({"from": "hf.co/org/repo:Q4_K_M", "bearer-token": "hf_secret"} if sent else {"from": body["from"]})
    warning = capsys.readouterr().err
    assert warning == (
        ""
        if sent
        else f"Warning: HF_TOKEN is not sent to the runner at {REMOTE}: plain HTTP to another machine would carry "
        "it in clear; use a context with --tls, or set HF_TOKEN in the runner's own environment\n"
    )
    assert hf_token_for(client, ["ai/smollm2"]) is None  # registries get their `docker login`, not HF's
    assert create_body("ai/smollm2", "hf_secret") == {"from": "ai/smollm2"}
