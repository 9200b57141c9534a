"""Cancellation of a transfer: by the caller (Ctrl-C'd client) or by the transfer itself (a failed layer)."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class CancelToken(Protocol):
    """What transfers look at; `threading.Event` is one."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Cancellation:
    """Set when the caller's event is set, or when `set()` is called here (the caller's stays untouched)."""

    def __init__(self, outer: CancelToken | None = None) -> None:
        self._outer = outer
        self._own = threading.Event()

    def set(self) -> None:
        self._own.set()

    def is_set(self) -> bool:
        return self._own.is_set() or (self._outer is not None and self._outer.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                break
            self._own.wait(left)
        return self.is_set()
