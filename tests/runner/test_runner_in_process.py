"""The runner's routes and scheduler in process, with workers stood in for (no model runs): prune never holds
the scheduler while the store is busy, deleting a model forgets what the runner kept of it, query flags,
`bearer-token` and `X-Preload-Only` on `/models/create`, `?model=` on `/engines/requests`, runtime flags on
configure, and the use of a model that stays loaded. Through the real runner: tests/cli/test_check_prune.py,
tests/runner/test_dmr_shapes.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.testclient import TestClient

from docker_model.api_types import ConfigureRequest
from docker_model.distribution import ConflictError, Model, Store, capabilities, package
from docker_model.distribution.store import usage
from docker_model.distribution.store.locks import exclusive
from docker_model.runner import scheduler as scheduling
from docker_model.runner.accelerator import Accelerator
from docker_model.runner.api import engines, models, recent, store_admin
from docker_model.runner.api.error_table import EXPECTED_ERRORS, handle_error
from docker_model.runner.model_settings import SettingsBook
from docker_model.runner.scheduler import Scheduler
from docker_model.runner.shared.error_body import APIError
from docker_model.runner.state import RunnerState
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.runner import StandInWorker

DAY = 24 * 3600.0


@dataclass
class StandInRegistry:
    """Records the pulls asked of it."""

    pulled: list[tuple[str, str | None]] = field(default_factory=list)

    def pull(
        self, reference: str, progress: object = None, cancel: object = None, bearer_token: str | None = None
    ) -> None:
        self.pulled.append((reference, bearer_token))


@dataclass
class InProcess:
    client: TestClient
    state: RunnerState
    registry: StandInRegistry

    def call(self, function: Any, *args: Any) -> Any:
        """Run a coroutine function on the app's event loop."""
        return self.client.portal.call(function, *args)


async def start_stand_in(spec: object, socket_path: Path, log_path: Path) -> StandInWorker:
    return StandInWorker()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[InProcess]:
    store = Store(tmp_path / "models")
    for seed, name in enumerate(("kept", "old")):
        store.write_artifact(package(write_gguf(tmp_path / f"{name}.gguf", seed=seed)), [f"ai/{name}"])
    settings = SettingsBook(tmp_path / "settings.json")
    scheduler = Scheduler(
        store, settings, Accelerator("cpu", "test", threads=1), tmp_path / "logs",
        start_worker=start_stand_in,  # type: ignore[arg-type]
    )  # fmt: skip
    registry = StandInRegistry()
    app = Starlette(
        routes=[*store_admin.routes, *models.routes, *engines.routes, *recent.routes],
        exception_handlers=dict.fromkeys(EXPECTED_ERRORS, handle_error),
    )
    state = RunnerState(store, registry, scheduler.accelerator, settings, scheduler, None)  # type: ignore[arg-type]
    app.state.runner = state
    with TestClient(app) as client:
        yield InProcess(client, state, registry)


def model(runner: InProcess, name: str) -> Model:
    return runner.state.store.get(name)


def backdate(store: Store, model_id: str, seconds: float) -> None:
    """Make the store's record say the model was last used `seconds` ago (a record is only ever raised)."""
    recorded = usage.read_last_used(store)
    recorded[model_id] = time.time() - seconds
    store.layout.usage_file.write_text('{"models": {}}')
    store.record_use(recorded)


