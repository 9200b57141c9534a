"""ASGI middleware: bodies over the size limit, and the error answer middleware sends (`access.py` guards
who may call)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docker_model.runner.shared.error_body import error_body

MAX_BODY_BYTES = 10 * 1024 * 1024
UNLIMITED_PATHS = ("/models/load",)  # model archives are large by nature


async def send_error(
    send: Send, status: int, message: str, path: str, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """An error in the shape of the dialect of `path`."""
    body = json.dumps(error_body(message, status, path=path)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
