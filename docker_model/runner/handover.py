"""Handing a client's connection over to a model's worker, so that the worker answers it directly.

The runner reads the request and picks the worker, then sends the connection's socket (SCM_RIGHTS) and
the request over the worker's hand-over socket, and steps aside: tokens go from the worker to the client
with no relay through the runner, whose process would otherwise wake for every token and take a core
from llama.cpp. The worker answers with `Connection: close`, so the client's next request comes back to
the runner. On the control connection the worker reports when its response started, the start of the
body it sent (which `recent_requests.py` keeps), and when it is done; if the worker dies before that,
the runner answers the client itself: a JSON 500, or, for a stream already under way, an SSE error
event. Over TLS the worker cannot write into the encrypted connection:
it answers into a socket pair instead, and the runner relays its bytes (the one case with a relay).

The wire protocol is `shared/wire.py`; the worker's side is `worker/adopted.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from docker_model.runner.shared.asgi import wait_for_disconnect
from docker_model.runner.shared.error_body import dialect_of, error_body, error_response
from docker_model.runner.shared.wire import REPORT_DONE, REPORT_RESPONSE, REPORT_STARTED, HandedRequest

TRANSPORT = "docker_model.transport"  # key of the connection's asyncio transport in scope["extensions"]
WORKER_FAILED = "worker_failed"
HANDED_STATUS = "docker_model.handed_status"  # key in the scope: the status the worker answered with


class HandOverProtocol(H11Protocol):
    """uvicorn's h11 protocol, with each request's transport in its scope so it can be handed over."""

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None:  # the request task is created above but runs only after this returns
            extensions: dict[str, object] = self.cycle.scope.setdefault("extensions", {})  # type: ignore[assignment]
            extensions[TRANSPORT] = self.transport


class HandOver:
    """ASGI app that hands the connection to the worker listening on `control_path` and waits until
    the worker is done with it."""

    def __init__(self, control_path: Path, request: HandedRequest, why_failed: Callable[[], Awaitable[str]]):
        """`why_failed`: says, once the worker's process has had a moment to exit, why it did not answer."""
        self.control_path = control_path
        self.request = request
        self.why_failed = why_failed
        self.report: Reports | None = None  # what the worker reported, once it is done or gone
        self.failure: str | None = None  # why the worker did not answer, when it did not

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport: asyncio.Transport = scope["extensions"][TRANSPORT]
        if transport.get_extra_info("ssl_object") is not None:
            await self._relay(transport, scope, receive, send)
        else:
            await self._hand_socket(transport, scope, receive, send)

    async def _hand_socket(self, transport: asyncio.Transport, scope: Scope, receive: Receive, send: Send) -> None:
        """Plain HTTP: the worker gets the client's own socket."""
        client_fd = transport.get_extra_info("socket").fileno()
        try:
            reports, control = await _send_connection(self.control_path, client_fd, self.request.encode())
        except OSError:
            await self._answer_failure(scope, receive, send)
            return
        # Our own descriptor of the connection, to answer on it if the worker dies. Closing uvicorn's
        # descriptor (abort) leaves the connection open: the worker and we hold it.
        fallback = socket.socket(fileno=os.dup(client_fd))
        fallback.setblocking(False)
        transport.abort()
        try:
            await wait_for_disconnect(receive)  # uvicorn now forgets the connection, silently
            report = await self._follow(reports, scope)
            failure = None if report.done else self._failure(report)
            if failure:
                with contextlib.suppress(OSError):  # the client may have left as well
                    await asyncio.get_running_loop().sock_sendall(fallback, failure)
        finally:
            control.close()
            fallback.close()

    async def _relay(self, transport: asyncio.Transport, scope: Scope, receive: Receive, send: Send) -> None:
        """TLS: the worker cannot write into the encrypted connection, so it writes plain HTTP into a socket
        pair, and the runner relays those bytes through the client's TLS transport."""
        ours, theirs = socket.socketpair()
        with ours:
            try:
                with theirs:
                    reports, control = await _send_connection(self.control_path, theirs.fileno(), self.request.encode())
            except OSError:
                await self._answer_failure(scope, receive, send)
                return
            ours.setblocking(False)
            pump = asyncio.create_task(_pump(ours, transport))
            left = asyncio.create_task(wait_for_disconnect(receive))
            try:
                await asyncio.wait({pump, left}, return_when=asyncio.FIRST_COMPLETED)
                pump.cancel()
                with contextlib.suppress(OSError):
                    ours.shutdown(socket.SHUT_RDWR)  # a client that left: the worker's next write fails
                report = await self._follow(reports, scope)
                failure = None if report.done or left.done() else self._failure(report)
                if failure:
                    transport.write(failure)
                transport.close()  # after what is buffered; uvicorn then forgets the connection
                await left
            finally:
                left.cancel()
                control.close()

    async def _answer_failure(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The worker could not be handed the connection: answer the client ourselves."""
        self.failure = await self.why_failed()
        await error_response(self.failure, 500, code=WORKER_FAILED)(scope, receive, send)

    async def _follow(self, reports: asyncio.StreamReader, scope: Scope) -> Reports:
        report = self.report = await read_reports(reports)
        scope[HANDED_STATUS] = report.status if report.done else 500
        if not report.done:
            self.failure = await self.why_failed()
        return report

    def _failure(self, report: Reports) -> bytes | None:
        return failure_answer(report.content_type, self.request, self.failure or "")


RELAY_BUFFER_BYTES = 1024 * 1024  # a slow TLS client holds up the worker's writes beyond this


async def _pump(source: socket.socket, transport: asyncio.Transport) -> None:
    """Copy what the worker writes to the client's transport until the worker closes its end."""
    loop = asyncio.get_running_loop()
    while data := await loop.sock_recv(source, 65536):
        transport.write(data)
        while transport.get_write_buffer_size() > RELAY_BUFFER_BYTES and not transport.is_closing():
            await asyncio.sleep(0.01)


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


@dataclass(frozen=True)
class Reports:
    """What the worker said of a request it answered: its status and content type once it started, the
    size and the start of the body it sent, and whether it finished."""

    status: int | None
    content_type: str | None
    done: bool
    response: bytes = b""
    response_size: int = 0


async def read_reports(reports: asyncio.StreamReader) -> Reports:
    """Follow the worker's reports until it is done or gone. A worker that dies before reading the whole
    request resets the connection rather than closing it: that too means gone."""
    status = content_type = None
    response, response_size = b"", 0
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionResetError):
        while line := await reports.readline():
            word, _, detail = line.strip().partition(b" ")
            if word == REPORT_STARTED:
                code, _, kind = detail.partition(b" ")
                status, content_type = int(code), kind.decode("latin-1")
            elif word == REPORT_RESPONSE:
                sent, _, kept = detail.partition(b" ")
                response, response_size = await reports.readexactly(int(kept)), int(sent)
            elif word == REPORT_DONE:
                return Reports(status, content_type, True, response, response_size)
    return Reports(status, content_type, False, response, response_size)


def failure_answer(started: str | None, request: HandedRequest, message: str) -> bytes | None:
    """What tells the client that the worker died while answering it, as far as HTTP still allows, in the
    error shape of the dialect of the request's path; None when closing the connection is all HTTP offers."""
    body = json.dumps(error_body(message, 500, code=WORKER_FAILED, path=request.path)).encode()
    if started is None:
        head = f"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
        extra = b"".join(b"\r\n" + name + b": " + value for name, value in request.response_headers)
        data = head.encode() + extra + b"\r\nconnection: close\r\n\r\n" + body
    elif started.startswith(("text/event-stream", "application/x-ndjson")):  # chunked when the client can take it
        if started.startswith("application/x-ndjson"):
            event = body + b"\n"
        else:
            kind = b"event: error\n" if dialect_of(request.path) == "anthropic" else b""
            event = kind + b"data: " + body + b"\n\n"
        data = b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event) if request.can_chunk else event
    else:
        return None  # a plain body cut short
    return data
