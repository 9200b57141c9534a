"""Ollama's API under `/api/`, as Docker Model Runner serves it: the store and what is loaded (`version`,
`tags`, `ps`, `show`, `pull`, `delete`, `copy`) answered here, inference (`chat`, `generate`, `embed`,
`embeddings`) handed to the model's worker (`worker/dialects/ollama.py`). Errors are Ollama's
`{"error": message}` (see `shared/error_body.py`). Model names resolve as everywhere else.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from docker_model import __version__
from docker_model.api_types import Capability, ProgressLine
from docker_model.distribution import Model, ProgressEvent
from docker_model.distribution.capabilities import stored_capabilities
from docker_model.reference import familiar_name, parse_reference
from docker_model.runner.api.common import state_of
from docker_model.runner.api.inference import find_model, hand_over, json_body
from docker_model.runner.api.models import remove_model
from docker_model.runner.api.progress import stream_job
from docker_model.runner.scheduler import LoadedModel
from docker_model.runner.shared.error_body import APIError
from docker_model.units import parse_duration


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def _name(model: Model) -> str:
    return familiar_name(model.tags[0]) if model.tags else model.id


def _details(model: Model) -> dict[str, Any]:
    config = model.config
    family = str(config.get("architecture", ""))
    return {
        "parent_model": "",
        "format": str(config.get("format", "gguf")),
        "family": family,
        "families": [family] if family else None,
        "parameter_size": str(config.get("parameters", "")),
        "quantization_level": str(config.get("quantization", "")),
    }


def _entry(model: Model, tag: str | None = None) -> dict[str, Any]:
    """A model as Ollama lists it, under `tag` (its first tag when None)."""
    name = familiar_name(tag) if tag else _name(model)
    return {
        "name": name,
        "model": name,
        "modified_at": _iso(model.created),
        "size": model.size,
        "digest": model.id.removeprefix("sha256:"),
        "details": _details(model),
    }


def _string_field(payload: dict[str, Any], field: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise APIError(400, f'missing "{field}": name the model', param=field)
    return value


async def version(request: Request) -> JSONResponse:
    return JSONResponse({"version": __version__})


async def tags(request: Request) -> JSONResponse:
    models = await asyncio.to_thread(state_of(request).store.list)
    entries = [_entry(model, tag) for model in models for tag in model.tags or [None]]  # type: ignore[list-item]
    return JSONResponse({"models": entries})


async def ps(request: Request) -> JSONResponse:
    running = state_of(request).scheduler.running()
    return JSONResponse({"models": [_running(loaded) for loaded in running]})


def _running(loaded: LoadedModel) -> dict[str, Any]:
    expires = loaded.expires_at
    return {
        **_entry(loaded.model, loaded.name),
        "expires_at": _iso(expires) if expires is not None else "9999-12-31T23:59:59Z",
        "size_vram": loaded.fit.estimate.vram,
        "context_length": loaded.context_size,
    }


OLLAMA_CAPABILITY: dict[Capability, str] = {  # this runner's names -> Ollama's
    "chat": "completion",
    "embeddings": "embedding",
    "tools": "tools",
    "vision": "vision",
    "reasoning": "thinking",
}


async def show(request: Request) -> JSONResponse:
    _, payload = await json_body(request)
    model = await find_model(request, _string_field(payload, "model"))
    store = state_of(request).store
    bundle = await asyncio.to_thread(store.bundle, model)
    template = bundle.template_path.read_text() if bundle.template_path else ""
    metadata = model.config.get("gguf") or {}
    found = await asyncio.to_thread(stored_capabilities, model, store.blobs.path)
    capabilities = [OLLAMA_CAPABILITY[name] for name in found]
    return JSONResponse(
        {
            "modelfile": "",
            "parameters": "",
            "template": template,
            "details": _details(model),
            "model_info": metadata,
            "capabilities": capabilities,
            "modified_at": _iso(model.created),
        }
    )


async def pull(request: Request) -> Response:
    _, payload = await json_body(request)
    source = _string_field(payload, "model")
    parse_reference(source)
    if payload.get("insecure"):
        raise APIError(400, "insecure is not supported: registries are reached over HTTPS", param="insecure")
    registry = state_of(request).registry

    def job(progress: Callable[[ProgressEvent], None], cancel: threading.Event) -> str:
        registry.pull(source, progress=progress, cancel=cancel)
        return "success"

    streamed = await stream_job("pulling", job, _pull_line, request.url.path)
    if payload.get("stream", True):
        return streamed
    return await _last_line(streamed)


def _pull_line(line: ProgressLine) -> dict[str, Any]:
    """A progress line of the runner's as Ollama's pull writes it."""
    if line["type"] == "error":
        return {"error": line["message"]}
    layer = line.get("layer")
    if line["type"] != "progress" or layer is None:
        return {"status": "success"}
    digest = layer["id"]
    return {
        "status": f"pulling {digest.removeprefix('sha256:')[:12]}",
        "digest": digest,
        "total": layer["size"],
        "completed": layer["current"],
    }


async def _last_line(response: Response) -> Response:
    """The last line of a streamed job, as one JSON answer (a 500 when it is an error)."""
    body_iterator = getattr(response, "body_iterator", None)
    if body_iterator is None:
        return response  # it failed before streaming: already the error answer
    last = b"{}"
    async for chunk in body_iterator:
        last = chunk if isinstance(chunk, bytes) else chunk.encode()
    result = json.loads(last)
    return JSONResponse(result, status_code=500 if "error" in result else 200)


async def delete(request: Request) -> Response:
    _, payload = await json_body(request)
    await remove_model(state_of(request), _string_field(payload, "model"), force=False)
    return Response(status_code=200)


async def copy(request: Request) -> Response:
    _, payload = await json_body(request)
    source, destination = _string_field(payload, "source"), _string_field(payload, "destination")
    await find_model(request, source)
    target = str(parse_reference(destination))
    await asyncio.to_thread(state_of(request).store.tag, source, target)
    return Response(status_code=200)


def keep_alive_of(payload: dict[str, Any]) -> float | None:
    """A request's `keep_alive` in seconds (negative: forever), None when it has none."""
    value = payload.get("keep_alive")
    if value is None:
        return None
    try:
        return float(value) if isinstance(value, int | float) else parse_duration(str(value))
    except ValueError as error:
        raise APIError(400, f"keep_alive: {error}", param="keep_alive") from None


