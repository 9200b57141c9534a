"""What each model loads with and why (`GET /engines/_configure`), and whether a model fits in the memory
the runner may use, at its own context or another (`GET /engines/_fit`)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from docker_model.api_types import ConfiguredModels, FitReport, MemoryParts, ModelSettingsInfo
from docker_model.distribution import Model
from docker_model.distribution.capabilities import backend_mode
from docker_model.distribution.config_fields import trained_context_length
from docker_model.reference import familiar_name
from docker_model.runner.api.common import state_of
from docker_model.runner.api.engines import BACKEND_NAME
from docker_model.runner.fit import Fit, ModelDoesNotFit
from docker_model.runner.memory_estimate import MemoryEstimate
from docker_model.runner.model_settings import ModelSettings, backend_config, effective_keep_alive
from docker_model.runner.rpc_pool import PoolError, resolve
from docker_model.runner.shared.error_body import APIError


def name_of(model: Model) -> str:
    return familiar_name(model.tags[0]) if model.tags else model.id


async def configured_settings(request: Request) -> JSONResponse:
    """Every model's settings (or the one `?model=` names): configured, in effect, and why. Docker Model
    Runner lists only the models `configure` set something for; this lists them all."""
    state = state_of(request)
    name = request.query_params.get("model")
    models = [await asyncio.to_thread(state.store.get, name)] if name else await asyncio.to_thread(state.store.list)
    configured: ConfiguredModels = [await _settings_info(request, model) for model in models]
    return JSONResponse(configured)


async def _settings_info(request: Request, model: Model) -> ModelSettingsInfo:
    state = state_of(request)
    settings = state.settings.get(model.id)
    try:
        found = await state.scheduler.preview(model, settings)
        fit: Fit | None = found
        reason = found.reason
    except ModelDoesNotFit as error:
        fit, reason = None, f"does not fit: {error}"
    except PoolError as error:
        fit, reason = None, f"cannot load now: {error}"
    try:
        pool = resolve(settings, state.scheduler.rpc_servers)
    except PoolError:
        pool = None  # the reason says why
    mode = await asyncio.to_thread(backend_mode, model, state.store.blobs.path)
    return {
        "Backend": BACKEND_NAME,
        "Model": name_of(model),
        "ModelID": model.id,
        "Mode": mode,
        "Config": backend_config(settings),
        "context_size": fit.ctx_per_seq if fit else None,
        "sequences": fit.parallel if fit else None,
        "reason": reason,
        "loaded": model.id in state.scheduler.loaded,
        "keep_alive": effective_keep_alive(settings),
        "rpc": pool.info() if pool else None,
    }


async def model_fit(request: Request) -> JSONResponse:
    """`?model=NAME`, optionally `&context_size=N` (as if configured so: never shrunk)."""
    state = state_of(request)
    name = request.query_params.get("model")
    if not name:
        raise APIError(400, "name the model: /engines/_fit?model=NAME", param="model")
    model = await asyncio.to_thread(state.store.get, name)
    settings = state.settings.get(model.id)
    asked = request.query_params.get("context_size")
    if asked is not None:
        if not asked.isdigit() or int(asked) < 1:
            raise APIError(400, "context_size must be a positive whole number of tokens", param="context_size")
        settings = replace(settings, context_size=int(asked))
    report = _facts(model, settings)
    try:
        fit = await state.scheduler.preview(model, settings)
    except (ModelDoesNotFit, PoolError) as error:
        report["reason"] = str(error)
    else:
        report["fits"], report["reason"], report["memory"] = True, fit.reason, _parts(fit.estimate)
        report["context_size"], report["sequences"] = fit.ctx_per_seq, fit.parallel
    report["room"] = state.scheduler.room(model).ram
    return JSONResponse(report)


def _facts(model: Model, settings: ModelSettings) -> FitReport:
    config = model.config
    packaged = config.get("context_size")
    return {
        "model": model.id,
        "name": name_of(model),
        "architecture": str(config.get("architecture", "")),
        "parameters": str(config.get("parameters", "")),
        "quantization": str(config.get("quantization", "")),
        "size": str(config.get("size", "")),
        "trained_context": trained_context_length(config),
        "packaged_context": int(packaged) if packaged else None,
        "configured_context": settings.context_size,
        "fits": False,
        "context_size": settings.context_size or 0,
        "sequences": 0,
        "reason": "",
        "memory": None,
        "room": None,
    }


def _parts(estimate: MemoryEstimate) -> MemoryParts:
    return {
        "weights": estimate.weights_ram + estimate.weights_vram,
        "kv_cache": estimate.kv_cache,
        "compute": estimate.compute,
        "overhead": estimate.overhead,
        "total": estimate.total,
    }


routes = [
    Route("/engines/_configure", configured_settings, methods=["GET"]),
    Route("/engines/_fit", model_fit, methods=["GET"]),
]
