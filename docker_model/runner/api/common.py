"""What every route module needs: the runner's shared state and a request's JSON body, validated."""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any, TypeVar, cast

import pydantic_core
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request

from docker_model.runner.shared.error_body import APIError
from docker_model.runner.state import RunnerState

Body = TypeVar("Body")


MAX_JSON_DEPTH = 200  # the limit of pydantic-core's parser: real requests nest a handful of levels


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body read as a JSON object by pydantic-core's parser (faster than the standard library's,
    and bounded in depth): NaN and infinities, which JSON does not have, and nesting past MAX_JSON_DEPTH
    are a 400 naming the problem. (Integers past 64 bits are refused field by field: `worker/schemas.py`.)"""
    try:
        value = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as error:
        if "recursion limit" in str(error):
            why = f"the request body nests JSON too deeply: the limit is {MAX_JSON_DEPTH} levels"
        elif any(word in raw for word in (b"NaN", b"Infinity")):
            why = f"the request body is not valid JSON: NaN and Infinity are not JSON numbers ({error})"
        else:
            why = f"the request body is not valid JSON: {error}"
        raise APIError(400, why) from None
    if not isinstance(value, dict):
        raise APIError(400, "the request body must be a JSON object")
    return value


async def read_json(request: Request) -> dict[str, Any]:
    return parse_json_object(await request.body())


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


# A query flag as Docker Model Runner reads one (Go's strconv.ParseBool, any case); the name alone is true.
FLAG_VALUES = {"": True, "1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


def query_flag(request: Request, name: str) -> bool:
    """The boolean query parameter `name`, false when absent; a value that is not a boolean is a 400 naming
    it, never read as false."""
    value = request.query_params.get(name)
    if value is None:
        return False
    flag = FLAG_VALUES.get(value.lower())
    if flag is None:
        raise APIError(400, f"{name}={value!r} is not a boolean: use {name}=true or {name}=false", param=name)
    return flag


def state_of(request: Request) -> RunnerState:
    return request.app.state.runner
