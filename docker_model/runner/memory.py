"""How much memory the machine has, and how much of it the runner's models may use."""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")
MiB = 1024**2
MARGIN_FRACTION = 0.05  # of the machine's memory, kept free for everything else
MARGIN_FLOOR = 256 * MiB


def meminfo_bytes(field: str) -> int | None:
    """A field of /proc/meminfo (`MemAvailable`, `MemTotal`) in bytes; None where it cannot be read."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory_bytes() -> int | None:
    """MemAvailable on Linux; None where the figure is not at hand."""
    return meminfo_bytes("MemAvailable")


def safety_margin() -> int:
    """Memory a new model leaves free: 5% of the machine's, at least 256 MiB."""
    total = meminfo_bytes("MemTotal") or 0
    return max(MARGIN_FLOOR, int(total * MARGIN_FRACTION))


def room_for_a_model(budget: int | None, loaded_estimates: int) -> int | None:
    """Bytes of RAM a model about to load may take. With a budget: the budget less what the loaded models
    were estimated at. Without: the machine's available memory (which the loaded models already left out)
    less the safety margin. None where neither is known: then nothing is refused for memory."""
    if budget is not None:
        return budget - loaded_estimates
    available = available_memory_bytes()
    return None if available is None else available - safety_margin()
