"""The RPC servers the runner's pools name (`GET /engines/rpc`, for `status`), and what each loaded model
holds on its own (for `ps`). An endpoint leased to a loaded model is reported from its lease and its
worker, never probed: a server serves one client at a time, and the worker is that client."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from docker_model.api_types import RpcEndpointStatus, RpcShare
from docker_model.distribution import Model
from docker_model.reference import familiar_name
from docker_model.rpc_protocol import Endpoint
from docker_model.runner.api.common import state_of
from docker_model.runner.rpc_pool import PoolError, PoolMisconfigured, probe_one, resolve
from docker_model.runner.scheduler import LoadedModel, Scheduler

HEALTH_TIMEOUT = 2.0  # seconds a worker has to say what it holds on its servers
RUNNER_WIDE = "runner-wide"
_MEASURED = ("model_bytes", "context_bytes", "compute_bytes")


async def measured(loaded: LoadedModel) -> dict[str, dict[str, int]]:
    """What the worker allocated on each endpoint, as its `/health` reports it: endpoint -> kind -> bytes;
    empty when it does not say (yet)."""
    health = await loaded.worker.health(HEALTH_TIMEOUT)
    entries = health.get("rpc") if health else None
    found: dict[str, dict[str, int]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("endpoint"), str):
            found[entry["endpoint"]] = {key: entry[key] for key in _MEASURED if isinstance(entry.get(key), int)}
    return found


async def rpc_shares(loaded: LoadedModel) -> list[RpcShare]:
    """Each RPC server's part of a loaded model: estimated from the split, and measured by its worker."""
    placement = loaded.placement
    if placement is None:
        return []
    found = await measured(loaded)
    estimates = placement.shares_of(loaded.fit.estimate)
    shares: list[RpcShare] = []
    for offer, fraction, estimated in zip(placement.offers, placement.fractions, estimates, strict=True):
        parts = found.get(offer.endpoint.address, {})
        shares.append(
            {
                "endpoint": offer.endpoint.address,
                "fraction": fraction,
                "offer": offer.bytes,
                "estimated": estimated,
                "measured": sum(parts.values()) if len(parts) == len(_MEASURED) else None,
                "model_bytes": parts.get("model_bytes"),
                "context_bytes": parts.get("context_bytes"),
                "compute_bytes": parts.get("compute_bytes"),
            }
        )
    return shares


async def rpc_endpoints(request: Request) -> JSONResponse:
    """Every endpoint the runner-wide pool or a model's settings name, and those leased: reachable or not,
    its protocol version and its offer."""
    state = state_of(request)
    named: dict[str, tuple[Endpoint, list[str]]] = {}

    def name(endpoint: Endpoint, user: str) -> None:
        users = named.setdefault(endpoint.address, (endpoint, []))[1]
        if user not in users:
            users.append(user)

    for endpoint in state.scheduler.rpc_servers:
        name(endpoint, RUNNER_WIDE)
    for model in await asyncio.to_thread(state.store.list):
        try:
            pool = resolve(state.settings.get(model.id), ())
        except PoolMisconfigured:
            continue  # its loads say why
        for endpoint in pool.endpoints if pool else ():
            name(endpoint, _name_of(model))
    for offer, holder in state.scheduler.leased_offers().values():
        name(offer.endpoint, _name_of(holder.model))
    statuses = await asyncio.gather(*(_status(state.scheduler, endpoint, users) for endpoint, users in named.values()))
    return JSONResponse(list(statuses))


def _name_of(model: Model) -> str:
    return familiar_name(model.tags[0]) if model.tags else model.id


async def _status(scheduler: Scheduler, endpoint: Endpoint, users: list[str]) -> RpcEndpointStatus:
    status: RpcEndpointStatus = {
        "endpoint": endpoint.address,
        "cap": endpoint.cap,
        "used_by": users,
        "reachable": False,
        "protocol": None,
        "offer": None,
        "leased_to": None,
        "measured": None,
        "error": None,
    }
    leased = scheduler.leased_offers().get(endpoint.address)
    loading = scheduler.leases().get(endpoint.address)
    if leased is not None:
        found, holder = leased
        share = next((s for s in await rpc_shares(holder) if s["endpoint"] == endpoint.address), None)
        status["leased_to"], status["measured"] = holder.name, share["measured"] if share else None
    elif loading is not None:
        status["leased_to"], status["error"] = loading[1], f"leased to {loading[1]}, which is loading"
        return status
    else:
        try:
            found = await asyncio.to_thread(probe_one, endpoint)
        except PoolError as error:
            status["error"] = str(error)
            return status
    status["reachable"], status["protocol"], status["offer"] = True, found.protocol, found.bytes
    return status


routes = [Route("/engines/rpc", rpc_endpoints, methods=["GET"])]
