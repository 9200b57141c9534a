"""What every route module needs: the runner's shared state and a request's JSON body."""

from __future__ import annotations

import json

from starlette.requests import Request

from docker_model.runner.api.errors import APIError
from docker_model.runner.state import RunnerState


async def read_json(request: Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise APIError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    return body


def state_of(request: Request) -> RunnerState:
    return request.app.state.runner
