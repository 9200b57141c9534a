"""How many llama.cpp threads pay off right now: fewer while other programs keep cores busy.

llama.cpp's threads meet at a barrier after every operation of the graph, so a thread that shares its
core with another busy program holds all the others up: on two cores beside one busy process, one
thread made twice the tokens of two (benchmarks/README.md). Every second the engine reads from /proc
how much CPU other programs used, at normal priority or above (a niced program gives way to the
worker, so it does not count), and uses the cores left, at least one, at most the default.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

SAMPLE_SECONDS = 1.0
_BUSY_FIELDS = (0, 2, 5, 6, 7)  # user, system, irq, softirq, steal: not nice, idle or iowait


def _machine_busy_ticks(stat: Path) -> int:
    fields = stat.read_text().split("\n", 1)[0].split()[1:]
    return sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields))


def _own_ticks(self_stat: Path) -> int:
    # After the command name (which may hold spaces): utime and stime are fields 14 and 15.
    fields = self_stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class ThreadAdvisor:
    """Samples the machine; `threads()` says how many threads to use now."""

    def __init__(self, most: int, cpus: int, proc: Path = Path("/proc"), clock: Callable[[], float] = time.monotonic):
        self.most, self.cpus = most, cpus
        self._stat, self._self_stat = proc / "stat", proc / "self" / "stat"
        self._clock = clock
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last = self._sample()
        self._current = most

    def _sample(self) -> tuple[float, int, int] | None:
        try:
            return self._clock(), _machine_busy_ticks(self._stat), _own_ticks(self._self_stat)
        except (OSError, ValueError, IndexError):
            return None  # not Linux: keep the default

    def threads(self) -> int:
        """The thread count for the next steps; re-decided once a second."""
        if self._last is None or self._clock() - self._last[0] < SAMPLE_SECONDS:
            return self._current
        now = self._sample()
        if now is None:
            return self._current
        elapsed = (now[0] - self._last[0]) * self._tick
        others = max(0, (now[1] - self._last[1]) - (now[2] - self._last[2])) / elapsed if elapsed > 0 else 0.0
        self._last = now
        threads = max(1, min(self.most, self.cpus - round(others)))
        if threads != self._current:
            print(
                f"using {threads} of {self.most} threads: other programs keep {others:.1f} cores busy", file=sys.stderr
            )
            self._current = threads
        return self._current
