"""How many llama.cpp threads pay off right now: fewer while other programs keep cores busy.

llama.cpp's threads meet at a barrier after every operation of the graph, so a thread that shares its
core with another busy program holds all the others up: on two cores beside one busy process, one
thread made twice the tokens of two (benchmarks/README.md). Once a second a thread of the worker adds up
the CPU time other processes used, from /proc, counting only those at the worker's priority or above (a
niced program gives way to the worker), and the engine uses the cores left: at least one, at most the
default. Only seconds in which the engine worked count: while it idles, other programs may use every
core without competing with it, so it starts every busy spell with the default. It takes two seconds in
a row of other programs' work to drop a thread (a program starting up, a client parsing a burst, must
not cost the engine a second at half speed), and one second without to take it back.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

SAMPLE_SECONDS = 1.0
# Another program counts for a core once it keeps half of one busy: beside two llama.cpp threads on two
# cores, one busy program gets about two thirds of a core.
CORE_SHARE = 0.5


def _competing_ticks(proc: Path, own_pid: int, own_nice: int) -> dict[int, int]:
    """CPU ticks (user + system) of each other process at `own_nice` or a higher priority."""
    ticks = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit() or int(entry.name) == own_pid:
            continue
        try:
            # After the command name (which may hold spaces): utime, stime and nice are fields 14, 15, 19.
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[16]) <= own_nice:
                ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue  # it exited meanwhile
    return ticks


class ThreadAdvisor:
    """`threads()` says how many threads to use now; `start()` has it re-decided once a second."""

    def __init__(
        self,
        most: int,
        cpus: int,
        proc: Path = Path("/proc"),
        own_pid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.most, self.cpus, self._proc, self._clock = most, cpus, proc, clock
        self._own_pid = own_pid or os.getpid()
        self._own_nice = os.getpriority(os.PRIO_PROCESS, 0)
        self._tick = os.sysconf("SC_CLK_TCK")
        self._current = most
        self._advised = most  # what the last second alone would have chosen
        self._last = self._sample()
        self.working = False  # set by the engine: whether it decodes at the moment

    def _sample(self) -> tuple[float, dict[int, int]] | None:
        if not self._proc.is_dir():
            return None  # not Linux: keep the default
        return self._clock(), _competing_ticks(self._proc, self._own_pid, self._own_nice)

    def threads(self) -> int:
        return self._current

    def update(self) -> None:
        """Decide again from the CPU time other processes used since the last decision."""
        now = self._sample()
        if now is None or self._last is None:
            return
        if not self.working:
            self._last, self._current, self._advised = now, self.most, self.most
            return
        elapsed = (now[0] - self._last[0]) * self._tick
        previous = self._last[1]
        used = sum(ticks - previous[pid] for pid, ticks in now[1].items() if pid in previous)
        self._last = now
        if elapsed <= 0:
            return
        others = used / elapsed
        advised = max(1, min(self.most, self.cpus - int(others + 1 - CORE_SHARE)))
        threads = advised if advised >= self._current else max(advised, self._advised, 1)
        self._advised = advised
        if threads != self._current:
            busy = f"other programs keep {others:.1f} cores busy"
            print(f"using {threads} of {self.most} threads: {busy}", file=sys.stderr, flush=True)
            self._current = threads

    def start(self) -> None:
        def watch() -> None:
            while True:
                time.sleep(SAMPLE_SECONDS)
                self.update()

        if self._last is not None:
            threading.Thread(target=watch, name="thread-advisor", daemon=True).start()
