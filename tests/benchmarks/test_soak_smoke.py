"""The soak script still runs end to end, for seconds instead of minutes (CI does not run the soak itself:
it takes ten minutes; benchmarks/README.md has its figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def test_the_soak_runs_and_reports(smollm2_gguf: Path) -> None:
    command = [sys.executable, str(SOAK), "--minutes", "0.15", "--warm-up-minutes", "0.05"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "requests served whole:" in result.stdout, result.stdout + result.stderr
    assert "errors: 0 (goal 0)" in result.stdout, result.stdout
