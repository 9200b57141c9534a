"""Errors as the runner's routes return them: domain errors mapped to an HTTP status, in the one error
shape of `runner/shared/error_body.py` (`message`, `type`, `param`, string `code`)."""

from __future__ import annotations

import errno
import os
import shutil

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from docker_model import distribution
from docker_model.runner.fit import ModelDoesNotFit
from docker_model.runner.rpc_pool import EndpointBusy, EndpointFailed, PoolMisconfigured
from docker_model.runner.scheduler import ModelLoadError, ModelsBusyError
from docker_model.runner.shared.error_body import APIError, error_response
from docker_model.units import human_bytes

DOMAIN_STATUS: list[tuple[type[Exception], int]] = [
    (ModelLoadError, 500),
    (ModelsBusyError, 503),
    (ModelDoesNotFit, 507),
    (PoolMisconfigured, 409),  # the model's settings contradict its pool of RPC servers
    (EndpointFailed, 502),  # an RPC server of its pool is unreachable or speaks another protocol version
    (EndpointBusy, 503),  # an RPC server of its pool serves another client: retry later
    (distribution.ModelNotFoundError, 404),
    (distribution.InvalidReferenceError, 400),
    (distribution.UnsupportedFormatError, 400),
    (distribution.ConflictError, 409),
    (distribution.AuthenticationError, 401),
    (distribution.RegistryUnreachableError, 502),
    (distribution.DigestMismatchError, 502),
    (distribution.AnswerTooLargeError, 502),
    (distribution.RegistryError, 502),
]


# Errors a route may raise on purpose: answered without a traceback in the runner's log.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    APIError,
    HTTPException,
    distribution.DistributionError,
    *(error_type for error_type, _ in DOMAIN_STATUS),
)


def free_bytes(path: str) -> int:
    """Free space on the file system of `path` (or of its nearest existing parent folder)."""
    while path and not os.path.isdir(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path or ".").free


def storage_problem(error: OSError, where: str | None = None) -> str | None:
    """What a failed write to the disk means for the user, naming the path; None for other errors."""
    where = error.filename or where or "the model store"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left for {where} ({human_bytes(free_bytes(where))} free): free some, or move MODELS_PATH"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {where}: {error.strerror}; make it writable, or point MODELS_PATH elsewhere"
    return None


def message_of(error: Exception) -> str:
    """The one-line message of any error a route raised."""
    if isinstance(error, OSError) and (problem := storage_problem(error)):
        return problem
    return str(error) or type(error).__name__


def status_for(error: Exception) -> int:
    """The HTTP status of an error raised by a route or the distribution library (500 when unexpected)."""
    if isinstance(error, APIError):
        return error.status
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return 507
    if isinstance(error, HTTPException):
        return error.status_code
    for error_type, status in DOMAIN_STATUS:
        if isinstance(error, error_type):
            return status
    return 500


def response_for(error: Exception, path: str = "") -> JSONResponse:
    """The JSON error response of any error a route raised, in the shape of the dialect of `path`."""
    status = status_for(error)
    if isinstance(error, APIError):
        return error.response(path)
    if isinstance(error, distribution.ModelNotFoundError):
        return error_response(str(error), status, "model", "model_not_found", path)
    if isinstance(error, ModelDoesNotFit):
        return error_response(str(error), status, "model", "insufficient_memory", path)
    if isinstance(error, HTTPException):
        return error_response(str(error.detail), status, path=path)
    response = error_response(message_of(error), status, path=path)
    if isinstance(error, EndpointBusy):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


async def handle_error(request: Request, error: Exception) -> JSONResponse:
    return response_for(error, request.url.path)
