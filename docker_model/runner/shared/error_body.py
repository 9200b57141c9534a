"""OpenAI-style error objects, the one shape of every error of the runner and its workers.

`{"error": {"message", "type", "param", "code"}}`: `type` and the default `code` follow from the HTTP
status; `code` is always a string (OpenAI's own, such as `context_length_exceeded`, where one applies).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

# status -> (type, default code)
_KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "unauthorized"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("conflict_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    500: ("server_error", "internal_error"),
    502: ("upstream_error", "upstream_error"),
    503: ("server_overloaded", "overloaded"),
    507: ("server_error", "insufficient_storage"),
}


def error_body(message: str, status: int = 500, param: str | None = None, code: str | None = None) -> dict:
    """`{"error": {...}}` as OpenAI returns it."""
    kind, default_code = _KINDS.get(status, ("server_error", "internal_error") if status >= 500 else _KINDS[400])
    return {"error": {"message": message, "type": kind, "param": param, "code": code or default_code}}


def error_response(message: str, status: int = 500, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, status, param, code), status_code=status)


def sse_error_event(message: str, status: int = 500, code: str | None = None) -> bytes:
    """An error inside an SSE stream whose 200 headers are already sent."""
    body: dict[str, Any] = error_body(message, status, code=code)
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class APIError(Exception):
    """Raised by a route of the runner or of a worker to answer with `status` and a one-line message."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def response(self) -> JSONResponse:
        return error_response(self.message, self.status, self.param, self.code)
