"""Wall time of CLI commands, side by side with baselines, in one run.

    python benchmarks/cli_latency.py [--runs 15]

Measures `docker model --help` (start-up cost: no runner involved) and `docker model list` against a
warm runner (started here on a free port with an empty temporary store), next to two baselines: a bare
`python -c pass` from the same virtualenv and `docker --version` (the docker CLI's own dispatch).
The plugin is installed into a temporary DOCKER_CONFIG by install.sh, as a user would have it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def timed(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    subprocess.run(command, env=env, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        port = free_port()
        env = {
            **os.environ,
            "DOCKER_CONFIG": str(root / "docker"),
            "DOCKER_MODEL_VENV": sys.prefix,
            "MODEL_RUNNER_HOST": f"http://127.0.0.1:{port}",
            "MODEL_RUNNER_PORT": str(port),
            "MODELS_PATH": str(root / "models"),
            "DOCKER_MODEL_STATE_DIR": str(root / "state"),
        }
        subprocess.run(["sh", str(REPO / "install.sh"), "--dev"], env=env, capture_output=True, check=True)
        subprocess.run(["docker", "model", "start-runner"], env=env, capture_output=True, check=True)
        try:
            rows = [
                ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
                ("docker --version (baseline)", ["docker", "--version"]),
                ("docker model --help", ["docker", "model", "--help"]),
                ("docker model list (warm runner)", ["docker", "model", "list"]),
            ]
            print(f"{'command':34} {'median ms':>10} {'p90 ms':>8}   ({args.runs} runs each)")
            for label, command in rows:
                times = sorted(timed(command, env, args.runs))
                p90 = times[int(0.9 * (len(times) - 1))]
                print(f"{label:34} {statistics.median(times) * 1000:10.1f} {p90 * 1000:8.1f}")
        finally:
            subprocess.run(["docker", "model", "stop-runner"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
