"""OpenAI's Responses API under the OpenAI prefixes (`/engines/v1`, `/engines/llama.cpp/v1`, `/v1`).

A new response is routed by its body's `model`, like any inference request. A stored one
(`GET`/`DELETE .../responses/{id}`) lives in the memory of the worker that made it: its ID names that
model (`shared/response_ids.py`), and only a loaded model is asked; nothing is loaded for it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from docker_model.runner.api.common import state_of
from docker_model.runner.api.inference import PREFIXES, ReleaseAfter, complete
from docker_model.runner.shared.error_body import APIError
from docker_model.runner.shared.response_ids import model_of, not_found_message

WORKER_PATH = "/v1/responses"


async def stored(request: Request) -> ReleaseAfter:
    """A stored response, from the loaded model that made it."""
    response_id = request.path_params["response_id"]
    scheduler = state_of(request).scheduler
    owner = model_of(response_id)
    found = next((m for m in scheduler.running() if owner and m.model.short_id == owner and m.worker.alive), None)
    if found is None:
        raise APIError(404, not_found_message(response_id), param="response_id")
    loaded = await scheduler.acquire(found.model, found.name)
    worker = loaded.worker.hand_over(request, b"", f"{WORKER_PATH}/{response_id}")

    async def release() -> None:
        scheduler.release(loaded)

    return ReleaseAfter(worker, release)


routes = [
    route
    for prefix in PREFIXES
    for route in (
        Route(f"{prefix}/responses", complete, methods=["POST"]),
        Route(f"{prefix}/responses/{{response_id}}", stored, methods=["GET", "DELETE"]),
    )
]
