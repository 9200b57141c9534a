"""Runner control routes (`/engines/...`): status, ps, df, unload, configure, and opening the bridge."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from docker_model.api_types import (
    ConfigureRequest,
    DiskUsage,
    ListenerInfo,
    RunningModel,
    UnloadRequest,
    UnloadResult,
)
from docker_model.distribution.config_fields import trained_context_length
from docker_model.runner.api.common import read_body, state_of
from docker_model.runner.listeners import ListenError
from docker_model.runner.model_settings import ModelSettings
from docker_model.runner.runtime_flags import check_runtime_flags
from docker_model.runner.shared.error_body import APIError
from docker_model.units import parse_duration

BACKEND_NAME = "llama.cpp"


def engine_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def engine_disk_usage() -> int:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return 0
    return sum(
        path.stat().st_size
        for root in spec.submodule_search_locations
        for path in Path(root).rglob("*")
        if path.is_file()
    )


async def engines_status(request: Request) -> JSONResponse:
    accelerator = state_of(request).accelerator
    detail = f"Running: llama.cpp (llama-cpp-python {engine_version()}) on {accelerator.description}"
    return JSONResponse({BACKEND_NAME: detail})


async def engines_ps(request: Request) -> JSONResponse:
    running: list[RunningModel] = [
        {
            "model_name": loaded.name,
            "model_id": loaded.model.id,
            "backend_name": BACKEND_NAME,
            "mode": "completion",
            "last_used": int(loaded.last_used),
            "until": None if loaded.expires_at is None else int(loaded.expires_at),
            "in_use": loaded.in_flight > 0,
            "context_size": loaded.context_size,
            "sequences": loaded.fit.parallel,
            "context_reason": loaded.fit.reason,
            "memory_estimated": loaded.fit.estimate.ram,
            "memory_measured": loaded.worker.rss_bytes(),
            "pid": loaded.worker.pid,
        }
        for loaded in state_of(request).scheduler.running()
    ]
    return JSONResponse(running)


async def engines_df(request: Request) -> JSONResponse:
    store = state_of(request).store
    models, engine = await asyncio.gather(asyncio.to_thread(store.disk_usage), asyncio.to_thread(engine_disk_usage))
    usage: DiskUsage = {"models_disk_usage": models, "default_backend_disk_usage": engine}
    return JSONResponse(usage)


async def engines_unload(request: Request) -> JSONResponse:
    body = await read_body(request, UnloadRequest)
    state = state_of(request)
    if body.get("all"):
        unloaded = await state.scheduler.unload_all()
    else:
        names = body.get("models")
        if not names:
            raise APIError(400, 'name the models to unload ({"models": [...]}) or ask for {"all": true}')
        models = [await asyncio.to_thread(state.store.get, name) for name in names]
        unloaded = await state.scheduler.unload([model.id for model in models])
    result: UnloadResult = {"unloaded_runners": len(unloaded), "models": unloaded}
    return JSONResponse(result)


def checked_runtime_flags(flags: list[str]) -> list[str]:
    try:
        return list(check_runtime_flags(flags))
    except ValueError as error:
        raise APIError(400, str(error), param="runtime-flags") from None


async def engines_configure(request: Request) -> JSONResponse:
    body = await read_body(request, ConfigureRequest)
    name = body.get("model")
    if not name:
        raise APIError(400, 'missing "model": name the model to configure', param="model")
    state = state_of(request)
    model = await asyncio.to_thread(state.store.get, name)
    current = state.settings.get(model.id)
    context_size = body.get("context-size", body.get("context_size", current.context_size))
    if context_size is not None and context_size <= 0:
        raise APIError(400, '"context-size" must be a positive whole number of tokens', param="context-size")
    trained = trained_context_length(model.config)
    if context_size is not None and trained is not None and context_size > trained:
        raise APIError(
            400,
            f"a context size of {context_size} tokens is more than the {trained} {name} was trained for: "
            f"choose {trained} or less",
            param="context-size",
        )
    keep_alive = current.keep_alive
    if body.get("keep_alive") is not None:
        try:
            keep_alive = parse_duration(str(body["keep_alive"]))
        except ValueError as error:
            raise APIError(400, str(error)) from None
    flags = body.get("runtime-flags", body.get("runtime_flags"))
    runtime_flags = current.runtime_flags if flags is None else checked_runtime_flags(flags)
    state.settings.set(model.id, ModelSettings(context_size, keep_alive, runtime_flags))
    # New settings apply at the next load: unload now, then preload as DMR does. Settings the model
    # cannot load with are taken back, so that a failed configure never breaks every later load.
    await state.scheduler.unload([model.id])
    try:
        loaded = await state.scheduler.acquire(model, name)
    except Exception:
        state.settings.set(model.id, current)
        raise
    state.scheduler.release(loaded)
    return JSONResponse(
        {"model": name, "context_size": loaded.context_size, "keep_alive": loaded.keep_alive}, status_code=202
    )


async def open_bridge(request: Request) -> JSONResponse:
    """Listen on the Docker bridge too, so that containers reach the runner (what `compose up` asks)."""
    try:
        listener = await state_of(request).listeners.open_bridge()
    except ListenError as error:
        raise APIError(409, str(error), code="no_bridge") from None
    info: ListenerInfo = listener.describe()
    return JSONResponse(info)


routes = [
    Route("/engines/status", engines_status, methods=["GET"]),
    Route("/engines/_bridge", open_bridge, methods=["POST"]),
    Route("/engines/ps", engines_ps, methods=["GET"]),
    Route("/engines/df", engines_df, methods=["GET"]),
    Route("/engines/unload", engines_unload, methods=["POST"]),
    Route("/engines/_configure", engines_configure, methods=["POST"]),
    Route(f"/engines/{BACKEND_NAME}/_configure", engines_configure, methods=["POST"]),
]
