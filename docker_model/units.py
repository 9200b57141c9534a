"""Human-readable sizes and durations, shared by the CLI and the runner (pure, no I/O)."""

from __future__ import annotations

import re

DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB")
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
BYTE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
BYTE_UNITS_BINARY = {"ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}


def human_bytes(count: float) -> str:
    """Decimal units with two decimals, as Docker Model Runner prints sizes: `98.36MB`, `512.00B`."""
    for unit in DECIMAL_UNITS:
        if abs(count) < 1000 or unit == DECIMAL_UNITS[-1]:
            return f"{count:.2f}{unit}"
        count /= 1000
    raise AssertionError("unreachable")


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (`5m`, `1h30m`, `90s`, `0`); `-1` means forever and returns -1."""
    text = text.strip()
    if text in ("0", "-1"):
        return float(text)
    seconds = _seconds(text, DURATION_UNITS)
    if seconds is None:
        raise ValueError(f"invalid duration {text!r}: use a number with a unit like 30s, 5m or 1h, or 0 or -1")
    return seconds


def go_duration(seconds: float) -> str:
    """A keep-alive as Go writes a duration (`5m0s`, `1h30m0s`, `30s`, `500ms`), `-1` for never."""
    if seconds < 0:
        return "-1"
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:g}s"
    if hours or minutes:
        text = f"{int(minutes)}m{text}"
    return f"{int(hours)}h{text}" if hours else text


def parse_age(text: str) -> float:
    """Seconds in a span such as `30m`, `24h`, `7d` or `1d12h` (how long a model went unused; `d` is 24 h)."""
    seconds = _seconds(text.strip(), {**DURATION_UNITS, "d": 86400})
    if seconds is None:
        raise ValueError(f"invalid duration {text!r}: use a number with a unit like 30m, 24h or 7d")
    return seconds


def _seconds(text: str, units: dict[str, float]) -> float | None:
    """Seconds in numbers with units (`1h30m`), None when `text` is not written so."""
    names = "|".join(sorted(units, key=len, reverse=True))  # `ms` before `m`
    parts = re.findall(rf"(\d+(?:\.\d+)?)({names})", text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * units[unit] for number, unit in parts)


def parse_bytes(text: str) -> int:
    """Bytes in a size such as `8GiB`, `6G`, `512MB`, `1.5gib` or `1048576` (k, M, G, T decimal; Ki, Mi, Gi, Ti
    binary; the final B optional)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"invalid size {text!r}: use a number with a unit like 8GiB, 6G or 512MiB")
    unit = (match[2] or "").lower()
    return int(float(match[1]) * {**BYTE_UNITS, **BYTE_UNITS_BINARY}[unit])
