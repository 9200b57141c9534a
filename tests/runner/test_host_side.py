"""The runner's host side, fast and without a model: the scheduler against stand-in workers, the
hand-over's wire protocol over a socket pair, the progress throttle, and the middleware."""

from __future__ import annotations

import asyncio
import itertools
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from docker_model.distribution import Model, ProgressEvent, Store
from docker_model.distribution.packaging import package
from docker_model.runner import scheduler as scheduler_module
from docker_model.runner.accelerator import Accelerator
from docker_model.runner.api import progress
from docker_model.runner.api.access import AccessGuard, Origins
from docker_model.runner.api.access import needs_token as needs_token_for
from docker_model.runner.api.middleware import MAX_BODY_BYTES, BodyLimit
from docker_model.runner.fit import ALL_LAYERS, ModelDoesNotFit
from docker_model.runner.handover import Reports, read_reports
from docker_model.runner.launch import WorkerSpec
from docker_model.runner.listeners import ListenError, Listeners, bind, kind_of
from docker_model.runner.model_settings import ModelSettings, SettingsBook
from docker_model.runner.scheduler import ModelLoadError, ModelsBusyError, Scheduler
from docker_model.runner.shared.wire import REPORT_DONE, REPORT_STARTED, HandedRequest
from docker_model.runner.workers import WorkerStartError
from tests.fixtures.gguf_files import write_gguf

PIDS = itertools.count(1000)

MiB = 1024**2


@dataclass
class StandInWorker:
    """What the scheduler uses of a worker process: a pid, whether it lives and how it ended, and stop()."""

    spec: WorkerSpec
    pid: int = field(default_factory=lambda: next(PIDS))
    alive: bool = True
    stopped: bool = False
    out_of_memory: bool = False

    def exit_cause(self) -> str:
        return "was killed by the kernel's out-of-memory killer" if self.out_of_memory else "exited"

    async def stop(self) -> None:
        self.alive, self.stopped = False, True


@dataclass
class StandInLauncher:
    """Starts stand-in workers; a model whose GGUF is named in `broken` fails to load."""

    broken: set[str] = field(default_factory=set)
    started: list[StandInWorker] = field(default_factory=list)
    delay: float = 0.0

    async def __call__(self, spec: WorkerSpec, socket_path: Path, log_path: Path) -> StandInWorker:
        await asyncio.sleep(self.delay)
        if spec.model_name in self.broken:
            raise WorkerStartError("the model worker exited with code 1 while loading", "error: bad weights")
        worker = StandInWorker(spec)
        self.started.append(worker)
        return worker


@pytest.fixture
def models(tmp_path: Path) -> tuple[Store, dict[str, Model]]:
    store = Store(tmp_path / "models")
    found = {}
    for seed, name in enumerate(("a", "b", "c")):
        found[name] = store.write_artifact(package(write_gguf(tmp_path / f"{name}.gguf", seed)), [name])
    return store, found


def scheduler_for(store: Store, tmp_path: Path, launcher: StandInLauncher, max_loaded: int = 2) -> Scheduler:
    accelerator = Accelerator("cpu", "test", threads=2)
    return Scheduler(
        store,
        SettingsBook(tmp_path / "settings.json"),
        accelerator,
        tmp_path / "logs",
        max_loaded=max_loaded,
        start_worker=launcher,  # type: ignore[arg-type]
    )


def test_least_recently_used_idle_model_makes_room(models: tuple[Store, dict[str, Model]], tmp_path: Path) -> None:
    store, found = models
    launcher = StandInLauncher()

    async def scenario() -> list[str]:
        scheduler = scheduler_for(store, tmp_path, launcher)
        for name in ("a", "b", "a", "c"):  # b is the least recently used when c arrives
            scheduler.release(await scheduler.acquire(found[name], name))
        return [loaded.name for loaded in scheduler.running()]

    assert asyncio.run(scenario()) == ["a", "c"]
    assert [w.spec.model_name for w in launcher.started] == ["a", "b", "c"]
    assert [w.spec.model_name for w in launcher.started if w.stopped] == ["b"]


