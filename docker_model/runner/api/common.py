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


MAX_JSON_DEPTH = 64  # objects and arrays inside each other: real requests nest a handful
MAX_NUMBER = 2**64  # past any integer field (a seed is 64 bits at most)


class _BadNumber(ValueError):
    pass


def _integer(text: str) -> int:
    value = int(text)
    if abs(value) >= MAX_NUMBER:
        raise _BadNumber(f"the number {text[:24]}... is too large: integers here fit in 64 bits")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _BadNumber(f"the number {text[:24]} is too large for a 64-bit float")
    return value


def _not_a_number(text: str) -> float:
    raise _BadNumber(f"{text} is not a number JSON allows")


def depth(value: Any) -> int:
    """How deep objects and arrays nest in `value` (a scalar is 0)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, level = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in children)
    return deepest


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body read as a JSON object, with numbers and nesting bounded: NaN, infinities and
    integers past 64 bits, or nesting past MAX_JSON_DEPTH, are a 400 naming the limit."""
    too_deep = f"the request body nests JSON too deeply: the limit is {MAX_JSON_DEPTH} levels"
    try:
        value = json.loads(raw, parse_int=_integer, parse_float=_finite, parse_constant=_not_a_number)
    except RecursionError:
        raise APIError(400, too_deep) from None
    except _BadNumber as error:
        raise APIError(400, f"the request body is not valid: {error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise APIError(400, "the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise APIError(400, "the request body must be a JSON object")
    if depth(value) > MAX_JSON_DEPTH:
        raise APIError(400, too_deep)
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


def state_of(request: Request) -> RunnerState:
    return request.app.state.runner
