"""Model management routes (`/models/...`): create (pull), list, get, delete, tag, push, load, purge.

No model name can reach a route meant for something else. A route word (`create`, `load`, `purge`) alone
after `/models/` is never read as a model name, whatever the method: such a model is named with its
namespace or in full (`ai/purge`, `docker.io/ai/purge:latest`), as the CLI always does. Per-model actions
are suffixes after the full name (`/models/{name}/tag`), so a name ending in `tag` or `push` is read whole
by GET and DELETE, and POST has no per-model route without a suffix. GET has one suffix, `export`
(`archive.py`, matched first): a model named `.../export` is read by GET with its tag. Routes that are not
about one model and are not DMR's begin with `_` (`/models/_check`), which no model name can.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from docker_model import distribution
from docker_model.api_types import Capability, CreateRequest, ModelInfo, TagResult
from docker_model.distribution import Model, ProgressEvent, Store
from docker_model.distribution.capabilities import forget_capabilities, stored_capabilities
from docker_model.reference import InvalidReferenceError, parse_reference
from docker_model.runner.api.common import query_flag, read_body, state_of
from docker_model.runner.api.error_table import free_bytes, status_for, storage_problem
from docker_model.runner.api.inference import PRELOAD_ONLY_HEADER
from docker_model.runner.api.progress import stream_job
from docker_model.runner.shared.error_body import APIError
from docker_model.runner.state import RunnerState
from docker_model.units import human_bytes

ROUTE_WORDS = ("create", "load", "purge")
MODEL_SIZE_HEADER = "x-model-size"  # bytes of the model a `POST /models/load` sends, for an early room check


def model_name(request: Request) -> str:
    """The model a per-model route names; a bare route word is refused, never taken for `ai/<word>`."""
    name = request.path_params["name"]
    if name in ROUTE_WORDS:
        raise APIError(
            400,
            f"'{name}' is a route of this API, not a model name here: "
            f"name the model with its namespace, e.g. /models/ai/{name}",
            param="name",
        )
    return name


def names_a_tag(model: Model, name: str) -> bool:
    try:
        return str(parse_reference(name)) in model.tags
    except InvalidReferenceError:
        return False


def model_json(model: Model, store: Store) -> ModelInfo:
    """A stored model as DMR's API shows it, with its capabilities (which may read its template and header)."""
    return info(model, stored_capabilities(model, store.blobs.path))


def info(model: Model, capabilities: list[Capability]) -> ModelInfo:
    return {
        "id": model.id,
        "tags": model.tags,
        "created": model.created,
        "config": model.config,
        "capabilities": capabilities,
    }


async def create_model(request: Request) -> Response:
    """Pulls `from`, with `bearer-token` (if given) as the registry's or Hugging Face's token.
    `X-Preload-Only: true` is refused (it loads a model for an inference request); any other value is
    ignored, as Docker Model Runner ignores the header here."""
    if request.headers.get(PRELOAD_ONLY_HEADER, "").lower() == "true":
        raise APIError(
            400,
            f"{PRELOAD_ONLY_HEADER}: true loads a model for an inference request (POST /engines/v1/chat/completions "
            "and the other inference routes), it does nothing on /models/create: send it there, or leave it out",
            param=PRELOAD_ONLY_HEADER,
        )
    body = await read_body(request, CreateRequest)
    source = body.get("from")
    if not source or not source.strip():
        raise APIError(400, 'missing "from": name the model to pull, e.g. {"from": "ai/smollm2"}')
    parse_reference(source)
    registry = state_of(request).registry
    token = body.get("bearer-token") or None  # as Docker Model Runner reads it: empty means none
    if token is not None and not header_safe(token):
        raise APIError(  # the token itself is never repeated: it may be the client's secret, pasted wrong
            400,
            '"bearer-token" holds whitespace, control characters or characters outside Latin-1, which no token '
            "has and no HTTP header can carry: send the token alone, as its registry issued it",
            param="bearer-token",
        )

    def pull(progress: Callable[[ProgressEvent], None], cancel: threading.Event) -> str:
        registry.pull(source, progress=progress, cancel=cancel, bearer_token=token)
        return "Model pulled successfully"

    return await stream_job("Downloaded", pull)


def header_safe(token: str) -> bool:
    """Whether `token` can go into an `Authorization` header as it is."""
    return all(not char.isspace() and char.isprintable() and ord(char) <= 0xFF for char in token)


async def list_models(request: Request) -> JSONResponse:
    store = state_of(request).store
    return JSONResponse(await asyncio.to_thread(lambda: [model_json(model, store) for model in store.list()]))


async def get_model(request: Request) -> JSONResponse:
    """A stored model; with `?remote=true`, the model as its registry holds it, read without pulling it."""
    name, state = model_name(request), state_of(request)
    if query_flag(request, "remote"):
        model, capabilities = await asyncio.to_thread(state.registry.remote, name)
        return JSONResponse(info(model, capabilities))
    return JSONResponse(await asyncio.to_thread(lambda: model_json(state.store.get(name), state.store)))


async def delete_model(request: Request) -> JSONResponse:
    events = await remove_model(state_of(request), model_name(request), query_flag(request, "force"))
    return JSONResponse([{kind: value} for kind, value in events])


