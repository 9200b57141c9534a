"""ruff keeps the code base clean: lint and formatting are part of the test suite, and so of CI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fixtures.docker_cli import REPO_ROOT


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
