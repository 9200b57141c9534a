"""Writing files so that readers never see half of one, and reading the end of a log (hallway: used by
the CLI, the store and the runner alike)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes, sync: bool = True, mode: int = 0o644) -> None:
    """Write `data` to a temp file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any, sync: bool = True) -> None:
    atomic_write(path, json.dumps(value, indent=2).encode() + b"\n", sync)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ("" when it cannot be read), from its last 16 KiB."""
    try:
        with open(path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 16384))
            return b"\n".join(log.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""
