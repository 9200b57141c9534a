"""Model management routes (`/models/...`): create (pull), list, get, delete, tag, push, load, purge."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from docker_model.distribution import Model, ProgressEvent
from docker_model.reference import parse_reference
from docker_model.runner.api.common import read_json, state_of
from docker_model.runner.api.errors import APIError
from docker_model.runner.api.progress import stream_job


def model_json(model: Model) -> dict:
    """A model as DMR's API shows it."""
    return {"id": model.id, "tags": model.tags, "created": model.created, "config": model.config}


async def create_model(request: Request) -> Response:
    body = await read_json(request)
    source = body.get("from")
    if not isinstance(source, str) or not source.strip():
        raise APIError(400, 'missing "from": name the model to pull, e.g. {"from": "ai/smollm2"}')
    parse_reference(source)
    registry = state_of(request).registry

    def pull(progress: Callable[[ProgressEvent], None], cancel: threading.Event) -> str:
        registry.pull(source, progress=progress, cancel=cancel)
        return "Model pulled successfully"

    return await stream_job("Downloaded", pull)


async def list_models(request: Request) -> JSONResponse:
    models = await asyncio.to_thread(state_of(request).store.list)
    return JSONResponse([model_json(model) for model in models])


async def get_model(request: Request) -> JSONResponse:
    model = await asyncio.to_thread(state_of(request).store.get, request.path_params["name"])
    return JSONResponse(model_json(model))


async def delete_model(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
    state = state_of(request)
    model = await asyncio.to_thread(state.store.get, name)
    events = await asyncio.to_thread(state.store.remove, name, force)
    if any(kind == "Deleted" for kind, _ in events):
        await state.scheduler.forget(model.id)
    return JSONResponse([{kind: value} for kind, value in events])


async def tag_model(request: Request) -> JSONResponse:
    repository = request.query_params.get("repo", "")
    tag = request.query_params.get("tag", "") or "latest"
    if not repository:
        raise APIError(400, "missing query parameter 'repo': the repository of the new tag")
    target = str(parse_reference(f"{repository}:{tag}"))
    await asyncio.to_thread(state_of(request).store.tag, request.path_params["name"], target)
    return JSONResponse({"message": f"Model tagged successfully with {target}", "target": target}, status_code=201)


async def push_model(request: Request) -> Response:
    name = request.path_params["name"]
    state = state_of(request)
    await asyncio.to_thread(state.store.get, name)

    def push(progress: Callable[[ProgressEvent], None], cancel: threading.Event) -> str:
        state.registry.push(name, progress=progress)
        return "Model pushed successfully"

    return await stream_job("Uploaded", push)


async def load_model(request: Request) -> JSONResponse:
    """Takes a tar of blobs and a manifest, as `docker model package` and `docker model load` send it."""
    store = state_of(request).store
    tag = request.query_params.get("tag")
    tags = [str(parse_reference(tag))] if tag else []
    store.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=os.fspath(store.root)) as spool:
        async for chunk in request.stream():
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
        model = await asyncio.to_thread(store.load, spool, tags)
    return JSONResponse(model_json(model), status_code=201)


async def purge_models(request: Request) -> JSONResponse:
    state = state_of(request)
    await state.scheduler.unload_all()
    await asyncio.to_thread(state.store.purge)
    return JSONResponse({"message": "Model store purged"})


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
