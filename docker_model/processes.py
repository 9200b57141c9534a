"""How the CLI starts the runner and the runner starts its workers: detached from the terminal, yet in
the caller's session (hallway: used by the CLI and the runner)."""

from __future__ import annotations

import os
import sys
from typing import Any


def own_process_group() -> dict[str, Any]:
    """`Popen` arguments for a child in a process group of its own, so that Ctrl-C in a terminal does not
    reach it, but in the caller's session. Not a session of its own: Linux shares the CPU fairly between
    sessions (autogroups), and a worker alone in one got one core's worth on a busy machine, where
    llama.cpp's threads spin at every barrier waiting for each other: 0.5 tokens/s instead of 30 with one
    busy process beside it."""
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"preexec_fn": os.setpgrp}  # pragma: no cover - Python 3.10
