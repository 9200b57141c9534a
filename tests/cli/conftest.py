"""Fixtures of the CLI tests that chat with the real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.docker_cli import DockerCLI

MODEL = "ai/smollm2"


@pytest.fixture(scope="module")
def chat_cli(model_cli: DockerCLI, smollm2_gguf: Path) -> DockerCLI:
    packaged = model_cli.run("model", "package", "--gguf", str(smollm2_gguf), MODEL)
    assert packaged.returncode == 0, packaged.stderr
    # Greedy sampling keeps a 135M model's answers short and repeatable (at 0.8 it may ramble for minutes).
    configured = model_cli.run("model", "configure", MODEL, "--", "--temp", "0")
    assert configured.returncode == 0, configured.stderr
    return model_cli