def test_concurrent_requests_for_one_model_share_one_load(
    models: tuple[Store, dict[str, Model]], tmp_path: Path
) -> None:
    store, found = models
    launcher = StandInLauncher(delay=0.05)

    async def scenario() -> None:
        scheduler = scheduler_for(store, tmp_path, launcher)
        loaded = await asyncio.gather(*(scheduler.acquire(found["a"], "a") for _ in range(5)))
        assert len({id(m) for m in loaded}) == 1 and loaded[0].in_flight == 5

    asyncio.run(scenario())
    assert len(launcher.started) == 1


def test_a_model_that_fails_to_load_evicts_nothing(models: tuple[Store, dict[str, Model]], tmp_path: Path) -> None:
    store, found = models
    launcher = StandInLauncher(broken={"b"})

    async def scenario() -> None:
        scheduler = scheduler_for(store, tmp_path, launcher, max_loaded=1)
        scheduler.release(await scheduler.acquire(found["a"], "a"))
        with pytest.raises(ModelLoadError, match="model b failed to load: error: bad weights"):
            await scheduler.acquire(found["b"], "b")
        assert [loaded.name for loaded in scheduler.running()] == ["a"]

    asyncio.run(scenario())
    assert not launcher.started[0].stopped


def test_busy_models_are_not_evicted(
    models: tuple[Store, dict[str, Model]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, found = models
    monkeypatch.setattr(scheduler_module, "BUSY_WAIT_SECONDS", 0.2)

    async def scenario() -> None:
        scheduler = scheduler_for(store, tmp_path, StandInLauncher(), max_loaded=1)
        await scheduler.acquire(found["a"], "a")  # in use, never released
        with pytest.raises(ModelsBusyError, match="1 models are loaded and stayed busy for 0 s"):
            await scheduler.acquire(found["b"], "b")

    asyncio.run(scenario())


def test_a_model_waits_for_a_busy_one_to_finish_then_takes_its_place(
    models: tuple[Store, dict[str, Model]], tmp_path: Path
) -> None:
    store, found = models

    async def scenario() -> None:
        scheduler = scheduler_for(store, tmp_path, StandInLauncher(), max_loaded=1)
        busy = await scheduler.acquire(found["a"], "a")
        asyncio.get_running_loop().call_later(0.2, scheduler.release, busy)
        scheduler.release(await scheduler.acquire(found["b"], "b"))
        assert [loaded.name for loaded in scheduler.running()] == ["b"]

    asyncio.run(scenario())


def test_a_dead_worker_is_started_again_and_keep_alive_zero_unloads(
    models: tuple[Store, dict[str, Model]], tmp_path: Path
) -> None:
    store, found = models
    launcher = StandInLauncher()

    async def scenario() -> None:
        scheduler = scheduler_for(store, tmp_path, launcher)
        first = await scheduler.acquire(found["a"], "a")
        scheduler.release(first)
        first.worker.alive = False  # it crashed
        second = await scheduler.acquire(found["a"], "a")
        assert second.worker is not first.worker
        scheduler.release(second)
        scheduler.settings.set(found["c"].id, ModelSettings(keep_alive=0))
        scheduler.release(await scheduler.acquire(found["c"], "c"))
        expired = [key for key, m in scheduler.loaded.items() if m.expired(m.last_used)]
        assert expired == [found["c"].id]

    asyncio.run(scenario())
    assert len(launcher.started) == 3


def test_a_handed_request_crosses_the_wire_whole() -> None:
    request = HandedRequest(
        "POST", "/v1/chat/completions", b"a=1", [(b"content-type", b"application/json")], b'{"x": "\xc3\xa9"}', "1.0"
    )

    async def scenario() -> tuple[HandedRequest, Reports]:
        left, right = socket.socketpair()
        reader, reader_side = await asyncio.open_connection(sock=left)
        _, writer = await asyncio.open_connection(sock=right)
        writer.write(request.encode())
        writer.write(REPORT_STARTED + b" 200 text/event-stream\n" + REPORT_DONE + b"\n")
        await writer.drain()
        writer.close()
        try:
            return await HandedRequest.read(reader), await read_reports(reader)
        finally:
            reader_side.close()

    received, reports = asyncio.run(scenario())
    assert received == request and not received.can_chunk
    assert reports == Reports(200, "text/event-stream", True)


def test_reports_cut_short_say_the_worker_is_gone() -> None:
    async def scenario() -> Reports:
        reader = asyncio.StreamReader()
        reader.feed_data(REPORT_STARTED + b" 200 application/json\n")
        reader.feed_eof()
        return await read_reports(reader)

    assert asyncio.run(scenario()) == Reports(200, "application/json", False)


def test_a_worker_that_died_with_the_request_unread_is_gone() -> None:
    """A worker killed between accepting the hand-over and reading it resets the control connection
    (its unread request is dropped) rather than closing it; the runner must still answer the client."""

    async def scenario() -> Reports:
        ours, workers = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        writer.write(b"a request the worker never reads")
        await writer.drain()
        workers.close()
        try:
            return await read_reports(reader)
        finally:
            writer.close()

    assert asyncio.run(scenario()) == Reports(None, None, False)


def test_progress_lines_are_throttled_per_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 0.01, 0.02, 0.03, 0.5, 0.51])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines: list[dict] = []
    throttle = progress.ProgressThrottle("Downloaded", lines.append)  # type: ignore[arg-type]
    size = 10 * 1024 * 1024
    for current in (1000, 2000, 3000, 4000, 5000):  # small steps within 100 ms: one line, then one at 0.5 s
        throttle(ProgressEvent("sha256:" + "a" * 64, size, current, size))
    throttle(ProgressEvent("sha256:" + "a" * 64, size, size, size, "Download complete"))
    assert [line["layer"]["current"] for line in lines] == [1000, 5000, size]
    assert lines[-1]["message"] == "aaaaaaaaaaaa: Download complete"
    assert lines[0]["message"] == "Downloaded 1.00kB of 10.49MB"


