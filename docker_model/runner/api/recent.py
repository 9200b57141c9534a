"""`GET /engines/requests`: the recent inference requests and their answers (`runner/recent_requests.py`),
as Docker Model Runner serves them: a JSON list with one entry per model (`?model=` picks one), or, asked
with `Accept: text/event-stream`, an event stream of each request as it is answered (`new_request`),
preceded with `?include_existing=true` by those kept already (`existing_request`), then `connected`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from docker_model.api_types import BackendConfig, ModelRequests, RequestRecord
from docker_model.runner.api.common import state_of
from docker_model.runner.api.inference import find_model
from docker_model.runner.shared.asgi import EventStreamResponse
from docker_model.runner.shared.error_body import APIError
from docker_model.runner.state import RunnerState

HEARTBEAT_SECONDS = 15.0  # an SSE comment this often keeps an idle stream's connection from timing out
CONNECTED = b'event: connected\ndata: {"status": "connected"}\n\n'


async def recent_requests(request: Request) -> JSONResponse | EventStreamResponse:
    state = state_of(request)
    name = request.query_params.get("model")
    model_id = (await find_model(request, name)).id if name else None
    existing = request.query_params.get("include_existing", "false")
    if existing not in ("true", "false"):
        raise APIError(400, "include_existing must be true or false", param="include_existing")
    if "text/event-stream" in request.headers.get("accept", ""):
        return EventStreamResponse(events(state, model_id, existing == "true"))
    if existing == "true":
        why = "include_existing applies to the event stream: ask with `Accept: text/event-stream`"
        raise APIError(400, why, param="include_existing")
    answer = [group(state, model, records) for model, records in state.recent_requests.records(model_id).items()]
    return JSONResponse(answer)


def group(state: RunnerState, model_id: str, records: list[RequestRecord]) -> ModelRequests:
    settings = state.settings.get(model_id)
    config: BackendConfig = {}
    if settings.context_size is not None:
        config["context-size"] = settings.context_size
    if settings.runtime_flags:
        config["runtime-flags"] = settings.runtime_flags
    return {"count": len(records), "model": model_id, "config": config, "records": records}


def event(kind: str, state: RunnerState, model_id: str, record: RequestRecord) -> bytes:
    """One record as an event: a list of one model with one record, the JSON list's shape."""
    return f"event: {kind}\ndata: {json.dumps([group(state, model_id, [record])])}\n\n".encode()


async def events(state: RunnerState, model_id: str | None, existing: bool) -> AsyncIterator[bytes]:
    store = state.recent_requests
    queue = store.follow()  # before the existing ones are sent, so that none is missed in between
    try:
        if existing:
            for model, records in store.records(model_id).items():
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
