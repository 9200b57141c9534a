"""Store housekeeping routes: a model's archive (`GET /models/{name}/export`), the integrity check
(`POST /models/_check`) and pruning unused models (`POST /models/_prune`).

Names follow the rules of `models.py`. `export` is a suffix after the model's full name, as Docker Model
Runner has it; so a model whose name ends in `/export` is read by GET with its tag or digest
(`/models/ai/export:latest`), as the CLI always names models. `_check` and `_prune` start with `_`, which
no model reference can, so no model name ever reaches them and they shadow none.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from docker_model import distribution
from docker_model.api_types import CheckReport, PrunedModel, PruneRequest, PruneResult
from docker_model.distribution.store import oci_layout, usage
from docker_model.reference import parse_reference
from docker_model.runner.api.common import read_body, state_of
from docker_model.runner.api.models import model_name, names_a_tag
from docker_model.runner.shared.error_body import APIError
from docker_model.units import parse_age

log = logging.getLogger(__name__)


class ArchiveResponse(StreamingResponse):
    """A model archive as it is read. A blob found damaged on the way (StoreCorruptError) ends the response
    unfinished: the server closes the connection, and the client gets less than the Content-Length it was
    told, never an archive that looks whole."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except distribution.StoreCorruptError as error:
            log.error("model export stopped: %s", error)


async def export_model(request: Request) -> Response:
    """The model as an OCI image layout tarball (`docker model save`), named by the tag it was asked for,
    or by all its tags when asked for by ID."""
    name = model_name(request)
    store = state_of(request).store
    try:
        model = await asyncio.to_thread(store.get, name)
    except distribution.ModelNotFoundError:
        whole = f"{name}/export"
        if await asyncio.to_thread(_exists, store, whole):
            raise APIError(
                404,
                f"model not found: {name} (GET /models/{whole} exports the model {name}); "
                f"to read the model {whole}, name it with its tag: GET /models/{whole}:latest",
                "name",
                "model_not_found",
            ) from None
        raise
    tags = [str(parse_reference(name))] if names_a_tag(model, name) else model.tags
    raw = await asyncio.to_thread(store.manifests.read, model.id)
    archive = await asyncio.to_thread(oci_layout.export_model, store.blobs, model, raw, tags)
    filename = (tags[0] if tags else model.id).replace("/", "_").replace(":", "_") + ".tar"
    headers = {"Content-Length": str(archive.size), "Content-Disposition": f'attachment; filename="{filename}"'}
    return ArchiveResponse(archive.chunks(), media_type=oci_layout.TAR_MEDIA_TYPE, headers=headers)


def _exists(store: distribution.Store, name: str) -> bool:
    try:
        store.get(name)
    except (distribution.ModelNotFoundError, distribution.InvalidReferenceError):
        return False
    return True


async def check_store(request: Request) -> JSONResponse:
    """Verifies every blob and finds leftovers; with `?repair=true`, fixes them (models with a damaged file
    are removed, and unloaded)."""
    repair = request.query_params.get("repair", "").lower() in ("1", "true", "yes")
    state = state_of(request)
    found = await asyncio.to_thread(state.store.check_report, repair)
    for model_id in found.removed_models:
        await state.scheduler.forget(model_id)
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
    them), deletes those of them that are still so. Deleting always names what goes."""
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
    chosen = set(body.get("models") or ())
    # Under the scheduler's lock no load starts: a model found unloaded here stays so until it is deleted.
    async with scheduler.lock:
        busy = set(scheduler.loaded) | set(scheduler.loading)
        unused = await asyncio.to_thread(usage.unused_models, state.store, seconds, busy)
        if "models" in body:
            unused = [found for found in unused if found.model.id in chosen]
        ids = [found.model.id for found in unused]
        reclaimed = await asyncio.to_thread(usage.reclaimable, state.store, ids)
        if "models" in body:
            for model_id in ids:
                await asyncio.to_thread(state.store.remove, model_id, True)
    result: PruneResult = {
        "models": [_pruned(found) for found in unused],
        "reclaimed": reclaimed,
        "deleted": "models" in body,
    }
    return JSONResponse(result)


def _pruned(found: usage.Unused) -> PrunedModel:
    model = found.model
    return {"id": model.id, "tags": model.tags, "last_used": int(found.last_used), "size": model.size}


routes = [
    Route("/models/_check", check_store, methods=["POST"]),
    Route("/models/_prune", prune_models, methods=["POST"]),
    Route("/models/{name:path}/export", export_model, methods=["GET"]),
]
