"""The CLI's argument handling, in-process with click's runner: refusals that need no runner at all.
Every case here must fail before any request: each test checks that no runner was started."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from docker_model.cli.client import model_path, qualified
from docker_model.cli.main import cli, main
from docker_model.cli.manage import flags_separator_given


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["list", "--json", "-q"], "give only one"),
        (["list", "--openai", "--json"], "give only one"),
        (["run", "-d", "ai/x", "hello"], "--detach only loads the model"),
        (["configure", "--context-size", "0", "ai/x"], "0 is not in the range x>=1"),
        (["unload"], "name the models to unload, or pass --all"),
        (["rm"], "Missing argument 'MODELS...'"),
    ],
)
def test_usage_errors(nowhere: dict[str, str], args: list[str], problem: str) -> None:
    result = CliRunner().invoke(cli, args, env=nowhere)
    assert result.exit_code == 2
    assert problem in result.output


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["pull", ""], "invalid model reference '': it is empty"),
        (["pull", "Bad Name!"], "invalid model reference 'Bad Name!'"),
        (["inspect", "SmolLM2"], "must be lowercase: use 'smollm2'"),
        (["tag", "ai/x", "bad:tag:x"], "invalid model reference"),
    ],
)
def test_bad_references_are_named_before_any_request(
    nowhere: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    problem: str,
) -> None:
    for name, value in nowhere.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        main(args)  # as the plugin runs: main turns every expected error into one line
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("Error: ") and problem in error and "not running" not in error


def test_models_are_addressed_in_full_or_by_id() -> None:
    assert model_path("purge") == "/models/docker.io/ai/purge:latest"
    assert model_path("localhost:5000/team/x:v1", "/push") == "/models/localhost:5000/team/x:v1/push"
    assert model_path("4a1b") == "/models/4a1b"  # hex digits: an ID prefix, or a name; the runner decides
    digest = "sha256:" + "ab" * 32
    assert qualified(f"smollm2@{digest}") == f"docker.io/ai/smollm2@{digest}"


def test_a_lone_separator_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["docker-model", "model", "configure", "ai/x", "--"])
    assert flags_separator_given()
    monkeypatch.setattr("sys.argv", ["docker-model", "model", "configure", "ai/x"])
    assert not flags_separator_given()


def test_docker_model_alone_is_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["model"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("Usage: docker model")


def test_an_unexpected_failure_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("config")

    monkeypatch.setattr("docker_model.cli.listing.RunnerClient", broken)
    with pytest.raises(SystemExit) as exited:
        main(["df"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == "Error: unexpected KeyError: 'config'\n"
