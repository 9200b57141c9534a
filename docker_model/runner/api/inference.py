"""OpenAI-compatible routes, under `/engines/v1`, `/engines/llama.cpp/v1` and the alias `/v1`.

Requests are routed by their `model` field: the scheduler loads the model (or reuses it) and the
model's worker process answers, on the client's own connection (see `runner/handover.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from docker_model.api_types import DMRMetadata, OpenAIModel
from docker_model.distribution import Model, ModelNotFoundError, Store
from docker_model.distribution.capabilities import stored_capabilities
from docker_model.reference import familiar_name
from docker_model.runner.api.common import parse_json_object, state_of
from docker_model.runner.metrics import MODEL_KEY
from docker_model.runner.scheduler import LoadedModel
from docker_model.runner.shared.error_body import APIError
from docker_model.runner.shared.wire import LOAD_HEADER

BYTES_PER_TOKEN = 4  # about, in a request body: what a load never shrinks the context below
PREFIXES = ("/engines/v1", "/engines/llama.cpp/v1", "/v1")
PRELOAD_ONLY_HEADER = "X-Preload-Only"  # Docker Model Runner's: `true` loads the model and answers nothing
ENDPOINTS = ("chat/completions", "completions", "embeddings")


def openai_model(model: Model, store: Store) -> OpenAIModel:
    """A stored model as OpenAI lists it, with Docker Model Runner's `dmr` block (may read the model's
    template and header, for its capabilities)."""
    name = familiar_name(model.tags[0]) if model.tags else model.id
    config = model.config
    dmr: DMRMetadata = {}
    if type(config.get("context_size")) is int:
        dmr["context_window"] = config["context_size"]
    for key in ("architecture", "parameters", "quantization", "size"):
        if config.get(key):
            dmr[key] = str(config[key])
    dmr["capabilities"] = stored_capabilities(model, store.blobs.path)
    return {"id": name, "object": "model", "created": model.created, "owned_by": "docker", "dmr": dmr}


async def list_models(request: Request) -> JSONResponse:
    store = state_of(request).store
    data = await asyncio.to_thread(lambda: [openai_model(model, store) for model in store.list()])
    return JSONResponse({"object": "list", "data": data})


async def get_model(request: Request) -> JSONResponse:
    model = await find_model(request, request.path_params["name"])
    store = state_of(request).store
    return JSONResponse(await asyncio.to_thread(openai_model, model, store))


async def find_model(request: Request, name: str) -> Model:
    try:
        return await asyncio.to_thread(state_of(request).store.get, name)
    except ModelNotFoundError:
        raise APIError(
            404, f"model not found: {name}; pull it first with `docker model pull {name}`", "model", "model_not_found"
        ) from None


async def complete(request: Request) -> ReleaseAfter:
    """A request to `.../v1/<endpoint>` (OpenAI's, Anthropic's), answered by the worker at `/v1/<endpoint>`."""
    return await hand_over(request, "/v1/" + request.url.path.split("/v1/", 1)[1])


async def json_body(request: Request) -> tuple[bytes, dict[str, Any]]:
    """The body, and it read as a JSON object."""
    body = await request.body()
    return body, parse_json_object(body)


async def hand_over(
    request: Request, worker_path: str, after: Callable[[LoadedModel], Awaitable[None]] | None = None
) -> ReleaseAfter:
    """Any dialect's inference request, routed by the `model` in its JSON body: the model is loaded if
    needed and its worker answers at `worker_path` on the client's own connection (told in LOAD_HEADER how
    long the load took). `after`: what to do with the model once the answer is sent."""
    preload = preload_only(request)
    body, payload = await json_body(request)
    name = payload.get("model")
    if not isinstance(name, str) or not name:
        raise APIError(400, 'missing "model": name the model to use, e.g. "ai/smollm2"', param="model")
    model = await find_model(request, name)
    scheduler = state_of(request).scheduler
    was_loaded = model.id in scheduler.loaded
    asked = time.perf_counter_ns()
    loaded = await scheduler.acquire(model, name, needed=len(body) // BYTES_PER_TOKEN)
    request.scope[MODEL_KEY] = loaded.name  # as its worker labels its own metrics
    load_ns = 0 if was_loaded else time.perf_counter_ns() - asked
    recent = state_of(request).recent_requests
    if preload:
        worker: ASGIApp = Response()
        record = None
    else:
        worker = handed = loaded.worker.hand_over(
            request, body, worker_path, [(LOAD_HEADER.encode(), str(load_ns).encode())]
        )
        record = recent.begin(model.id, request, payload)  # completed once the worker is done

    async def release() -> None:
        try:
            if record is not None:
                await recent.finished(record, handed.report, handed.failure)
        finally:
            scheduler.release(loaded)
            if after is not None:
                await after(loaded)

    return ReleaseAfter(worker, release)


def preload_only(request: Request) -> bool:
    """Whether the request only asks for its model to be loaded (`X-Preload-Only: true`)."""
    value = request.headers.get(PRELOAD_ONLY_HEADER)
    if value is None or value.lower() == "false":
        return False
    if value.lower() != "true":
        raise APIError(400, f"{PRELOAD_ONLY_HEADER} is true or false, not {value!r}", param=PRELOAD_ONLY_HEADER)
    return True


class ReleaseAfter:
    """Sends a response, then releases the model it came from: a stream holds its model until it ends."""

    def __init__(self, response: ASGIApp, release: Callable[[], Awaitable[None]]) -> None:
        self.response = response
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            await self.release()


routes = [
    route
    for prefix in PREFIXES
    for route in (
        Route(f"{prefix}/models", list_models, methods=["GET"]),
        Route(f"{prefix}/models/{{name:path}}", get_model, methods=["GET"]),
        *(Route(f"{prefix}/{endpoint}", complete, methods=["POST"]) for endpoint in ENDPOINTS),
    )
]
