"""Long jobs (pull, push) streamed to the client as JSON lines while they run in a worker thread.

Every line says which transfer it is about (`mode`: `pull` or `push`, as Docker Model Runner's do).
The first line decides the HTTP status: a job that fails before reporting anything (unknown model,
refused credentials) gets a plain JSON error with its status; once progress has been streamed, a later
failure becomes an `error` line. A client that goes away cancels the job through `cancel`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from starlette.responses import Response, StreamingResponse

from docker_model.api_types import ProgressLine
from docker_model.distribution import ProgressEvent
from docker_model.reference import short_id
from docker_model.runner.api.error_table import message_of, response_for
from docker_model.units import human_bytes

PROGRESS_INTERVAL_SECONDS = 0.1
PROGRESS_INTERVAL_BYTES = 1 << 20

Mode = Literal["pull", "push"]
Emit = Callable[[ProgressLine], None]
Job = Callable[[Callable[[ProgressEvent], None], threading.Event], str]
_END = object()


class ProgressThrottle:
    """Turns progress events into lines, at most one per layer every 100 ms or 1 MiB, plus each layer's end."""

    def __init__(self, verb: str, emit: Emit, mode: Mode = "pull") -> None:
        self.verb = verb
        self.emit = emit
        self.mode: Mode = mode
        self.last: dict[str, tuple[float, int]] = {}
        self.done_by_layer: dict[str, int] = {}

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        last_time, last_bytes = self.last.get(event.layer_digest, (0.0, -PROGRESS_INTERVAL_BYTES))
        finished = event.current >= event.layer_size
        self.done_by_layer[event.layer_digest] = event.current
        if (
            not finished
            and now - last_time < PROGRESS_INTERVAL_SECONDS
            and event.current - last_bytes < PROGRESS_INTERVAL_BYTES
        ):
            return
        self.last[event.layer_digest] = (now, event.current)
        done = sum(self.done_by_layer.values())
        self.emit(
            {
                "type": "progress",
                "message": f"{short_id(event.layer_digest)}: {event.message}"
                if event.message  # a layer's own news ("Pushed"): say which layer
                else f"{self.verb} {human_bytes(done)} of {human_bytes(event.total)}",
                "total": event.total,
                "layer": {"id": event.layer_digest, "size": event.layer_size, "current": event.current},
                "mode": self.mode,
            }
        )


async def stream_job(
    verb: str,
    job: Job,
    shape: Callable[[ProgressLine], dict[str, Any]] | None = None,
    path: str = "",
    mode: Mode = "pull",
) -> Response:
    """Run `job` in a thread, its progress streamed as JSON lines (`shape`d for another dialect; errors
    shaped for the dialect of `path`)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: object) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        try:
            put({"type": "success", "message": job(ProgressThrottle(verb, put, mode), cancel), "mode": mode})
        except Exception as error:
            put(error)
        finally:
            put(_END)

    threading.Thread(target=run, name=f"{verb.lower()}-job", daemon=True).start()
    first = await queue.get()
    if isinstance(first, Exception):
        return response_for(first, path)

    async def lines() -> AsyncIterator[bytes]:
        item = first
        try:
            while item is not _END:
                if isinstance(item, Exception):
                    item = {"type": "error", "message": message_of(item), "mode": mode}
                yield json.dumps(shape(item) if shape is not None else item).encode() + b"\n"  # type: ignore[arg-type]
                item = await queue.get()
        finally:
            cancel.set()

    return StreamingResponse(lines(), media_type="application/x-ndjson")
