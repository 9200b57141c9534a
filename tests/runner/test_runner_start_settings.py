"""`python -m docker_model.runner` with a setting it cannot use stops before it listens: one line naming the
setting, exit status 2, no traceback and no pid file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.registry import free_port


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HF_ENDPOINT", "ftp://mirror.example"), ("DOCKER_MODEL_HUB_URL", "not a url"), ("DOCKER_MODEL_GPU", "rocm")],
)
def test_a_bad_setting_stops_the_runner_before_it_listens(tmp_path: Path, variable: str, value: str) -> None:
    port = free_port()
    state_dir = tmp_path / "state"
    variables = {"DOCKER_MODEL_STATE_DIR": str(state_dir), "MODELS_PATH": str(tmp_path / "models"), variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "docker_model.runner", "--port", str(port)],
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().splitlines()[-1].count(variable) >= 1
    assert not (state_dir / f"runner-{port}.pid").exists()
