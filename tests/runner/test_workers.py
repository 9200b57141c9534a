"""Starting workers from the runner: a worker answers handed-over clients, is killed mid-stream, starts afresh."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import openai
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from docker_model.runner.handover import HandOver, HandOverProtocol
from docker_model.runner.launch import WorkerSpec
from docker_model.runner.workers import WorkerProcess, WorkerStartError
from tests.fixtures.registry import free_port
from tests.runner.worker.conftest import FRANCE

pytestmark = pytest.mark.integration


@asynccontextmanager
async def runner_like(workers: dict[str, WorkerProcess]) -> AsyncIterator[openai.AsyncOpenAI]:
    """A minimal runner: every /v1 request is handed over to `workers["model"]`."""

    async def route(request: Request) -> HandOver:
        body = await request.body()
        return workers["model"].hand_over(request, body, "/v1/" + request.path_params["path"])

    app = Starlette(routes=[Route("/v1/{path:path}", route, methods=["GET", "POST"])])
    port = free_port()
    config = uvicorn.Config(app, port=port, http=HandOverProtocol, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    finally:
        server.should_exit = True
        await task


async def ask_france(client: openai.AsyncOpenAI) -> str:
    reply = await client.chat.completions.create(model="smollm2", messages=FRANCE, temperature=0)
    return reply.choices[0].message.content


def test_killed_worker_gives_an_error_and_a_fresh_start_works(smollm2_gguf: Path, tmp_path: Path) -> None:
    spec = WorkerSpec(smollm2_gguf, ctx_size=4096, parallel=1)

    async def scenario() -> None:
        worker = await WorkerProcess.start(spec, tmp_path / "w.sock", tmp_path / "w.log")
        workers = {"model": worker}
        assert worker.alive and worker.rss_bytes() > 20 * 2**20
        try:
            async with runner_like(workers) as client:
                assert "Paris" in await ask_france(client)
                stream = await client.chat.completions.create(
                    model="smollm2",
                    messages=[{"role": "user", "content": "Tell me a very long story."}],
                    max_tokens=4000,
                    stream=True,
                    extra_body={"ignore_eos": True},
                )
                received = 0
                with pytest.raises(openai.APIError, match=r"was killed \(SIGKILL\)|was lost"):
                    async for _chunk in stream:
                        received += 1
                        if received == 3:
                            os.kill(worker.pid, signal.SIGKILL)
                assert received >= 3
                with pytest.raises(openai.InternalServerError) as caught:
                    await ask_france(client)
                assert caught.value.status_code == 500
                assert not worker.alive

                workers["model"] = await WorkerProcess.start(spec, tmp_path / "w2.sock", tmp_path / "w2.log")
                assert "Paris" in await ask_france(client)
        finally:
            for each in {worker, workers["model"]}:
                await each.stop()
        assert not workers["model"].alive
        assert not (tmp_path / "w2.sock").exists()

    asyncio.run(scenario())


def test_a_worker_that_cannot_load_raises_with_its_log(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file")

    async def scenario() -> None:
        with pytest.raises(WorkerStartError, match="exited with code 1") as caught:
            await WorkerProcess.start(WorkerSpec(bogus), tmp_path / "w.sock", tmp_path / "w.log")
        assert "could not load" in caught.value.log_tail

    asyncio.run(scenario())
