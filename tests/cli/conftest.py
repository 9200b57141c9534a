"""Fixtures of the CLI tests that chat with the real model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv

MODEL = "ai/smollm2"


@pytest.fixture(scope="module")
def chat_cli(model_cli: DockerCLI, smollm2_gguf: Path) -> DockerCLI:
    packaged = model_cli.run("model", "package", "--gguf", str(smollm2_gguf), MODEL)
    assert packaged.returncode == 0, packaged.stderr
    # Greedy sampling keeps a 135M model's answers short and repeatable (at 0.8 it may ramble for minutes).
    configured = model_cli.run("model", "configure", MODEL, "--", "--temp", "0")
    assert configured.returncode == 0, configured.stderr
    return model_cli


@pytest.fixture
def repl(chat_cli: DockerCLI) -> Iterator[pexpect.spawn]:
    """The chat with MODEL in a terminal, in debug mode (it prints what it sends), ready for a message."""
    session = pexpect.spawn(
        "docker",
        ["model", "run", "--debug", "--color", "no", MODEL],
        env=chat_cli.environment(),
        encoding="utf-8",
        timeout=180,
        dimensions=(50, 250),
    )
    session.expect_exact("Type '/bye' to exit")
    yield session
    session.close(force=True)


@pytest.fixture
def nowhere(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment whose runner would have its own port and state, to show none was started."""
    yield RunnerEnv(free_port(), tmp_path / "models", tmp_path / "state").variables()
    assert not (tmp_path / "state").exists(), "a runner was started"
