"""The hand-over's wire protocol, spoken by the runner (`runner/handover.py`) and a worker
(`runner/worker/adopted.py`) over the worker's hand-over socket.

On a new UNIX-socket connection the runner sends one byte carrying the client's socket (SCM_RIGHTS),
then the request: one JSON line (method, path, query, headers, body length, HTTP version, headers the
response must carry) and the body.
The worker then writes report lines on the same connection: `started <content-type>` once the response
head is sent, `response <bytes sent> <bytes kept>` followed by the kept bytes (the start of the body it
wrote, at most RECORDED_BYTES, for the runner's recent-requests store), and `done` once the response is
complete (or the client went away).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request

REPORT_STARTED = b"started"
REPORT_DONE = b"done"
REPORT_RESPONSE = b"response"
RECORDED_BYTES = 2 * 1024 * 1024  # of a body, raw: a streamed token takes ~150 bytes of JSON and framing
_NOT_HANDED = {b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"}

LOAD_HEADER = "x-docker-model-load-ns"  # the runner tells the worker how long a request waited for the load
RESPONSE_HEADERS = "docker_model.response_headers"  # key in the scope: headers the response must carry (CORS)


@dataclass(frozen=True)
class HandedRequest:
    """What the worker needs to answer a request: everything but the connection."""

    method: str
    path: str
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    http_version: str = "1.1"
    response_headers: tuple[tuple[bytes, bytes], ...] = ()  # for the worker to add to its answer

    @classmethod
    def of(
        cls, request: Request, path: str, body: bytes, extra_headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> HandedRequest:
        """`request` as the worker sees it: at `path`, without the runner connection's own headers, with
        `extra_headers` (what the runner tells the worker about it)."""
        scope = request.scope
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _NOT_HANDED]
        return cls(
            request.method,
            path,
            scope["query_string"],
            [*headers, *extra_headers],
            body,
            scope["http_version"],
            tuple(scope.get(RESPONSE_HEADERS, ())),
        )

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
            "response_headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.response_headers],
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
            response_headers=tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in head["response_headers"]),
        )


def response_report(sent: int, kept: bytes | bytearray) -> bytes:
    """The `response` report: how many bytes of body the worker sent, and the first of them it kept."""
    return REPORT_RESPONSE + b" %d %d\n" % (sent, len(kept)) + kept
