"""The constrained-decoding benchmark still runs end to end: the runner alone, one stream, one round, a few tokens.

CI does not run the benchmark itself (nor build llama-server); this keeps benchmarks/constrained.py from rotting.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .test_serve_smoke import table_rows

pytestmark = pytest.mark.integration

CONSTRAINED = Path(__file__).resolve().parents[2] / "benchmarks" / "constrained.py"


def test_harness_measures_the_runner(smollm2_gguf: Path) -> None:
    command = [sys.executable, str(CONSTRAINED), "--systems", "runner", "--levels", "1", "--rounds", "1"]
    command += ["--max-tokens", "48", "--requests-per-stream", "1", "--model", str(smollm2_gguf)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    free, schema = table_rows(result.stdout)
    for row, mode in ((free, "free"), (schema, "schema")):
        assert (row["system"], row["mode"], row["conc"], row["reqs"], row["fail"]) == ("runner", mode, "1", "1", "0")
        assert 0 < int(row["tokens mean"]) <= 48
        assert float(row["tok/s/stream"]) > 0
        assert row["×ls same mode (stream / all)"] == "–"  # no llama-server to compare with
    assert (free["valid"], free["cut"], free["invalid"]) == ("–", "–", "–")  # free text is not checked
    # 48 tokens may end the JSON early: a cut answer is counted as such, never as invalid
    assert (int(schema["valid"]) + int(schema["cut"]), schema["invalid"]) == (1, "0")
    assert free["×own free (stream / all)"] == "1.00 / 1.00"
    assert "Machine:" in result.stdout
    assert "mode schema adding SCHEMA" in result.stdout
