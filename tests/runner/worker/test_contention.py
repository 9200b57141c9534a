"""Fewer llama.cpp threads while other programs keep cores busy: decided from /proc, once a second."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from docker_model.runner.shared.cpu import default_threads
from docker_model.runner.worker.contention import ThreadAdvisor

from .conftest import Worker
from .test_concurrency import open_stream


class FakeProc:
    """A /proc with the processes a test sets: CPU ticks and niceness each; a clock it moves."""

    def __init__(self, root: Path) -> None:
        self.root, self.now = root, 0.0
        self.ticks: dict[int, int] = {}

    def process(self, pid: int, ticks: int, nice: int = 0) -> None:
        self.ticks[pid] = ticks
        (self.root / str(pid)).mkdir(exist_ok=True)
        fields = ["S"] + ["0"] * 10 + [str(ticks), "0", "0", "0", "20", str(nice)] + ["0"] * 20
        (self.root / str(pid) / "stat").write_text(f"{pid} (a program) {' '.join(fields)}\n")

    def advance(self, seconds: float, cores: dict[int, float]) -> None:
        """`seconds` pass, in which each process of `cores` keeps that many cores busy."""
        self.now += seconds
        for pid, used in cores.items():
            nice = int((self.root / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[16])
            self.process(pid, self.ticks[pid] + round(used * seconds * os.sysconf("SC_CLK_TCK")), nice)


def test_threads_follow_the_cores_other_programs_keep_busy(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path)
    me, compiler, batch_job, niced = 10, 20, 30, 40
    for pid in (me, compiler, batch_job):
        proc.process(pid, 0)
    proc.process(niced, 0, nice=19)
    advisor = ThreadAdvisor(most=4, cpus=4, proc=tmp_path, own_pid=me, clock=lambda: proc.now)
    advisor.working = True
    assert advisor.threads() == 4

    def second(**cores: float) -> int:
        proc.advance(1.0, {pid: cores.get(name, 0.0) for name, pid in pids.items()})
        advisor.update()
        return advisor.threads()

    pids = {"me": me, "compiler": compiler, "batch_job": batch_job, "niced": niced}
    assert second(me=3.0, compiler=1.0) == 4  # one second may be a program starting up
    assert second(me=3.0, compiler=1.0) == 3  # two in a row: a thread fewer
    assert second(me=2.0, compiler=1.0, batch_job=0.9) == 3
    assert second(me=2.0, compiler=1.0, batch_job=0.9) == 2
    assert second(me=4.0, niced=3.0) == 4  # niced programs give way, and a thread comes back at once
    assert second(me=3.6, compiler=0.4) == 4  # less than half a core is not worth a thread
    assert second(me=0.2, compiler=8.0) == 4
    assert second(me=0.2, compiler=8.0) == 1  # never fewer than one
    advisor.working = False
    assert second(compiler=4.0) == 4  # others may take every core while the engine idles: it restarts at the most
    advisor.working = True
    assert second(me=3.0, compiler=1.0) == 4  # judged on the seconds it worked
    assert second(me=3.0, compiler=1.0) == 3


@pytest.mark.integration
@pytest.mark.skipif(default_threads() < 2, reason="one thread is all this machine gives")
def test_a_worker_beside_a_busy_program_uses_fewer_threads(worker_factory: Callable[..., Worker]) -> None:
    worker = worker_factory("--parallel", "1")
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(default_threads() - 1)]
    client, response = open_stream(worker, 4000)
    try:
        deadline = time.monotonic() + 60
        while "using 1 of" not in worker.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        response.close()
        client.close()
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert f"using 1 of {default_threads()} threads" in worker.log.read_text()
