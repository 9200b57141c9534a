"""Error objects of the runner and its workers: one table of statuses, one shape per API dialect.

OpenAI's routes (and the runner's own): `{"error": {"message", "type", "param", "code"}}`, `type` and the
default `code` following from the HTTP status, `code` always a string (OpenAI's own, such as
`context_length_exceeded`, where one applies). Ollama's routes (`/api/...`): `{"error": message}`.
Anthropic's (`/v1/messages`, `/anthropic/...`): `{"type": "error", "error": {"type", "message"}}`.
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


# status -> Anthropic's error type
_ANTHROPIC_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}
ANTHROPIC_PATHS = ("/anthropic/", "/v1/messages")
OLLAMA_PREFIX = "/api/"


def dialect_of(path: str) -> str:
    """ "ollama", "anthropic" or "openai": whose error shape a request to `path` gets."""
    if path.startswith(OLLAMA_PREFIX):
        return "ollama"
    return "anthropic" if path.startswith(ANTHROPIC_PATHS) else "openai"


def error_body(
    message: str, status: int = 500, param: str | None = None, code: str | None = None, path: str = ""
) -> dict:
    """The error object a request to `path` gets (OpenAI's when no path is given)."""
    dialect = dialect_of(path)
    if dialect == "ollama":
        return {"error": message}
    if dialect == "anthropic":
        kind = _ANTHROPIC_KINDS.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind, default_code = _KINDS.get(status, ("server_error", "internal_error") if status >= 500 else _KINDS[400])
    return {"error": {"message": message, "type": kind, "param": param, "code": code or default_code}}


def error_response(
    message: str, status: int = 500, param: str | None = None, code: str | None = None, path: str = ""
) -> JSONResponse:
    return JSONResponse(error_body(message, status, param, code, path), status_code=status)


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

    def response(self, path: str = "") -> JSONResponse:
        return error_response(self.message, self.status, self.param, self.code, path)
