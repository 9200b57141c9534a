"""Starting, watching and stopping a model's worker process, from the runner's side.

This module must not import `llama_cpp`: the runner process stays small, and only workers load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from starlette.requests import Request

from docker_model.files import log_tail
from docker_model.runner.handover import HandOver
from docker_model.runner.launch import WorkerSpec, handoff_path, spawn
from docker_model.runner.shared.exit_codes import RPC_LOST_EXIT_CODE
from docker_model.runner.shared.wire import HandedRequest

START_POLL_SECONDS = 0.01
EXIT_SEEN_WITHIN_SECONDS = 1.0


# What llama.cpp and Python write when an allocation fails.
ALLOCATION_FAILED = ("failed to allocate", "could not create a context", "Cannot allocate memory", "MemoryError")


def out_of_memory_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has ended since boot (Linux), None if unknown."""
    try:
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class WorkerStartError(RuntimeError):
    """The worker died or did not become healthy; the message ends with its last log lines."""

    def __init__(self, message: str, log_tail: str, out_of_memory: bool = False):
        super().__init__(f"{message}\n{log_tail}".rstrip())
        self.log_tail = log_tail
        self.out_of_memory = out_of_memory  # killed by the OOM killer, or an allocation failed


class WorkerProcess:
    """A running worker: hand requests to it, watch it, stop it."""

    def __init__(self, spec: WorkerSpec, process: subprocess.Popen, socket_path: Path, log_path: Path):
        self.spec = spec
        self.socket_path = socket_path
        self.log_path = log_path
        self._process = process
        self._stopping = False
        self._hung_for: float | None = None  # set when the watchdog killed it
        self._oom_kills_at_start = out_of_memory_kills()
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket_path)),
            base_url="http://worker",
            timeout=httpx.Timeout(None, connect=10.0),
        )

    @classmethod
    async def start(cls, spec: WorkerSpec, socket_path: Path, log_path: Path, timeout: float = 300.0) -> WorkerProcess:
        """Spawn the worker and return once its /health answers; raise WorkerStartError otherwise."""
        return await cls.adopt(spec, spawn(spec, socket_path, log_path), socket_path, log_path, timeout)

    @classmethod
    async def adopt(
        cls, spec: WorkerSpec, process: subprocess.Popen[bytes], socket: Path, log_path: Path, timeout: float = 300.0
    ) -> WorkerProcess:
        """The worker `process`, spawned already, once its /health answers; raise WorkerStartError otherwise."""
        worker = cls(spec, process, socket, log_path)
        try:
            await worker._wait_healthy(timeout)
        except BaseException:
            await worker.stop()
            raise
        return worker

    async def _wait_healthy(self, timeout: float) -> None:
        """The worker binds its socket before it loads the model, so one /health request waits out the load;
        until the socket exists, and after a connection the worker dropped, look again shortly."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                tail = log_tail(self.log_path)
                out_of_memory = self.out_of_memory or any(text in tail for text in ALLOCATION_FAILED)
                raise WorkerStartError(f"the model worker {self.exit_cause()} while loading", tail, out_of_memory)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerStartError(f"the model worker was not ready after {timeout:g}s", log_tail(self.log_path))
            with contextlib.suppress(httpx.TransportError):
                if (await self._client.get("/health", timeout=remaining)).status_code == 200:
                    return
            await asyncio.sleep(START_POLL_SECONDS)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def rss_bytes(self) -> int | None:
        """Resident memory of the worker (Linux), None when unknown."""
        try:
            resident = Path(f"/proc/{self.pid}/statm").read_text().split()[1]
        except (OSError, IndexError):
            return None
        return int(resident) * os.sysconf("SC_PAGE_SIZE")

    async def progress(self, timeout: float) -> int | None:
        """The engine's progress counter; None when the worker does not answer within `timeout`."""
        health = await self.health(timeout)
        try:
            return None if health is None else int(health["progress"])
        except (KeyError, TypeError, ValueError):
            return None

    async def health(self, timeout: float) -> dict | None:
        """The worker's `/health` answer (with its pool's `rpc` list, if it has one); None when it does not
        answer within `timeout`."""
        try:
            answer = (await self._client.get("/health", timeout=timeout)).json()
        except (httpx.HTTPError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    def kill_hung(self, seconds: float) -> None:
        """Kill a worker that made no progress for `seconds` while answering: its clients get an error."""
        self._hung_for = seconds
        with contextlib.suppress(OSError):
            self._process.kill()

    async def metrics_text(self) -> str | None:
        """The worker's Prometheus metrics; None when it does not answer."""
        from docker_model.runner.metrics import worker_metrics

        return await worker_metrics(self._client)

    def hand_over(
        self, request: Request, body: bytes, path: str, extra_headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> HandOver:
        """An ASGI app that has the worker answer `request` (its `body` already read) at its `path`
        (e.g. "/v1/chat/completions") on the client's own connection, with `extra_headers` added."""
        handed = HandedRequest.of(request, path, body, extra_headers)
        return HandOver(handoff_path(self.socket_path), handed, self._why_failed)

    @property
    def out_of_memory(self) -> bool:
        """Whether the kernel's out-of-memory killer ended the worker: a SIGKILL the runner did not send,
        while the kernel counted an out-of-memory kill (where the count cannot be read: any such SIGKILL)."""
        if self._stopping or self._process.poll() != -signal.SIGKILL:
            return False
        kills = out_of_memory_kills()
        return kills is None or self._oom_kills_at_start is None or kills > self._oom_kills_at_start

    def exit_cause(self) -> str:
        """How the worker ended, in words (for a worker that has exited)."""
        if self._hung_for is not None:
            return f"was stopped: it made no progress for {self._hung_for:.0f} s while answering"
        if self.out_of_memory:
            return "was killed by the kernel's out-of-memory killer"
        code = self._process.poll()
        if code == RPC_LOST_EXIT_CODE:
            return f"lost its connection to an RPC server of its pool ({self._rpc_loss()})"
        return "was killed (SIGKILL)" if code == -signal.SIGKILL else f"exited with code {code}"

    def _rpc_loss(self) -> str:
        """The worker's own line on the RPC server it lost (it names the pool and llama.cpp's reason)."""
        lines = [line for line in log_tail(self.log_path).splitlines() if "lost the RPC server" in line]
        return lines[-1].removeprefix("error: ") if lines else "see its log"

    async def _why_failed(self) -> str:
        """Why the worker stopped answering. Its connections close as its process exits, a moment before
        the exit can be seen: wait that moment, so that the cause it exited with is the one told."""
        deadline = time.monotonic() + EXIT_SEEN_WITHIN_SECONDS
        while self._process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._hung_for is None and self._process.poll() is None:
            return "the connection to the model's worker process was lost"
        return f"the model's worker process {self.exit_cause()}; it will be started again"

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit (SIGTERM), kill it after `timeout`, and clean up."""
        self._stopping = True
        if self.alive:
            self._process.terminate()
            deadline = time.monotonic() + timeout
            while self.alive and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.alive:
                self._process.kill()
                await asyncio.to_thread(self._process.wait)
        await self._client.aclose()
        for path in (self.socket_path, handoff_path(self.socket_path)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