def test_prune_never_holds_the_scheduler_while_the_store_is_busy(runner: InProcess) -> None:
    """A prune waiting for the store (a long check holds it) lets requests to loaded models through, and
    refuses to load the models it is deleting."""
    scheduler, store = runner.state.scheduler, runner.state.store
    kept, old = model(runner, "ai/kept"), model(runner, "ai/old")
    runner.call(scheduler.acquire, kept, "ai/kept")  # loaded and answering: never pruned
    backdate(store, old.id, 2 * DAY)

    checking, done = threading.Event(), threading.Event()

    def long_check() -> None:
        with exclusive(store.layout.lock_file):
            checking.set()
            done.wait(30)

    holder = threading.Thread(target=long_check)
    holder.start()
    checking.wait(10)
    pruned: list[Any] = []
    pruning = threading.Thread(
        target=lambda: pruned.append(
            runner.client.post("/models/_prune", json={"unused_for": "1d", "models": [old.id, kept.id]})
        )
    )
    pruning.start()
    try:
        deadline = time.monotonic() + 10
        while old.id not in scheduler.being_deleted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert old.id in scheduler.being_deleted and kept.id not in scheduler.being_deleted

        async def acquire_soon(chosen: Model, name: str) -> scheduling.LoadedModel:
            return await asyncio.wait_for(scheduler.acquire(chosen, name), 2)

        again = runner.call(acquire_soon, kept, "ai/kept")  # before: stalled behind the prune's lock
        assert again.in_flight == 2
        with pytest.raises(ConflictError, match="ai/old is being deleted"):
            runner.call(acquire_soon, old, "ai/old")
    finally:
        done.set()
        holder.join()
        pruning.join(30)
    answer = pruned[0]
    assert answer.status_code == 200, answer.text
    assert [m["id"] for m in answer.json()["models"]] == [old.id] and answer.json()["deleted"]
    assert [m.id for m in store.list()] == [kept.id] and not scheduler.being_deleted


def test_deleting_a_model_forgets_its_requests_and_capabilities(runner: InProcess, tmp_path: Path) -> None:
    state, store = runner.state, runner.state.store
    old = model(runner, "ai/old")

    def remember(chosen: Model) -> None:
        request = Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []})
        state.recent_requests.finish(state.recent_requests.begin(chosen.id, request, {"model": "m"}), None, None)
        capabilities.stored_capabilities(chosen, store.blobs.path)
        assert chosen.id in state.recent_requests.models and chosen.id in capabilities._cache

    def forgotten(model_id: str) -> bool:
        return model_id not in state.recent_requests.models and model_id not in capabilities._cache

    remember(old)
    assert runner.client.delete("/models/ai/old").status_code == 200
    assert forgotten(old.id)

    # check --repair removing a damaged model
    kept = model(runner, "ai/kept")
    remember(kept)
    store.blobs.path(kept.layers[0].digest).write_bytes(b"damaged")
    answer = runner.client.post("/models/_check", params={"repair": ""})  # the name alone: true
    assert answer.status_code == 200 and answer.json()["repaired"]
    assert forgotten(kept.id)

    # prune and purge
    again = store.write_artifact(package(write_gguf(tmp_path / "again.gguf", seed=7)), ["ai/again"])
    remember(again)
    backdate(store, again.id, 2 * DAY)
    assert runner.client.post("/models/_prune", json={"unused_for": "1d", "models": [again.id]}).json()["deleted"]
    assert forgotten(again.id)
    last = store.write_artifact(package(write_gguf(tmp_path / "last.gguf", seed=8)), ["ai/last"])
    remember(last)
    assert runner.client.delete("/models/purge", params={"force": "true"}).status_code == 200
    assert forgotten(last.id)