def inference(worker_path: str, text_field: str | None) -> Callable[[Request], Any]:
    """A route handed to the model's worker at `worker_path`; the request's keep_alive is applied once the
    answer is sent. A chat or generate request without messages or prompt only loads (or, with keep_alive
    0, unloads) the model, as Ollama's do."""

    async def route(request: Request) -> Any:
        _, payload = await json_body(request)
        keep_alive = keep_alive_of(payload)
        if text_field is not None and not payload.get(text_field):
            return await _load_only(request, payload, keep_alive, text_field)

        async def after(loaded: LoadedModel) -> None:
            await _keep_alive(request, loaded, keep_alive)

        return await hand_over(request, worker_path, after)

    return route


async def _keep_alive(request: Request, loaded: LoadedModel, keep_alive: float | None) -> None:
    if keep_alive is None:
        return
    loaded.keep_alive = keep_alive
    if keep_alive == 0 and loaded.in_flight == 0:
        await state_of(request).scheduler.unload([loaded.model.id])


async def _load_only(request: Request, payload: dict[str, Any], keep_alive: float | None, field: str) -> JSONResponse:
    name = _string_field(payload, "model")
    model = await find_model(request, name)
    scheduler = state_of(request).scheduler
    if keep_alive == 0:
        await scheduler.unload([model.id])
        reason = "unload"
    else:
        loaded = await scheduler.acquire(model, name)
        scheduler.release(loaded)
        await _keep_alive(request, loaded, keep_alive)
        reason = "load"
    answer = {"role": "assistant", "content": ""} if field == "messages" else ""
    key = "message" if field == "messages" else "response"
    created = _iso(datetime.now(timezone.utc).timestamp())
    return JSONResponse({"model": name, "created_at": created, key: answer, "done": True, "done_reason": reason})


routes = [
    Route("/api/version", version, methods=["GET"]),
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/ps", ps, methods=["GET"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/pull", pull, methods=["POST"]),
    Route("/api/delete", delete, methods=["DELETE"]),
    Route("/api/copy", copy, methods=["POST"]),
    Route("/api/chat", inference("/api/chat", "messages"), methods=["POST"]),
    Route("/api/generate", inference("/api/generate", "prompt"), methods=["POST"]),
    Route("/api/embed", inference("/api/embed", None), methods=["POST"]),
    Route("/api/embeddings", inference("/api/embeddings", None), methods=["POST"]),
]
