"""How much memory the machine has free, to decide whether another model fits."""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def available_memory_bytes() -> int | None:
    """MemAvailable on Linux; None where the figure is not at hand (then only the slot count limits)."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