@pytest.mark.parametrize(
    ("method", "path", "parameter"),
    [
        ("POST", "/models/_check", "repair"),
        ("DELETE", "/models/purge", "force"),
        ("DELETE", "/models/ai/kept", "force"),
        ("GET", "/models/ai/kept", "remote"),
        ("GET", "/engines/requests", "include_existing"),
    ],
)
def test_query_flags_are_read_alike_and_unknown_values_refused(
    runner: InProcess, method: str, path: str, parameter: str
) -> None:
    answer = runner.client.request(method, path, params={parameter: "on"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == parameter and f"{parameter}='on' is not a boolean" in error["message"]
    assert model(runner, "ai/kept")  # nothing was deleted


def test_check_repairs_with_the_flag_alone_or_any_true_spelling(runner: InProcess) -> None:
    store = runner.state.store
    for spelling in ("", "1", "TRUE", "t"):
        store.blobs.write_bytes(*digest_of(f"left over {spelling}".encode()))
        answer = runner.client.post("/models/_check", params={"repair": spelling}).json()
        assert answer["repaired"] and any("deleted it" in problem for problem in answer["problems"])
    assert runner.client.post("/models/_check", params={"repair": "false"}).json()["problems"] == []


def digest_of(data: bytes) -> tuple[str, bytes]:
    from docker_model.distribution.artifact import sha256_digest

    return sha256_digest(data), data


def test_a_bearer_token_that_cannot_be_a_header_is_refused_without_echoing_it(runner: InProcess) -> None:
    for token in ("s3cr3t\nX-Injected: yes", "s3cr3t token", "s3cr3t\x00", "s3cr3t\u2028"):
        answer = runner.client.post("/models/create", json={"from": "ai/x", "bearer-token": token})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["param"] == "bearer-token" and "s3cr3t" not in answer.text
    assert runner.registry.pulled == []
    assert (
        runner.client.post("/models/create", json={"from": "ai/x", "bearer-token": "tok.en-_~+/="}).status_code == 200
    )
    assert runner.registry.pulled == [("ai/x", "tok.en-_~+/=")]


def test_preload_only_on_create_is_refused_only_when_true(runner: InProcess) -> None:
    refused = runner.client.post("/models/create", json={"from": "ai/x"}, headers={"X-Preload-Only": "true"})
    assert refused.status_code == 400 and "/engines/v1/chat/completions" in refused.json()["error"]["message"]
    for value in ("false", "False", "anything"):
        answer = runner.client.post("/models/create", json={"from": "ai/x"}, headers={"X-Preload-Only": value})
        assert answer.status_code == 200, answer.text
    assert len(runner.registry.pulled) == 3


def test_recent_requests_of_an_unknown_model_are_none(runner: InProcess) -> None:
    answer = runner.client.get("/engines/requests", params={"model": "ai/not-here"})
    assert (answer.status_code, answer.json()) == (200, [])


def configure_body(**fields: object) -> ConfigureRequest:
    return fields  # type: ignore[return-value]


def test_empty_runtime_flags_count_as_not_given() -> None:
    flags = engines.requested_runtime_flags
    assert flags(configure_body(**{"raw-runtime-flags": ""})) is None  # Go's omitempty: keeps the flags set
    assert flags(configure_body(**{"runtime-flags": ["--temp", "0.5"], "raw-runtime-flags": ""})) == ["--temp", "0.5"]
    assert flags(configure_body(**{"runtime-flags": [], "raw-runtime-flags": "--top-k=40"})) == ["--top-k=40"]
    assert flags(configure_body(**{"runtime-flags": None, "runtime_flags": ["--temp", "1"]})) == ["--temp", "1"]
    assert flags(configure_body(**{"runtime-flags": []})) == []  # the list alone, empty, clears them (`MODEL --`)
    assert flags(configure_body()) is None
    with pytest.raises(APIError, match="runtime-flags and raw-runtime-flags were both given"):
        flags(configure_body(**{"runtime-flags": ["--temp", "0"], "raw-runtime-flags": "--temp 0"}))


def test_the_use_of_a_model_that_stays_loaded_is_recorded_as_it_goes(
    runner: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model loaded for days (keep-alive -1) and used meanwhile: a runner killed later loses at most a
    minute of its use."""
    scheduler, store = runner.state.scheduler, runner.state.store
    kept = model(runner, "ai/kept")
    loaded = runner.call(scheduler.acquire, kept, "ai/kept")
    scheduler.release(loaded)
    backdate(store, kept.id, 3 * DAY)  # as if loaded three days ago
    loaded.recorded_use = time.time() - 3 * DAY
    loaded.last_used = time.time() - 60  # used a minute ago
    monkeypatch.setattr(scheduling, "REAP_INTERVAL_SECONDS", 0.01)
    monkeypatch.setattr(scheduling, "USE_RECORD_SECONDS", 0.05)

    async def reap_a_while() -> None:
        reaper = asyncio.create_task(scheduler.reap_forever())
        await asyncio.sleep(0.5)
        reaper.cancel()

    runner.call(reap_a_while)
    assert usage.read_last_used(store)[kept.id] == pytest.approx(loaded.last_used, abs=1)
    assert kept.id in scheduler.loaded  # recorded, not unloaded
