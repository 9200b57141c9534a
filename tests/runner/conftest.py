"""Fixtures of the runner's API tests: SmolLM2 in the store of a real runner."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from docker_model import distribution
from tests.fixtures.runner import RunnerEnv

MODEL = "ai/smollm2"


def load_model(base_url: str, gguf: Path, tag: str, context_size: int | None = None, verify: str | bool = True) -> None:
    """Package a GGUF and load it into the runner's store, as `docker model package` does (`verify`: the
    certificate of a runner over TLS)."""
    archive = io.BytesIO()
    distribution.write_model_tar(distribution.package(gguf, context_size=context_size), archive)
    response = requests.post(
        f"{base_url}/models/load", params={"tag": tag}, data=archive.getvalue(), timeout=120, verify=verify
    )
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def served(runner: RunnerEnv, smollm2_gguf: Path) -> Iterator[RunnerEnv]:
    """The module's runner with SmolLM2 stored as MODEL."""
    load_model(runner.base_url, smollm2_gguf, MODEL)
    yield runner
