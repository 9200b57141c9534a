"""ASGI middleware: refuse foreign browser origins, and bodies over the size limit."""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docker_model import settings
from docker_model.runner.shared.error_body import error_body

MAX_BODY_BYTES = 10 * 1024 * 1024
UNLIMITED_PATHS = ("/models/load",)  # model archives are large by nature


async def send_error(send: Send, status: int, message: str, path: str) -> None:
    """An error in the shape of the dialect of `path`."""
    body = json.dumps(error_body(message, status, path=path)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class OriginGuard:
    """Refuses (403) browser requests from origins other than localhost, unless `DMR_ORIGINS` lists them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.allowed = {origin.strip().rstrip("/") for origin in os.environ.get("DMR_ORIGINS", "").split(",") if origin}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            origin = dict(scope["headers"]).get(b"origin", b"").decode("latin-1")
            if origin and not self.is_allowed(origin):
                why = f"origin {origin} is not allowed; add it to DMR_ORIGINS to allow it"
                await send_error(send, 403, why, scope["path"])
                return
        await self.app(scope, receive, send)

    def is_allowed(self, origin: str) -> bool:
        return (
            "*" in self.allowed
            or origin.rstrip("/") in self.allowed
            or urlsplit(origin).hostname in settings.LOCAL_HOSTS
        )


class BodyLimit:
    """Answers 413 when a request body passes MAX_BODY_BYTES, whether declared or streamed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        too_large = f"request body too large: the limit is {MAX_BODY_BYTES // (1024 * 1024)} MiB"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await send_error(send, 413, too_large, scope["path"])
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise BodyTooLarge(too_large)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge as error:
            await send_error(send, 413, str(error), scope["path"])


class BodyTooLarge(Exception):
    pass
