"""A forwarding HTTP proxy in front of the real registry that counts what passes and can misbehave.

Not a mock: every answer comes from the registry. The proxy only counts blob bytes (to prove resumes
fetch just the missing part), and on demand fails with 503, cuts a connection partway, ignores Range
headers, or slows down (so two pulls overlap).
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

_BLOB_GET = re.compile(r"/v2/.+/blobs/sha256:[0-9a-f]{64}$")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class CountingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.blob_bytes: dict[str, int] = {}  # digest -> body bytes sent to clients
        self.blob_requests: list[tuple[str, str | None, int]] = []  # (digest, Range header, status)
        self.fail_next = 0  # answer 503 to this many blob GETs
        self.cut: tuple[str, int] | None = None  # (digest, n): close the next GET of digest after n bytes
        self.ignore_range = False
        self.seconds_per_mib = 0.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def total_blob_bytes(self) -> int:
        return sum(self.blob_bytes.values())

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                blob = _BLOB_GET.search(self.path) if self.command == "GET" else None
                digest = self.path.rsplit("/", 1)[-1] if blob else ""
                cut = None
                with proxy._lock:
                    if blob:
                        if proxy.ignore_range:
                            headers.pop("Range", None)
                        if proxy.fail_next:
                            proxy.fail_next -= 1
                            proxy.blob_requests.append((digest, headers.get("Range"), 503))
                            self.send_response(503)
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                            return
                        if proxy.cut is not None and proxy.cut[0] == digest:
                            cut, proxy.cut = proxy.cut[1], None
                upstream = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    headers=headers,
                    data=body,
                    stream=True,
                    allow_redirects=False,
                )
                if blob:
                    with proxy._lock:
                        proxy.blob_requests.append((digest, headers.get("Range"), upstream.status_code))
                self.send_response(upstream.status_code)
                for key, value in upstream.raw.headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.end_headers()
                if self.command == "HEAD":
                    return
                sent = 0
                for chunk in upstream.raw.stream(64 * 1024, decode_content=False):
                    if cut is not None and sent + len(chunk) > cut:
                        chunk = chunk[: cut - sent]
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if blob:
                        with proxy._lock:
                            proxy.blob_bytes[digest] = proxy.blob_bytes.get(digest, 0) + len(chunk)
                        if proxy.seconds_per_mib:
                            time.sleep(proxy.seconds_per_mib * len(chunk) / (1 << 20))
                    if cut is not None and sent >= cut:
                        self.close_connection = True
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        return

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward

        return Handler