TOKEN = "s3cret-token"


def guarded_app(extra_address: str | None = None, origins: str = "") -> TestClient:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    paths = ["/echo", "/", "/v1/chat/completions", "/api/chat", "/models", "/engines/ps", "/metrics"]
    routes = [Route(path, echo, methods=["GET", "POST"]) for path in paths]
    listeners = Listeners(port=12434, tls=False, scope_setting=None, bridge_interface=None)
    listeners.add("127.0.0.1", "loopback")
    if extra_address is not None:
        listeners.add(extra_address, kind_of(extra_address, "10.9.9.1"))
    guard = Middleware(AccessGuard, listeners=listeners, token=TOKEN, origins=Origins(origins))
    return TestClient(Starlette(routes=routes, middleware=[guard, Middleware(BodyLimit)]), base_url="http://localhost")


@pytest.fixture
def guarded() -> TestClient:
    return guarded_app()


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 200),
        ("http://localhost:3000", 200),
        ("http://127.0.0.1", 200),
        ("https://evil.example", 403),
        ("http://[bad", 403),
    ],
)
def test_foreign_browser_origins_are_refused(guarded: TestClient, origin: str | None, status: int) -> None:
    headers = {"Origin": origin} if origin else {}
    response = guarded.get("/echo", headers=headers)
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "forbidden"
    elif origin:
        assert response.headers["access-control-allow-origin"] == origin


def test_dmr_origins_allows_more_origins_and_their_preflights() -> None:
    client = guarded_app(origins="https://app.example, http://tool.test:8080")
    preflight = client.options(
        "/v1/chat/completions",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
    foreign = client.options(
        "/v1/chat/completions", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert foreign.status_code == 403
    assert client.get("/echo", headers={"Origin": "http://tool.test:8080"}).status_code == 200
    assert guarded_app(origins="*").get("/echo", headers={"Origin": "https://any.example"}).status_code == 200


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost:12434", 200),
        ("127.0.0.1:12434", 200),
        ("[::1]:12434", 200),
        ("host.docker.internal:12434", 200),
        ("evil.example", 403),
        ("evil.example:12434", 403),
        ("localhost.evil.example", 403),
        ("[not-an-address", 403),
    ],
)
def test_loopback_refuses_host_names_of_other_machines(guarded: TestClient, host: str, status: int) -> None:
    """DNS rebinding: a page from evil.example whose name now points at 127.0.0.1 still sends its own name."""
    assert guarded.get("/echo", headers={"Host": host}).status_code == status


