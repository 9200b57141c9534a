"""`GET /engines/requests`: the recent inference requests and their answers (`runner/recent_requests.py`),
as Docker Model Runner serves them: a JSON list with one entry per model (`?model=` picks one; a model not
stored has none), or, asked
with `Accept: text/event-stream`, an event stream of each request as it is answered (`new_request`),
preceded with `?include_existing=true` by those kept already (`existing_request`), then `connected`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from docker_model.api_types import ModelRequests, RequestRecord
from docker_model.distribution import ModelNotFoundError
from docker_model.runner.api.common import query_flag, state_of
from docker_model.runner.model_settings import backend_config
from docker_model.runner.shared.asgi import EventStreamResponse
from docker_model.runner.shared.error_body import APIError
from docker_model.runner.state import RunnerState

HEARTBEAT_SECONDS = 15.0  # an SSE comment this often keeps an idle stream's connection from timing out
CONNECTED = b'event: connected\ndata: {"status": "connected"}\n\n'
NO_MODEL = ""  # the model ID of `?model=` naming a model not stored: no record has it


async def recent_requests(request: Request) -> JSONResponse | EventStreamResponse:
    state = state_of(request)
    existing = query_flag(request, "include_existing")
    name = request.query_params.get("model")
    model_id = await stored_id(state, name) if name else None
    if "text/event-stream" in request.headers.get("accept", ""):
        return EventStreamResponse(events(state, model_id, existing))
    if existing:
        why = "include_existing applies to the event stream: ask with `Accept: text/event-stream`"
        raise APIError(400, why, param="include_existing")
    kept = await state.recent_requests.snapshot(model_id)
    return JSONResponse([group(state, model, records) for model, records in kept.items()])


async def stored_id(state: RunnerState, name: str) -> str:
    """The ID of the model `name` names; a model the store does not hold has no requests, as in Docker Model
    Runner: an ID no record has."""
    try:
        return (await asyncio.to_thread(state.store.get, name)).id
    except ModelNotFoundError:
        return NO_MODEL


def group(state: RunnerState, model_id: str, records: list[RequestRecord]) -> ModelRequests:
    config = backend_config(state.settings.get(model_id))
    return {"count": len(records), "model": model_id, "config": config, "records": records}


def event(kind: str, state: RunnerState, model_id: str, record: RequestRecord) -> bytes:
    """One record as an event: a list of one model with one record, the JSON list's shape."""
    return f"event: {kind}\ndata: {json.dumps([group(state, model_id, [record])])}\n\n".encode()


async def events(state: RunnerState, model_id: str | None, existing: bool) -> AsyncIterator[bytes]:
    store = state.recent_requests
    queue = store.follow()  # before the existing ones are sent, so that none is missed in between
    try:
        if existing:
            for model, records in (await store.snapshot(model_id)).items():
                for record in records:
                    yield event("existing_request", state, model, record)
        yield CONNECTED
        while True:
            try:
                answered = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except asyncio.TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if model_id is None or answered.model_id == model_id:
                yield event("new_request", state, answered.model_id, answered.entry)
    finally:
        store.unfollow(queue)


routes = [Route("/engines/requests", recent_requests, methods=["GET"])]
