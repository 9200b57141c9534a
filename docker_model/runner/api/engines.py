"""Runner control routes (`/engines/...`): status, ps, df, unload, configure, and opening the bridge."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import shlex
from datetime import datetime, timezone
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from docker_model.api_types import (
    ConfigureRequest,
    DiskUsage,
    ListenerInfo,
    RpcShare,
    RunningModel,
    UnloadRequest,
    UnloadResult,
)
from docker_model.distribution import ModelNotFoundError
from docker_model.distribution.capabilities import backend_mode
from docker_model.distribution.config_fields import trained_context_length
from docker_model.reference import familiar_name
from docker_model.runner.api.common import read_body, state_of
from docker_model.runner.api.rpc import rpc_shares
from docker_model.runner.listeners import ListenError
from docker_model.runner.model_settings import ModelSettings, effective_keep_alive
from docker_model.runner.rpc_pool import PoolMisconfigured, configured, resolve
from docker_model.runner.runtime_flags import check_runtime_flags
from docker_model.runner.scheduler import LoadedModel
from docker_model.runner.shared.error_body import APIError
from docker_model.units import go_duration, parse_duration

BACKEND_NAME = "llama.cpp"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # how Docker Model Runner (Go) writes "never": a model still loading


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
    """The loaded models, then those being loaded, with Docker Model Runner's fields and this runner's."""
    state = state_of(request)
    scheduler = state.scheduler
    loaded_models = scheduler.running()
    paths = state.store.blobs.path
    modes = await asyncio.to_thread(lambda: [backend_mode(loaded.model, paths) for loaded in loaded_models])
    shares = await asyncio.gather(*(rpc_shares(loaded) for loaded in loaded_models))
    running = [_running(*each) for each in zip(loaded_models, modes, shares, strict=True)]
    loading_ids = [i for i, task in scheduler.loading.items() if not task.done() and i not in scheduler.loaded]
    for model_id in loading_ids:
        try:
            model = await asyncio.to_thread(state.store.get, model_id)
        except ModelNotFoundError:  # removed while it loads: its load fails
            continue
        name = familiar_name(model.tags[0]) if model.tags else model_id  # as a loaded model's is shown
        mode = await asyncio.to_thread(backend_mode, model, paths)
        running.append(_loading(model_id, name, mode, state.settings.get(model_id)))
    return JSONResponse(running)


def _running(loaded: LoadedModel, mode: str, shares: list[RpcShare]) -> RunningModel:
    return {
        "model_name": loaded.name,
        "backend_name": BACKEND_NAME,
        "mode": mode,
        "last_used": datetime.fromtimestamp(loaded.last_used, timezone.utc).isoformat().replace("+00:00", "Z"),
        "in_use": loaded.in_flight > 0,
        "loading": False,
        "keep_alive": go_duration(loaded.keep_alive),
        "model_id": loaded.model.id,
        "until": None if loaded.expires_at is None else int(loaded.expires_at),
        "context_size": loaded.context_size,
        "sequences": loaded.fit.parallel,
        "context_reason": loaded.fit.reason,
        "memory_estimated": loaded.fit.estimate.ram,
        "memory_measured": loaded.worker.rss_bytes(),
        "pid": loaded.worker.pid,
        "rpc": shares,
    }


def _loading(model_id: str, name: str, mode: str, settings: ModelSettings) -> RunningModel:
    """A model whose worker is starting: what it will load with is not known yet."""
    return {
        "model_name": name,
        "backend_name": BACKEND_NAME,
        "mode": mode,
        "last_used": GO_ZERO_TIME,
        "in_use": False,
        "loading": True,
        "keep_alive": go_duration(effective_keep_alive(settings)),
        "model_id": model_id,
        "until": None,
        "context_size": None,
        "sequences": None,
        "context_reason": None,
        "memory_estimated": None,
        "memory_measured": None,
        "pid": None,
        "rpc": [],
    }


async def engines_df(request: Request) -> JSONResponse:
    store = state_of(request).store
    models, engine = await asyncio.gather(asyncio.to_thread(store.disk_usage), asyncio.to_thread(engine_disk_usage))
    usage: DiskUsage = {"models_disk_usage": models, "default_backend_disk_usage": engine}
    return JSONResponse(usage)


async def engines_unload(request: Request) -> JSONResponse:
    body = await read_body(request, UnloadRequest)
    state = state_of(request)
    backend = body.get("backend")
    if backend and backend != BACKEND_NAME:  # Docker Model Runner's filter: no model runs on another backend
        raise APIError(400, f"unknown backend {backend!r}: this runner has one, {BACKEND_NAME}", param="backend")
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


def checked_runtime_flags(flags: list[str], field: str = "runtime-flags") -> list[str]:
    try:
        return list(check_runtime_flags(flags))
    except ValueError as error:
        raise APIError(400, str(error), param=field) from None


def requested_runtime_flags(body: ConfigureRequest) -> list[str] | None:
    """The runtime flags a configure body sets (None: it sets none), given as a list or, as Compose's provider
    sends them, as one shell-quoted string (`raw-runtime-flags`). As Docker Model Runner (Go's `omitempty`)
    reads them, an empty string or list counts as not given beside the other, and a non-empty list is used
    before the string; both non-empty is refused. An empty string alone sets none; an empty list alone
    clears them (`docker model configure MODEL --`)."""
    keys = ("runtime-flags", "runtime_flags", "raw-runtime-flags")
    given = [key for key in keys if body.get(key)]
    if len(given) > 1:
        raise APIError(400, f"give the runtime flags once: {' and '.join(given)} were both given", param=given[-1])
    raw = body.get("raw-runtime-flags")
    if not raw:
        lists = [flags for flags in (body.get("runtime-flags"), body.get("runtime_flags")) if flags is not None]
        return checked_runtime_flags(max(lists, key=len)) if lists else None  # the non-empty one, if any
    try:
        split = shlex.split(raw)
    except ValueError as error:  # an unclosed quote
        raise APIError(
            400,
            f'"raw-runtime-flags" is not a valid shell-quoted string ({error}): close its quotes',
            param="raw-runtime-flags",
        ) from None
    return checked_runtime_flags(split, "raw-runtime-flags")


def requested_rpc(body: ConfigureRequest, current: str | None) -> str | None:
    """The pool of RPC servers a configure body sets: `HOST:PORT[@SIZE][,...]`, "none" (no pool, even the
    runner-wide one) or "default" (forget it); `current` when the body has none."""
    if body.get("rpc") is None:
        return current
    try:
        return configured(str(body["rpc"]))
    except ValueError as error:
        raise APIError(400, str(error), param="rpc") from None


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
    flags = requested_runtime_flags(body)
    runtime_flags = current.runtime_flags if flags is None else flags
    wanted = ModelSettings(context_size, keep_alive, runtime_flags, requested_rpc(body, current.rpc))
    try:
        resolve(wanted, state.scheduler.rpc_servers)
    except PoolMisconfigured as error:
        raise APIError(400, str(error), param="rpc" if body.get("rpc") is not None else "runtime-flags") from None
    state.settings.set(model.id, wanted)
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
