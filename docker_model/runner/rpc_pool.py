"""A model's pool of RPC servers (llama.cpp's RPC backend: other machines' devices holding its layers):
which servers, what each offers, and how the layers split over them.

Which pool a model uses, the first found: `configure --rpc` (`none`: no pool, whatever else says), the
runtime flag `--rpc`, the runner-wide `DOCKER_MODEL_RPC`. `--tensor-split` (`-ts`) gives each server's share
of the layers; without it, the shares follow each server's offer: its devices' free memory, at most the
`@SIZE` it was given. llama.cpp treats the servers' devices as GPUs, so every layer goes to the pool and the
memory fit counts the offers where it would count GPU memory.

The engine's rules, which the scheduler keeps with these: a server serves one client at a time (a second
connection waits unanswered), and llama.cpp aborts the worker when a connection to one fails. So the
runner probes each endpoint (connect and protocol hello, PROBE_TIMEOUT) before a worker touches it, and
leases each endpoint to one loaded or loading model, which it then never probes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from docker_model.api_types import PoolInfo
from docker_model.rpc_protocol import Endpoint, Probed, RpcBusy, RpcError, parse_endpoints, probe, version_text
from docker_model.runner.fit import Room
from docker_model.runner.memory_estimate import MemoryEstimate
from docker_model.runner.model_settings import ModelSettings
from docker_model.runner.runtime_flags import flag_value, parse_shares
from docker_model.units import human_bytes

SET_WITH_CONFIGURE = "set with configure"
RUNTIME_FLAG = "runtime flag"
RUNNER_WIDE = "runner-wide (DOCKER_MODEL_RPC)"
NO_POOL = "none"  # `configure --rpc none`: this model loads here, even with a runner-wide pool
DEFAULT = "default"  # `configure --rpc default`: forget the configured pool (the flags' or the runner-wide one)
PROBE_TIMEOUT = 3.0  # seconds to connect and get the protocol hello answered
RETRY_AFTER_SECONDS = 10

Probe = Callable[[Endpoint, float], Probed]


class PoolError(Exception):
    """A model's pool of RPC servers cannot be used now; the message names the endpoint and the fix."""


class PoolMisconfigured(PoolError, ValueError):
    """The model's settings and its pool disagree (a 409: fix the settings)."""


class EndpointFailed(PoolError):
    """An endpoint is unreachable or speaks another protocol version (a 502: the server behind it failed)."""


class EndpointBusy(PoolError):
    """An endpoint serves another client: a model loaded or loading here, or a program elsewhere (a 503 with
    Retry-After: it frees when that client lets go)."""

    retry_after = RETRY_AFTER_SECONDS


@dataclass(frozen=True)
class Pool:
    """The RPC servers a model's layers go to, which setting chose them, and the shares given (if any)."""

    endpoints: tuple[Endpoint, ...]
    source: str
    shares: tuple[float, ...] = ()  # --tensor-split as given; empty: by each server's offer

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(endpoint.address for endpoint in self.endpoints)

    def info(self) -> PoolInfo:
        return {
            "endpoints": [spelled(endpoint) for endpoint in self.endpoints],
            "source": self.source,
            "tensor_split": list(self.shares) or None,
        }


def spelled(endpoint: Endpoint) -> str:
    """`host:port`, with `@SIZE` when it has a cap."""
    return endpoint.address if endpoint.cap is None else f"{endpoint.address}@{human_bytes(endpoint.cap)}"


def configured(text: str) -> str | None:
    """What `configure --rpc TEXT` stores: the servers as given, NO_POOL, or None for DEFAULT (not set);
    ValueError naming the fix."""
    value = text.strip()
    if value.lower() in (NO_POOL, DEFAULT):
        return NO_POOL if value.lower() == NO_POOL else None
    if not value:
        raise ValueError(
            "rpc is empty: give HOST:PORT[@SIZE][,...], none (no pool for this model) or default (the runner-wide pool)"
        )
    _endpoints(value, "--rpc")
    return value


