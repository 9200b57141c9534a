"""The worker's side of the hand-over (`runner/handover.py`, wire protocol in `runner/shared/wire.py`):
answering requests on client connections that the runner passed over, one request per connection,
ended by `Connection: close`.

Each connection gets a minimal HTTP/1.1 server of its own around the worker's ASGI app: the request
is already parsed, so this only writes the response (with `content-length` when the app gives one,
chunked otherwise, which every stream is, unless the client speaks HTTP/1.0) and notices the client
leaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from http import HTTPStatus
from pathlib import Path

from starlette.types import ASGIApp, Message

from docker_model.runner.shared.wire import RECORDED_BYTES, REPORT_DONE, REPORT_STARTED, HandedRequest, response_report

log = logging.getLogger(__name__)


def listen(path: Path) -> socket.socket:
    """The UNIX socket on which the runner hands connections over, bound and listening."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(128)
    listener.setblocking(False)
    return listener


async def serve_handoffs(app: ASGIApp, listener: socket.socket) -> None:
    """Answer the connections handed over on `listener` until cancelled; then close it."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()
    try:
        while True:
            control, _ = await loop.sock_accept(listener)
            task = asyncio.create_task(_adopt(app, control))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        listener.close()
        for task in tasks:
            task.cancel()


async def _adopt(app: ASGIApp, control: socket.socket) -> None:
    client = None
    try:
        client = await _receive_connection(control)
        reports_reader, reports = await asyncio.open_unix_connection(sock=control)
    except (OSError, ValueError) as exc:
        log.warning("a hand-over from the runner failed: %s", exc)
        control.close()
        if client is not None:
            client.close()
        return
    try:
        request = await HandedRequest.read(reports_reader)
        reader, writer = await asyncio.open_connection(sock=client)
        connection = AdoptedConnection(request, reader, writer, reports)
        try:
            await connection.serve(app)
        finally:
            writer.close()  # after what is still buffered has been sent
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        reports.write(response_report(connection.sent, connection.kept) + REPORT_DONE + b"\n")
        await reports.drain()
    except Exception:  # without `done`, the runner tells the client what it still can
        log.exception("a handed-over request failed")
    finally:
        client.close()
        reports.close()


async def _receive_connection(control: socket.socket) -> socket.socket:
    """The client socket sent with the first byte on `control` (SCM_RIGHTS)."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(control.fileno(), readable.set_result, None)
    try:
        await readable
    finally:
        loop.remove_reader(control.fileno())
    _, fds, _, _ = socket.recv_fds(control, 1, 1)
    if not fds:
        raise ValueError("no connection came with the hand-over")
    return socket.socket(fileno=fds[0])


class AdoptedConnection:
    """One request's ASGI `receive` and `send` over a client connection the worker adopted."""

    def __init__(
        self,
        request: HandedRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        reports: asyncio.StreamWriter,
    ):
        self.request = request
        self.reader = reader
        self.writer = writer
        self.reports = reports
        self.body: bytes | None = request.body  # until the app has received it
        self.chunked = False
        self.gone = False
        self.sent = 0  # bytes of response body
        self.kept = bytearray()  # the first RECORDED_BYTES of them, reported to the runner's recent requests

    async def serve(self, app: ASGIApp) -> None:
        request = self.request
        peer = self.writer.get_extra_info("peername")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version,
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": request.path.encode(),
            "query_string": request.query_string,
            "root_path": "",
            "headers": request.headers,
            "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
            "server": None,
        }
        await app(scope, self.receive, self.send)

    async def receive(self) -> Message:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        while not self.gone and await self.reader.read(65536):
            pass  # a client sends nothing more on this connection; wait for it to close
        self.gone = True
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._start(message["status"], message.get("headers", []))
        elif message["type"] == "http.response.body":
            body, more = message.get("body", b""), message.get("more_body", False)
            self.sent += len(body)
            if len(self.kept) < RECORDED_BYTES:
                self.kept += body[: RECORDED_BYTES - len(self.kept)]
            if self.chunked:
                data = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + (b"" if more else b"0\r\n\r\n")
            else:
                data = body
            await self._write(data)

    async def _start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        named = {name.lower(): value for name, value in headers}
        self.chunked = self.request.can_chunk and b"content-length" not in named
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        every = [*headers, *self.request.response_headers]
        lines = [f"HTTP/1.1 {status} {reason}".encode(), *(name + b": " + value for name, value in every)]
        if self.chunked:
            lines.append(b"transfer-encoding: chunked")
        lines.append(b"connection: close")
        await self._write(b"\r\n".join(lines) + b"\r\n\r\n")
        self.reports.write(REPORT_STARTED + b" %d " % status + named.get(b"content-type", b"") + b"\n")

    async def _write(self, data: bytes) -> None:
        if self.gone or not data:
            return
        try:
            self.writer.write(data)
            await self.writer.drain()
        except OSError:
            self.gone = True  # the client left; the app hears it from `receive`
