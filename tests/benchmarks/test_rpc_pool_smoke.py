"""The pooled-inference benchmark still runs end to end in its quick mode: the local model, two rpc-servers on
loopback and in network namespaces, the delaying proxy at 0 and 2 ms; a few tokens each.

CI does not run the benchmark itself; this keeps benchmarks/rpc_pool.py from rotting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .test_serve_smoke import table_rows

pytestmark = pytest.mark.integration

RPC_POOL = Path(__file__).resolve().parents[2] / "benchmarks" / "rpc_pool.py"


def test_the_quick_mode_measures_every_system(smollm2_gguf: Path) -> None:
    command = [sys.executable, str(RPC_POOL), "--quick", "--model", str(smollm2_gguf)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table_rows(result.stdout)
    systems = ["local", "pooled-loopback", "pooled-netns", "proxied-0", "proxied-2"]
    assert [row["system"] for row in rows] == systems, result.stdout
    assert all(row["fail"] == "0" and float(row["tok/s all"]) > 0 for row in rows), result.stdout
    assert "| 2 | " in result.stdout.split("RTT added")[1], result.stdout  # the latency table, with 2 ms
    assert "Cost per hop" in result.stdout and "Machine:" in result.stdout
