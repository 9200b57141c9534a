"""File locks (flock) that keep processes and threads from writing one store file at once.

flock locks belong to an open file description, so each acquisition opens the file anew: two threads of
one process exclude each other exactly as two processes do.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from docker_model.distribution.cancel import CancelToken
from docker_model.distribution.errors import PullCancelledError
from docker_model.files import PRIVATE_FILE, make_dirs

POLL_SECONDS = 0.1


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the duration of the block."""
    make_dirs(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def lock_file_in_place(
    path: Path,
    cancel: CancelToken | None = None,
    waiting: Callable[[], None] | None = None,
) -> int | None:
    """Open `path` (creating it) and lock it exclusively; return the fd, or None if `path` vanished meanwhile.

    Used on a `.incomplete` file that its holder renames into place when done: after waiting, the lock may
    be on a file that is no longer at `path`, which the caller must then look at again. `waiting` is
    called while another holder keeps the lock; `cancel` stops the wait.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if cancel is not None and cancel.is_set():
                    raise PullCancelledError() from None
                if waiting is not None:
                    waiting()
                time.sleep(POLL_SECONDS)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
    except BaseException:
        os.close(fd)
        raise
    if not same:
        os.close(fd)
        return None
    return fd
