"""Fewer llama.cpp threads while other programs keep cores busy: decided from /proc, once a second."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from docker_model.runner.shared.cpu import default_threads
from docker_model.runner.worker.contention import ThreadAdvisor

from .conftest import Worker
from .test_concurrency import stream_timestamps


class FakeProc:
    """/proc/stat and /proc/self/stat with the busy ticks a test sets; a clock it moves."""

    def __init__(self, root: Path) -> None:
        (root / "self").mkdir(parents=True)
        self.root, self.now, self.user, self.nice, self.own = root, 0.0, 0, 0, 0
        self.write()

    def write(self) -> None:
        (self.root / "stat").write_text(f"cpu  {self.user} {self.nice} 0 5000 0 0 0 0 0 0\ncpu0 0 0 0 0\n")
        fields = ["S"] + ["0"] * 10 + [str(self.own), "0"] + ["0"] * 30
        (self.root / "self" / "stat").write_text(f"42 (python -m worker) {' '.join(fields)}\n")

    def advance(self, seconds: float, others: float, niced: float, own: float) -> None:
        """`seconds` pass; other programs use `others` cores at normal priority and `niced` cores niced."""
        self.now += seconds
        self.user += round((others + own) * seconds * 100)
        self.nice += round(niced * seconds * 100)
        self.own += round(own * seconds * 100)
        self.write()


def test_threads_follow_the_cores_other_programs_keep_busy(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path)
    advisor = ThreadAdvisor(most=4, cpus=4, proc=tmp_path, clock=lambda: proc.now)
    assert advisor.threads() == 4
    proc.advance(1.0, others=1.0, niced=0, own=3.0)
    assert advisor.threads() == 3
    proc.advance(0.5, others=2.0, niced=0, own=2.0)
    assert advisor.threads() == 3  # decided once a second
    proc.advance(0.5, others=2.0, niced=0, own=2.0)
    assert advisor.threads() == 2  # 2 cores busy elsewhere over the last second
    proc.advance(1.0, others=0.0, niced=3.0, own=1.0)
    assert advisor.threads() == 4  # niced programs give way: they do not count
    proc.advance(1.0, others=8.0, niced=0, own=0.2)
    assert advisor.threads() == 1  # never fewer than one


@pytest.mark.integration
@pytest.mark.skipif(default_threads() < 2, reason="one thread is all this machine gives")
def test_a_worker_beside_a_busy_program_uses_fewer_threads(worker_factory: Callable[..., Worker]) -> None:
    worker = worker_factory("--parallel", "1")
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(default_threads() - 1)]
    try:
        streaming = threading.Thread(target=stream_timestamps, args=(worker, 200))
        streaming.start()
        deadline = time.monotonic() + 60
        while "using 1 of" not in worker.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        streaming.join(120)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert f"using 1 of {default_threads()} threads" in worker.log.read_text()
