"""OpenAI-style error objects, shared by the worker's API and the runner's hand-over."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

_TYPES = {400: "invalid_request_error", 404: "not_found_error", 413: "invalid_request_error"}


def error_body(message: str, status: int = 500, param: str | None = None, code: str | None = None) -> dict:
    """`{"error": {...}}` as OpenAI returns it; the type follows from the HTTP status."""
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(message: str, status: int = 500, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, status, param, code), status_code=status)


def sse_error_event(message: str, status: int = 500, code: str | None = None) -> bytes:
    """An error inside an SSE stream whose 200 headers are already sent."""
    body: dict[str, Any] = error_body(message, status, code=code)
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class RequestError(Exception):
    """A client error that the API turns into an OpenAI-style error response."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code

    def response(self) -> JSONResponse:
        return error_response(self.message, self.status, self.param, self.code)
