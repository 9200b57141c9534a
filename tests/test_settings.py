from __future__ import annotations

import os
import subprocess
import sys

import pytest

from docker_model import settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MODEL_RUNNER_HOST",
        "MODEL_RUNNER_PORT",
        "DOCKER_MODEL_MAX_LOADED_MODELS",
        "DOCKER_MODEL_NUM_PARALLEL",
    ):
        monkeypatch.delenv(name, raising=False)
    assert settings.runner_host() == "http://127.0.0.1:12434"
    assert (settings.max_loaded_models(), settings.parallel_requests()) == (2, 4)


def test_port_and_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_RUNNER_HOST", raising=False)
    monkeypatch.setenv("MODEL_RUNNER_PORT", "13000")
    assert settings.runner_host() == "http://127.0.0.1:13000"
    monkeypatch.setenv("MODEL_RUNNER_HOST", "gpu-box:12434/")
    assert settings.runner_host() == "http://gpu-box:12434"


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_a_bad_port_is_one_line_naming_the_variable(value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "docker_model.cli", "status"],
        env={**os.environ, "MODEL_RUNNER_PORT": value, "MODEL_RUNNER_HOST": ""},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: MODEL_RUNNER_PORT must be")
    assert result.stderr.strip().endswith("fix or unset it") and len(result.stderr.strip().splitlines()) == 1
