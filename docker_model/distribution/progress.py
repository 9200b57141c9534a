"""Progress events of a transfer, delivered to a caller's callback from worker threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class ProgressEvent:
    """One layer's progress: `current` of `layer_size` bytes done; `total` is all layers' bytes."""

    layer_digest: str
    layer_size: int
    current: int
    total: int
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


class ProgressTracker:
    """Serialises events from parallel layer transfers into one callback, at most one per `step` bytes.

    The callback is never called from two threads at once, so it need not be thread-safe itself.
    """

    def __init__(self, callback: ProgressCallback | None, total: int, step: int = 1 << 20) -> None:
        self._callback = callback
        self._total = total
        self._step = step
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def update(self, digest: str, size: int, current: int, message: str = "") -> None:
        if self._callback is None:
            return
        with self._lock:
            last = self._last.get(digest)
            if last is not None and current < size and abs(current - last) < self._step and not message:
                return
            self._last[digest] = current
            self._callback(ProgressEvent(digest, size, current, self._total, message))
