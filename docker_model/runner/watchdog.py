"""The hung-worker bound: a worker that answers requests but makes no progress (its engine stuck, or the
process stopped) for too long is killed, so that its clients get an error instead of waiting forever.

Progress is the worker's own counter of decode steps and embedded inputs (`GET /health`). Only workers
with requests in flight are watched; an idle worker has nothing to make progress on. A worker that does
not answer the probe counts as making none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

WATCH_INTERVAL_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 5.0


class Watched(Protocol):
    """What the watchdog needs of a worker with its requests."""

    @property
    def pid(self) -> int: ...

    @property
    def alive(self) -> bool: ...

    async def progress(self, timeout: float) -> int | None: ...

    def kill_hung(self, seconds: float) -> None: ...


@dataclass
class _Seen:
    progress: int | None
    since: float


class Watchdog:
    def __init__(self, bound_seconds: float) -> None:
        self.bound = bound_seconds
        self._seen: dict[int, _Seen] = {}

    async def check(self, busy: Iterable[Watched]) -> None:
        """Probe each busy worker; kill those whose progress has not moved for the bound."""
        busy = [worker for worker in busy if worker.alive]
        self._seen = {pid: seen for pid, seen in self._seen.items() if pid in {worker.pid for worker in busy}}
        reports = await asyncio.gather(*(worker.progress(PROBE_TIMEOUT_SECONDS) for worker in busy))
        now = time.monotonic()
        for worker, progress in zip(busy, reports, strict=True):
            seen = self._seen.get(worker.pid)
            if seen is None or (progress is not None and progress != seen.progress):
                self._seen[worker.pid] = _Seen(progress, now)
            elif now - seen.since >= self.bound:
                log.error("worker %d made no progress for %.0f s while answering: killing it", worker.pid, self.bound)
                worker.kill_hung(self.bound)
                del self._seen[worker.pid]

    async def watch_forever(self, busy: Callable[[], Iterable[Watched]]) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)
            await self.check(busy())
