"""Errors as the runner's routes return them: domain errors mapped to an HTTP status, in the one error
shape of `backend/errors.py` (`message`, `type`, `param`, string `code`)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from docker_model import distribution
from docker_model.runner.backend.errors import error_body, error_response

__all__ = ["APIError", "error_body", "handle_error", "response_for", "status_for"]

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

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


def status_for(error: Exception) -> int:
    """The HTTP status of an error raised by a route or the distribution library (500 when unexpected)."""
    if isinstance(error, APIError):
        return error.status
    if isinstance(error, HTTPException):
        return error.status_code
    for error_type, status in DISTRIBUTION_STATUS:
        if isinstance(error, error_type):
            return status
    return 500


def response_for(error: Exception) -> JSONResponse:
    """The JSON error response of any error a route raised."""
    status = status_for(error)
    if isinstance(error, APIError):
        return error_response(error.message, status, error.param, error.code)
    if isinstance(error, distribution.ModelNotFoundError):
        return error_response(str(error), status, "model", "model_not_found")
    if isinstance(error, HTTPException):
        return error_response(str(error.detail), status)
    return error_response(str(error) or type(error).__name__, status)


async def handle_error(request: Request, error: Exception) -> JSONResponse:
    return response_for(error)