async def remove_model(state: RunnerState, name: str, force: bool) -> list[tuple[str, str]]:
    """Remove a tag, or the model with its last tag (stopping its worker); a 409 while it answers requests,
    unless `force`. Every API dialect's delete comes here."""
    model = await asyncio.to_thread(state.store.get, name)
    serving = state.scheduler.requests_in_flight(model.id)
    deletes = len(model.tags) <= 1 or not names_a_tag(model, name)  # untagging one of several stops nothing
    if serving and deletes and not force:
        raise APIError(
            409,
            f"model {name} is answering {serving} request(s): wait for them to finish, "
            "or remove it anyway with --force (their answers stop)",
            param="force",
        )
    events = await asyncio.to_thread(state.store.remove, name, force)
    if any(kind == "Deleted" for kind, _ in events):
        await forget_models(state, [model.id])
    return events


async def forget_models(state: RunnerState, model_ids: list[str]) -> None:
    """Drop what the runner keeps of models that were deleted (`rm`, `purge`, `prune`, `check --repair`): their
    workers stop, and their recent requests and capabilities go, so that a model pulled again starts afresh."""
    if not model_ids:
        return
    await state.scheduler.unload(model_ids)
    for model_id in model_ids:
        state.recent_requests.forget(model_id)
        forget_capabilities(model_id)


async def tag_model(request: Request) -> JSONResponse:
    repository = request.query_params.get("repo", "")
    tag = request.query_params.get("tag", "") or "latest"
    if not repository:
        raise APIError(400, "missing query parameter 'repo': the repository of the new tag")
    target = str(parse_reference(f"{repository}:{tag}"))
    await asyncio.to_thread(state_of(request).store.tag, model_name(request), target)
    result: TagResult = {"message": f"Model tagged successfully with {target}", "target": target}
    return JSONResponse(result, status_code=201)


async def push_model(request: Request) -> Response:
    name = model_name(request)
    state = state_of(request)
    await asyncio.to_thread(state.store.get, name)

    def push(progress: Callable[[ProgressEvent], None], cancel: threading.Event) -> str:
        state.registry.push(name, progress=progress)
        return "Model pushed successfully"

    return await stream_job("Uploaded", push, mode="push")


async def load_model(request: Request) -> JSONResponse:
    """Takes a model archive: an OCI image layout (`docker model load`), or a tar of blobs and a manifest
    (`docker model package`); `?tag=` names the model too."""
    store = state_of(request).store
    tag = request.query_params.get("tag")
    tags = [str(parse_reference(tag))] if tag else []
    try:
        store.layout.ensure()
        room = load_room(store.root, request.headers.get(MODEL_SIZE_HEADER, ""))
        with tempfile.TemporaryFile(dir=os.fspath(store.root)) as spool:
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                if received > room:
                    raise APIError(
                        507,
                        f"the model archive is larger than the store {store.root} has room for "
                        f"({human_bytes(room)}: half its free space, as the archive is spooled, then stored); "
                        "free some, or move MODELS_PATH",
                    )
                await asyncio.to_thread(spool.write, chunk)
            spool.seek(0)
            model = await asyncio.to_thread(store.load, spool, tags)
    except distribution.DistributionError as error:
        refused = (distribution.DigestMismatchError, distribution.UnsupportedFormatError)
        if not isinstance(error, refused) and type(error) is not distribution.DistributionError:
            raise  # a domain error with a status of its own (a conflict, ...)
        raise APIError(400, f"the model archive was refused: {error}") from None  # the archive is the client's
    except OSError as error:
        problem = storage_problem(error, str(store.root))
        if problem is None:
            raise
        raise APIError(status_for(error), problem) from None
    return JSONResponse(await asyncio.to_thread(model_json, model, store), status_code=201)


def load_room(root: Path, declared_size: str) -> int:
    """The most bytes a model archive may have: half the store's free space, since it is spooled and then
    stored as blobs (both on the disk until it is recorded). A declared size that does not fit is refused
    at once; the body is held to the limit as it streams, declared or not."""
    free = free_bytes(str(root))
    room = free // 2
    if declared_size.isdigit() and int(declared_size) > room:
        raise APIError(
            507,
            f"no space left for this model in the store {root}: {human_bytes(free)} free, "
            f"{human_bytes(2 * int(declared_size))} needed while it is stored; free some, or move MODELS_PATH",
        )
    return room


async def purge_models(request: Request) -> JSONResponse:
    """Deletes every model; only with `?force=true`, so that no plain DELETE of a model can purge."""
    if not query_flag(request, "force"):
        raise APIError(
            400,
            "purging deletes every model: confirm with DELETE /models/purge?force=true; "
            "to remove a model named purge, use DELETE /models/ai/purge",
            param="force",
        )
    state = state_of(request)
    models = await asyncio.to_thread(state.store.list)
    await state.scheduler.unload_all()
    await asyncio.to_thread(state.store.purge)
    await forget_models(state, [model.id for model in models])
    return JSONResponse({"message": "Model store purged", "deleted": [model.id for model in models]})


routes = [
    Route("/models/create", create_model, methods=["POST"]),
    Route("/models/load", load_model, methods=["POST"]),
    Route("/models/purge", purge_models, methods=["DELETE"]),
    Route("/models", list_models, methods=["GET"]),
    Route("/models/{name:path}/tag", tag_model, methods=["POST"]),
    Route("/models/{name:path}/push", push_model, methods=["POST"]),
    Route("/models/{name:path}", get_model, methods=["GET"]),
    Route("/models/{name:path}", delete_model, methods=["DELETE"]),
]
