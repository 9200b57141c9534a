"""The agent-workload benchmark still runs end to end: the runner alone, 2 clients, 2 turns, a few tokens.

CI does not run the benchmark itself (nor build llama-server); this keeps benchmarks/agents.py from rotting.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_serve_smoke import table_rows

pytestmark = pytest.mark.integration

AGENTS = Path(__file__).resolve().parents[2] / "benchmarks" / "agents.py"


def test_harness_measures_the_runner(smollm2_gguf: Path) -> None:
    command = [sys.executable, str(AGENTS), "--systems", "runner", "--clients", "2", "--turns", "2"]
    command += ["--system-tokens", "300", "--max-tokens", "8", "--rounds", "2", "--model", str(smollm2_gguf)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [row] = table_rows(result.stdout)
    assert (row["system"], row["reqs"], row["fail"]) == ("runner", "8", "0")  # 2 rounds × 2 clients × 2 turns
    assert 0 < int(row["tokens"]) <= 8 * 8
    assert float(row["TTFT p50 turn 1 ms"]) > 0
    assert float(row["TTFT p50 turns 2+ ms"]) > 0
    assert float(row["total s"]) > 0
    assert (row["TTFT p50 ×ref"], row["total ×ref"]) == ("–", "–")  # no llama-server to compare with
    tokens = re.search(r"sharing a system prompt of (\d+)(?:–(\d+))? tokens", result.stdout)
    assert tokens, result.stdout
    assert all(200 <= int(count) <= 400 for count in tokens.groups() if count)
    assert "Machine:" in result.stdout
    assert "2 clients at once, each a 2-turn conversation" in result.stdout
