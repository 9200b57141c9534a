"""What every route module needs: the runner's shared state and a request's JSON body, validated."""

from __future__ import annotations

import functools
import json
from collections.abc import Hashable
from typing import Any, TypeVar, cast

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request

from docker_model.runner.shared.error_body import APIError
from docker_model.runner.state import RunnerState

Body = TypeVar("Body")


async def read_json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise APIError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    return body


@functools.cache
def _adapter(shape: Any) -> TypeAdapter[Any]:
    return TypeAdapter(shape)  # the shape's own `__pydantic_config__` forbids unknown fields


async def read_body(request: Request, shape: type[Body]) -> Body:
    """The JSON body checked against `shape` (a TypedDict of `docker_model.api_types`): a field of the
    wrong type, or one the route does not know, is a 400 that names it."""
    body = await read_json(request)
    try:
        validated: Body = _adapter(cast(Hashable, shape)).validate_python(body)
        return validated
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        problem = "is not a field of this request" if first["type"] == "extra_forbidden" else first["msg"]
        raise APIError(400, f"{where!r} {problem}", param=where) from None


def state_of(request: Request) -> RunnerState:
    return request.app.state.runner
