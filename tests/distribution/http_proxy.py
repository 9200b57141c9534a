"""A forwarding HTTP proxy in front of the real registry that counts what passes and can misbehave.

Not a mock: every answer comes from the registry. The proxy counts blob bytes (to prove resumes fetch
just the missing part) and records each request's Authorization header. On demand it fails with a
status, cuts or resets a connection partway, stalls, sends more than the registry did or something else
instead, ignores Range headers, slows down (so two pulls overlap), asks for credentials itself, sends
uploads and blob downloads to a `foreign` server (as registries storing blobs in S3 do), speaks TLS, and
serves as the HTTP proxy a client is told to use (absolute-form requests and CONNECT tunnels), which
lets a test reach it under any host name, `*.local` ones included.
"""

from __future__ import annotations

import base64
import re
import select
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

_BLOB_GET = re.compile(r"/v2/.+/blobs/sha256:[0-9a-f]{64}$")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that says nothing when a client hangs up: these tests make them do so."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


@dataclass
class Fault:
    """What the proxy does to the next `times` requests whose "METHOD /path" `match` (a regex) finds.

    kind: "status" answers `status`; "cut" closes the connection and "reset" aborts it (a TCP reset)
    after the headers and `after` body bytes, or before any answer when `after` is None; "stall" stops
    sending there until the proxy closes; "append" sends `body` after the registry's answer, counted in
    Content-Length when `announce`, else with no length and the connection closed at the end;
    "replace" sends `body` instead of the registry's answer, with the registry's headers.
    """

    match: str
    kind: str
    times: int = 1
    after: int | None = None
    status: int = 503
    body: bytes = b""
    announce: bool = True


