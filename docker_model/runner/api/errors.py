"""Errors as the API returns them: an HTTP status and an OpenAI-style JSON body naming the problem."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from docker_model import distribution

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    502: "upstream_error",
    503: "server_overloaded",
}

DISTRIBUTION_STATUS: list[tuple[type[Exception], int]] = [
    (distribution.ModelNotFoundError, 404),
    (distribution.InvalidReferenceError, 400),
    (distribution.UnsupportedFormatError, 400),
    (distribution.ConflictError, 409),
    (distribution.AuthenticationError, 401),
    (distribution.RegistryUnreachableError, 502),
    (distribution.DigestMismatchError, 502),
]


class APIError(Exception):
    """Raised by a route to answer with `status` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(status: int, message: str) -> dict:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "code": status}}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status)


def status_for(error: Exception) -> int:
    """The HTTP status of an error raised by the distribution library (500 when unexpected)."""
    if isinstance(error, APIError):
        return error.status
    for error_type, status in DISTRIBUTION_STATUS:
        if isinstance(error, error_type):
            return status
    return 500


async def handle_error(request: Request, error: Exception) -> JSONResponse:
    return error_response(status_for(error), str(error) or type(error).__name__)