def resolve(settings: ModelSettings, runner_wide: tuple[Endpoint, ...]) -> Pool | None:
    """The pool a model with `settings` uses (None: none); PoolMisconfigured when its settings contradict it."""
    flags = settings.runtime_flags
    shares_text = flag_value(flags, "-ts", "--tensor-split")
    try:
        shares = parse_shares(shares_text) if shares_text else ()
    except ValueError as error:
        raise PoolMisconfigured(f"--tensor-split: {error}") from None
    flagged = flag_value(flags, "--rpc")
    pool = None
    if settings.rpc == NO_POOL:
        pool = None
    elif settings.rpc:
        pool = Pool(_endpoints(settings.rpc, "configure --rpc"), SET_WITH_CONFIGURE, shares)
    elif flagged:
        pool = Pool(_endpoints(flagged, "the runtime flag --rpc"), RUNTIME_FLAG, shares)
    elif runner_wide:
        pool = Pool(runner_wide, RUNNER_WIDE, shares)
    if pool is None:
        if shares:
            raise PoolMisconfigured("--tensor-split shares layers over RPC servers, and this model has none: drop it")
        return None
    if shares and len(shares) != len(pool.endpoints):
        raise PoolMisconfigured(
            f"--tensor-split gives {len(shares)} shares for the {len(pool.endpoints)} RPC servers of the pool "
            f"({pool.source}): give one share per server"
        )
    if flag_value(flags, "-ngl", "--n-gpu-layers") == "0":
        raise PoolMisconfigured("--n-gpu-layers 0 keeps every layer off the RPC servers: drop it, or the pool")
    return pool


def _endpoints(text: str, where: str) -> tuple[Endpoint, ...]:
    try:
        return parse_endpoints(text)
    except ValueError as error:
        raise PoolMisconfigured(f"{where}: {error}") from None


@dataclass(frozen=True)
class Offer:
    """What one endpoint answered its probe with."""

    endpoint: Endpoint
    protocol: str  # "7.0.0"
    free: int  # bytes free on its devices
    total: int

    @property
    def bytes(self) -> int:
        """What the pool may put there: its devices' free memory, at most its cap."""
        return self.free if self.endpoint.cap is None else min(self.free, self.endpoint.cap)


def probe_one(endpoint: Endpoint, prober: Probe = probe) -> Offer:
    """Probe one endpoint; EndpointBusy or EndpointFailed naming it."""
    try:
        probed = prober(endpoint, PROBE_TIMEOUT)
    except RpcBusy as error:
        raise EndpointBusy(str(error)) from None
    except RpcError as error:
        raise EndpointFailed(str(error)) from None
    free = sum(device.free for device in probed.devices)
    total = sum(device.total for device in probed.devices)
    return Offer(endpoint, version_text(probed.version), free, total)


def probe_pool(pool: Pool, known: Mapping[str, Offer] | None = None, prober: Probe = probe) -> Placement:
    """Probe the endpoints of `pool` at once (blocking: run it off the event loop), all but those whose offer
    `known` has (leased to a loaded model: a probe would wait on its worker); the first error, in the pool's
    order, when one fails."""
    known = known or {}
    todo = [endpoint for endpoint in pool.endpoints if endpoint.address not in known]
    with ThreadPoolExecutor(max(len(todo), 1)) as threads:
        futures = {endpoint.address: threads.submit(probe_one, endpoint, prober) for endpoint in todo}
    offers = tuple(
        replace(known[e.address], endpoint=e) if e.address in known else futures[e.address].result()
        for e in pool.endpoints
    )
    return Placement(pool, offers)


@dataclass(frozen=True)
class Placement:
    """A pool as a load uses it: each server's offer, and its fraction of the layers."""

    pool: Pool
    offers: tuple[Offer, ...]

    @property
    def fractions(self) -> tuple[float, ...]:
        weights = self.pool.shares or tuple(float(offer.bytes) for offer in self.offers)
        total = sum(weights)
        if total <= 0:  # nothing offered anywhere: any split is refused by the fit
            return tuple(1 / len(weights) for _ in weights)
        return tuple(weight / total for weight in weights)

    def capacity(self) -> int:
        """The most the model's offloaded part may take: each server holds its fraction of it, so the first
        to fill up decides (with shares by offer: the sum of the offers)."""
        pairs = zip(self.offers, self.fractions, strict=True)
        return int(min(offer.bytes / fraction for offer, fraction in pairs if fraction > 0))

    def room(self, base: Room) -> Room:
        """`base` (this machine's RAM) with the servers' offers where a GPU's memory would be."""
        each = ", ".join(
            f"{offer.endpoint.address} offers {human_bytes(offer.bytes)} for {fraction:.0%} of the layers"
            for offer, fraction in zip(self.offers, self.fractions, strict=True)
        )
        label = f"the RPC servers' offers ({each}), not GPU memory"
        return replace(base, vram=self.capacity(), vram_label=label, unified=False)

    def shares_of(self, estimate: MemoryEstimate) -> list[int]:
        """Each server's part of what the model puts on the servers, estimated from the split."""
        return [int(estimate.vram * fraction) for fraction in self.fractions]


def busy_message(address: str, holder: str) -> str:
    return (
        f"the RPC server {address} is in use by model {holder} (a server serves one client at a time): "
        f"retry once {holder} is idle, or unload it (docker model unload {holder})"
    )
