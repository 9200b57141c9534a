"""Store housekeeping routes: the integrity check (`POST /models/_check`) and pruning unused models
(`POST /models/_prune`). Both start with `_`, which no model reference can, so no model name ever reaches
them and they shadow none (`models.py`)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from docker_model.api_types import CheckReport, PrunedModel, PruneRequest, PruneResult
from docker_model.distribution.store import usage
from docker_model.runner.api.common import query_flag, read_body, state_of
from docker_model.runner.api.models import forget_models
from docker_model.runner.shared.error_body import APIError
from docker_model.units import parse_age


async def check_store(request: Request) -> JSONResponse:
    """Verifies every blob and finds leftovers; with `?repair=true`, fixes them (models with a damaged file
    are removed, and unloaded)."""
    repair = query_flag(request, "repair")
    state = state_of(request)
    found = await asyncio.to_thread(state.store.check_report, repair)
    await forget_models(state, found.removed_models)
    report: CheckReport = {
        "models": found.models,
        "blobs": found.blobs,
        "verified_bytes": found.verified_bytes,
        "problems": found.problems,
        "repaired": repair,
    }
    return JSONResponse(report)


async def prune_models(request: Request) -> JSONResponse:
    """The models not used for `unused_for` and not loaded; with `models` (IDs, as a first call listed
    them), deletes those of them that are still so. Deleting always names what goes.

    The scheduler's lock is held only to read which models are loaded and to mark those chosen as being
    deleted (the scheduler refuses to load them then), never while the store is worked on: a store busy
    with a long check must not stall every inference request."""
    body = await read_body(request, PruneRequest)
    text = body.get("unused_for")
    if text is None:
        raise APIError(400, 'missing "unused_for": how long a model went unused, e.g. "24h" or "7d"', "unused_for")
    try:
        seconds = parse_age(text)
    except ValueError as error:
        raise APIError(400, str(error), "unused_for") from None
    state = state_of(request)
    scheduler = state.scheduler
    unused = await asyncio.to_thread(usage.unused_models, state.store, seconds, await scheduler.busy())
    if "models" not in body:
        reclaimed = await asyncio.to_thread(usage.reclaimable, state.store, [found.model.id for found in unused])
        return JSONResponse(_result(unused, reclaimed, deleted=False))
    chosen = set(body.get("models") or ()) & {found.model.id for found in unused}
    async with scheduler.deleting(chosen) as marked:
        # Still unused now that none of them can load: used since the first look, a model stays.
        again = await asyncio.to_thread(usage.unused_models, state.store, seconds, await scheduler.busy())
        unused = [found for found in again if found.model.id in marked]
        ids = [found.model.id for found in unused]
        reclaimed = await asyncio.to_thread(usage.reclaimable, state.store, ids)
        for model_id in ids:
            await asyncio.to_thread(state.store.remove, model_id, True)
    await forget_models(state, ids)
    return JSONResponse(_result(unused, reclaimed, deleted=True))


def _result(unused: list[usage.Unused], reclaimed: int, deleted: bool) -> PruneResult:
    return {"models": [_pruned(found) for found in unused], "reclaimed": reclaimed, "deleted": deleted}


def _pruned(found: usage.Unused) -> PrunedModel:
    model = found.model
    return {"id": model.id, "tags": model.tags, "last_used": int(found.last_used), "size": model.size}


routes = [
    Route("/models/_check", check_store, methods=["POST"]),
    Route("/models/_prune", prune_models, methods=["POST"]),
]
