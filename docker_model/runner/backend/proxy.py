"""Forwarding a runner request to a model worker over its UNIX socket, SSE streams passed through.

The worker may die at any moment (a llama.cpp crash, the OOM killer): the client then gets a 500
OpenAI-style error, or, for a stream already under way, an SSE error event before the stream closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
from starlette.requests import Request
from starlette.responses import Response

from .asgi import ClientGone, EventStreamResponse, until_disconnect
from .errors import error_response, sse_error_event

_NOT_FORWARDED = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade"}
WORKER_FAILED = "worker_failed"


async def forward(client: httpx.AsyncClient, request: Request, path: str, why_failed: Callable[[], str]) -> Response:
    """Send `request` to the worker at `path`; `why_failed` words the error when the worker is gone."""
    body = await request.body()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
    outgoing = client.build_request(request.method, path, content=body, headers=headers, params=request.query_params)
    try:
        upstream = await until_disconnect(client.send(outgoing, stream=True), request.receive)
    except ClientGone:
        return Response(status_code=499)
    except httpx.TransportError:
        return error_response(why_failed(), 500, code=WORKER_FAILED)
    content_type = upstream.headers.get("content-type", "application/json")
    if content_type.startswith("text/event-stream"):
        return EventStreamResponse(_relay(upstream, why_failed), upstream.status_code)  # type: ignore[return-value]
    try:
        content = await until_disconnect(upstream.aread(), request.receive)
    except ClientGone:
        return Response(status_code=499)
    except httpx.TransportError:
        return error_response(why_failed(), 500, code=WORKER_FAILED)
    finally:
        await upstream.aclose()
    return Response(content, upstream.status_code, media_type=content_type)


async def _relay(upstream: httpx.Response, why_failed: Callable[[], str]) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.TransportError:
        yield sse_error_event(why_failed(), 500, code=WORKER_FAILED)
    finally:
        await upstream.aclose()
