"""The runtime flags `docker model configure MODEL -- FLAGS` may pass to a model's worker, and the values
each takes: checked when they are configured, so that a bad flag never breaks every later load."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FlagValue:
    """What one allowed runtime flag takes: a number of `kind` from `low` to `high` (inclusive)."""

    kind: type[int] | type[float]
    low: float
    high: float = math.inf

    def check(self, flag: str, text: str) -> None:
        try:
            value = self.kind(text)
        except ValueError:
            value = None
        if value is None or not self.low <= value <= self.high or math.isnan(value):
            bounds = f"at least {self.low:g}" if self.high == math.inf else f"from {self.low:g} to {self.high:g}"
            what = "a whole number" if self.kind is int else "a number"
            raise ValueError(f"runtime flag {flag} needs {what} {bounds}, not {text!r}")


@dataclass(frozen=True)
class FlagChoice:
    """What one allowed runtime flag takes: one of `choices`."""

    choices: tuple[str, ...]

    def check(self, flag: str, text: str) -> None:
        if text not in self.choices:
            raise ValueError(f"runtime flag {flag} takes one of {', '.join(self.choices)}, not {text!r}")


@dataclass(frozen=True)
class FlagEndpoints:
    """What `--rpc` takes: RPC servers, `HOST:PORT[@SIZE][,...]`."""

    def check(self, flag: str, text: str) -> None:
        from docker_model.rpc_protocol import parse_endpoints

        try:
            parse_endpoints(text)
        except ValueError as error:
            raise ValueError(f"runtime flag {flag}: {error}") from None


@dataclass(frozen=True)
class FlagShares:
    """What `--tensor-split` takes: each RPC server's share of the layers, `1,3`."""

    def check(self, flag: str, text: str) -> None:
        try:
            parse_shares(text)
        except ValueError as error:
            raise ValueError(f"runtime flag {flag}: {error}") from None


def parse_shares(text: str) -> tuple[float, ...]:
    """Shares such as `1,3` (llama-server's `--tensor-split`): numbers, none negative, their sum positive."""
    try:
        shares = tuple(float(item) for item in text.split(","))
    except ValueError:
        shares = ()
    if not shares or not all(math.isfinite(share) and share >= 0 for share in shares) or sum(shares) <= 0:
        raise ValueError(f"{text!r} is not a list of shares: give numbers like 1,3 (none negative, not all 0)")
    return shares


RPC_FLAGS = ("--rpc", "--tensor-split", "-ts")  # the runner resolves the pool and passes these itself
CACHE_TYPES = ("f16", "q8_0", "q4_0")  # KV cache element types: 2, 1.06 and 0.56 bytes per value
_COUNT, _PROBABILITY, _CACHE_TYPE = FlagValue(int, 1), FlagValue(float, 0, 1), FlagChoice(CACHE_TYPES)
RUNTIME_FLAGS: dict[str, FlagValue | FlagChoice | FlagEndpoints | FlagShares] = {
    "-t": _COUNT, "--threads": _COUNT,
    "-b": _COUNT, "--batch-size": _COUNT,
    "-ngl": FlagValue(int, -1), "--n-gpu-layers": FlagValue(int, -1),
    "-np": _COUNT, "--parallel": _COUNT,
    "--max-queue": FlagValue(int, 0),
    "--temp": FlagValue(float, 0), "--top-k": FlagValue(int, 0), "--top-p": _PROBABILITY, "--min-p": _PROBABILITY,
    "--repeat-penalty": FlagValue(float, 0.0001),
    "-ctk": _CACHE_TYPE, "--cache-type-k": _CACHE_TYPE, "-ctv": _CACHE_TYPE, "--cache-type-v": _CACHE_TYPE,
    "--rpc": FlagEndpoints(), "-ts": FlagShares(), "--tensor-split": FlagShares(),
}  # fmt: skip


def flag_value(flags: Sequence[str], *names: str) -> str | None:
    """The value the last of `names` has in `flags` (checked flags: each has its value), None if absent."""
    found = None
    items = list(flags)
    while items:
        name, has_value, value = items.pop(0).partition("=")
        if not has_value and items:
            value = items.pop(0)
        if name in names:
            found = value
    return found


def without_flags(flags: Sequence[str], names: Sequence[str]) -> tuple[str, ...]:
    """`flags` (checked: each has its value) less those named `names`, with their values."""
    kept: list[str] = []
    items = list(flags)
    while items:
        item = items.pop(0)
        name, has_value, _ = item.partition("=")
        if name in names:
            if not has_value and items:
                items.pop(0)
            continue
        kept.append(item)
        if not has_value and items:
            kept.append(items.pop(0))
    return tuple(kept)


def check_runtime_flags(flags: Sequence[str]) -> tuple[str, ...]:
    """Return the flags unchanged, or raise ValueError naming the first one that is not allowed or whose
    value the worker would refuse (so that a bad flag is refused when it is configured, not at every load)."""
    items = list(flags)
    while items:
        name, has_value, value = items.pop(0).partition("=")
        spec = RUNTIME_FLAGS.get(name)
        if spec is None:
            allowed = ", ".join(sorted(f for f in RUNTIME_FLAGS if f.startswith("--")))
            raise ValueError(f"runtime flag {name} is not allowed (allowed: {allowed})")
        if not has_value:
            if not items:
                raise ValueError(f"runtime flag {name} needs a value")
            value = items.pop(0)
        spec.check(name, value)
    return tuple(flags)
