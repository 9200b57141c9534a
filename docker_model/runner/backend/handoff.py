"""Handing a client's connection over to a model's worker, so that the worker answers it directly.

The runner reads the request and picks the worker, then sends the connection's socket (SCM_RIGHTS) and
the request over the worker's hand-over socket, and steps aside: tokens go from the worker to the client
with no relay through the runner, whose process would otherwise wake for every token and take a core
from llama.cpp. The worker answers with `Connection: close`, so the client's next request comes back to
the runner. On the control connection the worker reports when its response started and when it is done;
if the worker dies before that, the runner answers the client itself: a JSON 500, or, for a stream
already under way, an SSE error event.

The worker's side is `adopted.py`. This module must not import `llama_cpp` (the runner imports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .asgi import wait_for_disconnect
from .errors import error_body, error_response, sse_error_event

TRANSPORT = "docker_model.transport"  # key of the connection's asyncio transport in scope["extensions"]
STARTED = b"started"  # report line: b"started <content-type>", once the response head is sent
DONE = b"done"  # report line: the response is complete (or the client went away)
WORKER_FAILED = "worker_failed"
_NOT_HANDED = {b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"}


class HandOverProtocol(H11Protocol):
    """uvicorn's h11 protocol, with each request's transport in its scope so it can be handed over."""

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None:  # the request task is created above but runs only after this returns
            self.cycle.scope.setdefault("extensions", {})[TRANSPORT] = self.transport


@dataclass(frozen=True)
class HandedRequest:
    """What the worker needs to answer a request: everything but the connection."""

    method: str
    path: str
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    http_version: str = "1.1"

    @classmethod
    def of(cls, request: Request, path: str, body: bytes) -> HandedRequest:
        """`request` as the worker sees it: at `path`, without the runner connection's own headers."""
        scope = request.scope
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _NOT_HANDED]
        return cls(request.method, path, scope["query_string"], headers, body, scope["http_version"])

    @property
    def can_chunk(self) -> bool:
        """Whether the client understands a chunked body (HTTP/1.0 clients, like nginx's default proxy
        requests, read a body until the connection closes)."""
        return self.http_version != "1.0"

    def encode(self) -> bytes:
        head = {
            "method": self.method,
            "path": self.path,
            "query": self.query_string.decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
            "body": len(self.body),
            "http_version": self.http_version,
        }
        return json.dumps(head).encode() + b"\n" + self.body

    @classmethod
    async def read(cls, reader: asyncio.StreamReader) -> HandedRequest:
        head = json.loads(await reader.readline())
        return cls(
            method=head["method"],
            path=head["path"],
            query_string=head["query"].encode("latin-1"),
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in head["headers"]],
            body=await reader.readexactly(head["body"]),
            http_version=head["http_version"],
        )


class HandOver:
    """ASGI app that hands the connection to the worker listening on `control_path` and waits until
    the worker is done with it."""

    def __init__(self, control_path: Path, request: HandedRequest, why_failed: Callable[[], str]):
        self.control_path = control_path
        self.request = request
        self.why_failed = why_failed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport: asyncio.Transport = scope["extensions"][TRANSPORT]
        client_fd = transport.get_extra_info("socket").fileno()
        try:
            reports, control = await _send_connection(self.control_path, client_fd, self.request.encode())
        except OSError:
            await error_response(self.why_failed(), 500, code=WORKER_FAILED)(scope, receive, send)
            return
        # Our own descriptor of the connection, to answer on it if the worker dies. Closing uvicorn's
        # descriptor (abort) leaves the connection open: the worker and we hold it.
        fallback = socket.socket(fileno=os.dup(client_fd))
        fallback.setblocking(False)
        transport.abort()
        try:
            await wait_for_disconnect(receive)  # uvicorn now forgets the connection, silently
            started, done = await _read_reports(reports)
            if not done:
                await _answer_failure(fallback, started, self.request.can_chunk, self.why_failed())
        finally:
            control.close()
            fallback.close()


async def _send_connection(
    control_path: Path, client_fd: int, payload: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the worker's hand-over socket, pass it the client's descriptor, then the request."""
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        control.setblocking(False)
        await asyncio.get_running_loop().sock_connect(control, str(control_path))
        socket.send_fds(control, [b"\0"], [client_fd])  # one byte on a fresh connection: never blocks
        reader, writer = await asyncio.open_unix_connection(sock=control)
        writer.write(payload)
        await writer.drain()
    except BaseException:
        control.close()
        raise
    return reader, writer


async def _read_reports(reports: asyncio.StreamReader) -> tuple[str | None, bool]:
    """Follow the worker's reports until it is done or gone: (content type once started, done)."""
    started = None
    while line := await reports.readline():
        word, _, detail = line.strip().partition(b" ")
        if word == STARTED:
            started = detail.decode("latin-1")
        elif word == DONE:
            return started, True
    return started, False


async def _answer_failure(client: socket.socket, started: str | None, chunked: bool, message: str) -> None:
    """Tell the client that the worker died while answering it, as far as HTTP still allows."""
    if started is None:
        body = json.dumps(error_body(message, 500, code=WORKER_FAILED)).encode()
        head = f"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
        data = head.encode() + b"\r\nconnection: close\r\n\r\n" + body
    elif started.startswith("text/event-stream"):  # chunked whenever the client can take it (adopted.py)
        event = sse_error_event(message, 500, code=WORKER_FAILED)
        data = b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event) if chunked else event
    else:
        return  # a plain body cut short: closing the connection is all HTTP offers
    with contextlib.suppress(OSError):  # the client may have left as well
        await asyncio.get_running_loop().sock_sendall(client, data)