class CountingProxy:
    def __init__(
        self,
        upstream: str,
        tls: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
        foreign: str | None = None,
        tunnel_to: str | None = None,
    ) -> None:
        """`credentials`: answer 401 (Basic) to requests without them. `foreign`: the URL of another
        server that upload Locations point to and blob GETs are redirected to. `tunnel_to`: `host:port`
        CONNECT tunnels reach (default: the upstream)."""
        self.upstream = upstream.rstrip("/")
        self.blob_bytes: dict[str, int] = {}  # digest -> body bytes sent to clients
        self.blob_requests: list[tuple[str, str | None, int]] = []  # (digest, Range header, status)
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path or target, Authorization header)
        self.faults: list[Fault] = []
        self.fail_next = 0  # answer 503 to this many blob GETs
        self.cut: tuple[str, int] | None = None  # (digest, n): close the next GET of digest after n bytes
        self.ignore_range = False
        self.seconds_per_mib = 0.0
        self.foreign = foreign
        self.tunnel_to = tunnel_to or urlsplit(self.upstream).netloc
        self._tls = tls is not None
        self._expected = f"Basic {base64.b64encode(':'.join(credentials).encode()).decode()}" if credentials else None
        self._session = requests.Session()
        self._session.trust_env = False  # never through the proxy a test tells its clients to use: itself
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._server = QuietServer(("127.0.0.1", 0), self._handler())
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}"

    def total_blob_bytes(self) -> int:
        return sum(self.blob_bytes.values())

    def close(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()

    def _take_fault(self, method: str, path: str, digest: str) -> Fault | None:
        with self._lock:
            if digest and self.fail_next:
                self.fail_next -= 1
                return Fault("", "status")
            if digest and self.cut is not None and self.cut[0] == digest:
                fault, self.cut = Fault("", "cut", after=self.cut[1]), None
                return fault
            for fault in self.faults:
                if fault.times and re.search(fault.match, f"{method} {path}"):
                    fault.times -= 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def reply(self, status: int, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def interrupt(self, kind: str) -> None:
                self.close_connection = True
                if kind == "stall":
                    self.wfile.flush()
                    proxy._closed.wait()
                elif kind == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                else:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path
                if not path.startswith("/"):  # absolute form: a client using this as its HTTP proxy
                    parts = urlsplit(path)
                    path = parts.path + (f"?{parts.query}" if parts.query else "")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if proxy._tls:
                    headers["X-Forwarded-Proto"] = "https"
                authorization = self.headers.get("Authorization")
                with proxy._lock:
                    proxy.seen.append((self.command, self.path, authorization))
                if proxy._expected is not None and authorization != proxy._expected:
                    return self.reply(401, {"WWW-Authenticate": 'Basic realm="proxy"'})
                blob = _BLOB_GET.search(path) if self.command == "GET" else None
                digest = path.rsplit("/", 1)[-1] if blob else ""
                if blob and proxy.ignore_range:
                    headers.pop("Range", None)
                fault = proxy._take_fault(self.command, path, digest)
                if fault is not None and fault.kind == "status":
                    if blob:
                        with proxy._lock:
                            proxy.blob_requests.append((digest, headers.get("Range"), fault.status))
                    return self.reply(fault.status)
                if fault is not None and fault.after is None and fault.kind in ("cut", "reset", "stall"):
                    return self.interrupt(fault.kind)
                if blob and proxy.foreign:
                    return self.reply(307, {"Location": proxy.foreign + path})
                upstream = proxy._session.request(
                    self.command,
                    proxy.upstream + path,
                    headers=headers,
                    data=body,
                    stream=True,
                    allow_redirects=False,
                    timeout=30,
                )
                if blob:
                    with proxy._lock:
                        proxy.blob_requests.append((digest, headers.get("Range"), upstream.status_code))
                answer = {k: v for k, v in upstream.raw.headers.items() if k.lower() not in _HOP_BY_HOP}
                if proxy.foreign and self.command == "POST" and "Location" in answer:
                    location = urlsplit(answer["Location"])
                    answer["Location"] = f"{proxy.foreign}{location.path}?{location.query}"
                kind = fault.kind if fault is not None else ""
                extra = fault.body if fault is not None and kind in ("append", "replace") else b""
                if kind == "replace":
                    answer["Content-Length"] = str(len(extra))
                elif kind == "append" and fault is not None and fault.announce:
                    answer["Content-Length"] = str(int(answer.get("Content-Length", 0)) + len(extra))
                elif kind == "append":
                    answer.pop("Content-Length", None)
                    answer["Connection"] = "close"
                    self.close_connection = True
                self.send_response(upstream.status_code)
                for key, value in answer.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command == "HEAD":
                    return
                limit = fault.after if fault is not None and kind in ("cut", "reset", "stall") else None
                chunks = [extra] if kind == "replace" else upstream.raw.stream(64 * 1024, decode_content=False)
                sent = 0
                for chunk in chunks:
                    if limit is not None:
                        chunk = chunk[: limit - sent]
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if blob:
                        with proxy._lock:
                            proxy.blob_bytes[digest] = proxy.blob_bytes.get(digest, 0) + len(chunk)
                        if proxy.seconds_per_mib:
                            time.sleep(proxy.seconds_per_mib * len(chunk) / (1 << 20))
                    if limit is not None and sent >= limit:
                        return self.interrupt(kind)
                if kind == "append":
                    self.wfile.write(extra)

            def do_CONNECT(self) -> None:
                """A tunnel to `tunnel_to`, as HTTP proxies open for HTTPS."""
                with proxy._lock:
                    proxy.seen.append(("CONNECT", self.path, self.headers.get("Authorization")))
                host, _, port = proxy.tunnel_to.rpartition(":")
                target = socket.create_connection((host, int(port)), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.close_connection = True
                ends = [self.connection, target]
                while not proxy._closed.is_set():
                    readable, _, _ = select.select(ends, [], [], 0.2)
                    for end in readable:
                        data = end.recv(64 * 1024)
                        if not data:
                            target.close()
                            return
                        (target if end is self.connection else self.connection).sendall(data)
                target.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward

        return Handler
