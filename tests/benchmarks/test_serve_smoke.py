"""The serving benchmark harness still runs end to end: the runner alone, concurrency 2, a few tokens.

CI does not run the benchmark itself (nor build llama-server); this keeps benchmarks/serve.py from rotting.
"""

from __future__ import annotations

import subprocess
import sys
from itertools import dropwhile, takewhile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SERVE = Path(__file__).resolve().parents[2] / "benchmarks" / "serve.py"


def table_rows(output: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table in `output`, as {column: cell}."""
    table = takewhile(
        lambda line: line.startswith("|"), dropwhile(lambda line: not line.startswith("|"), output.splitlines())
    )
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[2:]]


def test_harness_measures_the_runner(smollm2_gguf: Path) -> None:
    command = [sys.executable, str(SERVE), "--systems", "runner", "--concurrency", "2", "--max-tokens", "8"]
    command += ["--requests-per-stream", "1", "--rounds", "2", "--no-costs", "--model", str(smollm2_gguf)]
    command += ["--contention", "1", "--contention-nice", "19"]  # keeps the busy-machine option from rotting
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [row] = table_rows(result.stdout)
    assert (row["system"], row["conc"], row["reqs"], row["fail"]) == ("runner", "2", "4", "0")
    assert float(row["tok/s all"]) > 0
    assert "Machine:" in result.stdout
    assert "Contention: 1 busy process(es) at nice 19" in result.stdout
