"""Writing files so that readers never see half of one and a crash loses none that was reported written,
and reading the end of a log (hallway: used by the CLI, the store and the runner alike)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def fsync_path(path: Path) -> None:
    """Flush a file's bytes, or a folder's entries (a file just renamed or made in it), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def with_path(error: OSError, path: Path) -> OSError:
    """`error` naming `path` when it names no file (a write's ENOSPC does not), so users learn where."""
    if error.filename is not None:
        return error
    return OSError(error.errno, error.strerror, os.fspath(path))


def make_dirs(path: Path, mode: int = PRIVATE_DIR) -> None:
    """Create `path` and its missing parents with `mode`, durably; folders that exist keep their own mode."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode)
        except FileExistsError:  # made meanwhile by another writer
            continue
        fsync_path(directory.parent)


def atomic_write(path: Path, data: bytes, sync: bool = True, mode: int = 0o644) -> None:
    """Write `data` to a temp file beside `path`, then rename it into place.

    With `sync` a crash leaves the old file or the new one whole: the file is flushed before the rename,
    the folder after it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if sync:
            fsync_path(path.parent)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise with_path(error, path) from None
        raise


def write_json(path: Path, value: Any, sync: bool = True, mode: int = 0o644) -> None:
    atomic_write(path, json.dumps(value, indent=2).encode() + b"\n", sync, mode)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ("" when it cannot be read), from its last 16 KiB."""
    try:
        with open(path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 16384))
            return b"\n".join(log.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""