@pytest.mark.parametrize(
    ("address", "path", "needs_token"),
    [
        ("10.9.9.1", "/v1/chat/completions", False),  # the bridge: inference is open
        ("10.9.9.1", "/api/chat", False),
        ("10.9.9.1", "/models", True),  # management is not
        ("10.9.9.1", "/engines/ps", True),
        ("10.9.9.1", "/metrics", True),
        ("10.9.9.1", "/echo", True),  # default deny: a route not listed as inference
        ("10.9.9.1", "/", False),  # the health check never needs it
        ("192.0.2.50", "/v1/chat/completions", True),  # any other address: everything
        ("192.0.2.50", "/", False),
    ],
)
def test_the_token_guards_what_each_address_exposes(address: str, path: str, needs_token: bool) -> None:
    client = guarded_app(address)
    client.base_url = client.base_url.copy_with(host=address)  # the request arrives on that address
    anonymous = client.get(path, headers={"Host": address})
    assert anonymous.status_code == (401 if needs_token else 200)
    if needs_token:
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["error"]["code"] == "unauthorized"
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get(path, headers={"x-api-key": TOKEN}).status_code == 200  # Anthropic's clients


def test_bodies_over_the_limit_are_refused_declared_or_streamed(guarded: TestClient) -> None:
    assert guarded.post("/echo", content=b"x" * 10).text == "10"
    declared = guarded.post("/echo", content=b"x" * (MAX_BODY_BYTES + 1))
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "request_too_large"

    def chunks():  # no content-length: counted as it streams
        for _ in range(11):
            yield b"x" * (1024 * 1024)

    streamed = guarded.post("/echo", content=chunks())
    assert streamed.status_code == 413


def test_a_gpu_with_too_little_free_memory_gets_a_smaller_model_or_a_refusal(
    smollm2_gguf: Path, tmp_path: Path
) -> None:
    """No GPU here: the driver's free-memory figure is a stand-in (every layer would go to the GPU)."""
    store = Store(tmp_path / "models")
    model = store.write_artifact(package(smollm2_gguf), ["ai/smollm2"])
    launcher = StandInLauncher()

    async def load(free_vram: int) -> WorkerSpec:
        accelerator = Accelerator("cuda", "stand-in GPU", threads=2, free_vram=lambda: free_vram)
        settings = SettingsBook(tmp_path / "settings.json")
        scheduler = Scheduler(store, settings, accelerator, tmp_path / "logs", start_worker=launcher)  # type: ignore[arg-type]
        loaded = await scheduler.acquire(model, "ai/smollm2")
        assert "GPU memory" in loaded.fit.reason
        return loaded.worker.spec

    spec = asyncio.run(load(600 * MiB))
    assert spec.ctx_size * spec.parallel < 4096 * 4 and spec.n_gpu_layers == ALL_LAYERS
    with pytest.raises(ModelDoesNotFit, match="GPU memory"):
        asyncio.run(load(300 * MiB))


def test_an_address_this_machine_lacks_is_named_with_the_way_out() -> None:
    with pytest.raises(ListenError, match=r"cannot listen on 198\.51\.100\.7:\d+: .*--host or MODEL_RUNNER_BIND"):
        bind("198.51.100.7", 12434)


@pytest.mark.parametrize(
    ("method", "path", "needs_token"),
    [
        ("POST", "/v1/chat/completions", False),
        ("POST", "/api/chat", False),
        ("GET", "/models", True),
        ("DELETE", "/models/ai/x", True),
        ("DELETE", "/models/purge", True),
        ("POST", "/models/create", True),
        ("POST", "/engines/_configure", True),
        ("POST", "/api/pull", True),  # Ollama's ways to manage models too
        ("DELETE", "/api/delete", True),
        ("POST", "/api/copy", True),
    ],
)
def test_management_on_loopback_keeps_other_local_users_from_managing_models(
    method: str, path: str, needs_token: bool
) -> None:
    """DOCKER_MODEL_REQUIRE_TOKEN=management, the README's advice for shared machines."""
    listeners = Listeners(port=12434, tls=False, scope_setting="management", bridge_interface=None)
    listener = listeners.add("127.0.0.1", "loopback")
    assert listener.token_scope == "management"
    assert needs_token_for(listener, method, path) is needs_token
