"""Starting, watching and stopping a model's worker process, from the runner's side.

This module must not import `llama_cpp`: the runner process stays small, and only workers load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.requests import Request

from docker_model.files import log_tail
from docker_model.processes import own_process_group
from docker_model.runner.handover import HandOver
from docker_model.runner.runtime_flags import check_runtime_flags
from docker_model.runner.shared.wire import HandedRequest

WORKER_MODULE = "docker_model.runner.worker"


@dataclass(frozen=True)
class WorkerSpec:
    """How to run one model. Runtime flags come last on the command line, so they win."""

    model_path: Path
    ctx_size: int = 4096
    parallel: int = 1
    threads: int | None = None
    n_gpu_layers: int = 0
    chat_template: Path | None = None
    runtime_flags: tuple[str, ...] = ()
    model_name: str | None = None

    def __post_init__(self) -> None:
        check_runtime_flags(self.runtime_flags)

    def argv(self, socket_path: Path) -> list[str]:
        # Isolated mode (-I), unbuffered (-u): only the installed package supplies the worker's code.
        args = [sys.executable, "-I", "-u", "-m", WORKER_MODULE, "--model", str(self.model_path)]
        args += ["--socket", str(socket_path), "--handoff-socket", str(handoff_path(socket_path))]
        args += ["--parent-pid", str(os.getpid())]
        args += ["--ctx-size", str(self.ctx_size), "--parallel", str(self.parallel)]
        args += ["--n-gpu-layers", str(self.n_gpu_layers)]
        if self.threads:
            args += ["--threads", str(self.threads)]
        if self.chat_template:
            args += ["--chat-template", str(self.chat_template)]
        if self.model_name:
            args += ["--model-name", self.model_name]
        return args + list(self.runtime_flags)


def handoff_path(socket_path: Path) -> Path:
    """Where the worker whose HTTP socket is `socket_path` takes client connections handed over."""
    return socket_path.with_suffix(".handoff")


class WorkerStartError(RuntimeError):
    """The worker died or did not become healthy; the message ends with its last log lines."""

    def __init__(self, message: str, log_tail: str):
        super().__init__(f"{message}\n{log_tail}".rstrip())
        self.log_tail = log_tail


class WorkerProcess:
    """A running worker: hand requests to it, watch it, stop it."""

    def __init__(self, spec: WorkerSpec, process: subprocess.Popen, socket_path: Path, log_path: Path):
        self.spec = spec
        self.socket_path = socket_path
        self.log_path = log_path
        self._process = process
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket_path)),
            base_url="http://worker",
            timeout=httpx.Timeout(None, connect=10.0),
        )

    @classmethod
    async def start(cls, spec: WorkerSpec, socket_path: Path, log_path: Path, timeout: float = 300.0) -> WorkerProcess:
        """Spawn the worker and return once its /health answers; raise WorkerStartError otherwise."""
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                spec.argv(socket_path),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **own_process_group(),  # the runner's session: see docker_model/processes.py
                cwd="/",
            )
        worker = cls(spec, process, socket_path, log_path)
        try:
            await worker._wait_healthy(timeout)
        except BaseException:
            await worker.stop()
            raise
        return worker

    async def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if not self.alive:
                message = f"the model worker exited with code {self._process.returncode} while loading"
                raise WorkerStartError(message, log_tail(self.log_path))
            with contextlib.suppress(httpx.TransportError):
                if (await self._client.get("/health", timeout=5.0)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise WorkerStartError(f"the model worker was not ready after {timeout:g}s", log_tail(self.log_path))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

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

    def hand_over(self, request: Request, body: bytes, path: str) -> HandOver:
        """An ASGI app that has the worker answer `request` (its `body` already read) at its `path`
        (e.g. "/v1/chat/completions") on the client's own connection."""
        handed = HandedRequest.of(request, path, body)
        return HandOver(handoff_path(self.socket_path), handed, self._why_failed)

    def _why_failed(self) -> str:
        code = self._process.poll()
        if code is None:
            return "the connection to the model's worker process was lost"
        return f"the model's worker process stopped unexpectedly (exit code {code}); it will be restarted"

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit (SIGTERM), kill it after `timeout`, and clean up."""
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
