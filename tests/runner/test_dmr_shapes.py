"""Shapes that Docker Model Runner's clients and scripts read, through the real runner: `/engines/ps` entries,
`mode` in progress lines, `X-Preload-Only`, the `bearer-token` of `/models/create` (against a registry that
takes tokens only, as Docker Hub does) and `raw-runtime-flags` on `_configure`."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from starlette.applications import Starlette
from starlette.testclient import TestClient

from docker_model.distribution import RegistryClient, Store
from docker_model.distribution.packaging import package
from docker_model.runner.accelerator import Accelerator
from docker_model.runner.api import engines
from docker_model.runner.model_settings import SettingsBook
from docker_model.runner.scheduler import Scheduler
from docker_model.runner.state import RunnerState
from tests.distribution.token_server import SERVICE, TokenServer
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import PASSWORD, USERNAME, RegistryServer, write_docker_config
from tests.fixtures.runner import RunnerEnv, StandInWorker
from tests.runner.conftest import MODEL

pytestmark = pytest.mark.integration

PS_KEYS_OF_DMR = {"model_name", "backend_name", "mode", "last_used", "in_use", "loading", "keep_alive"}


def post(env: RunnerEnv, path: str, body: object, **kwargs: object) -> requests.Response:
    return requests.post(f"{env.base_url}{path}", json=body, timeout=300, **kwargs)  # type: ignore[arg-type]


def ps(env: RunnerEnv) -> list[dict]:
    response = requests.get(f"{env.base_url}/engines/ps", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_preload_only_loads_the_model_and_ps_shows_dmr_fields(served: RunnerEnv) -> None:
    assert post(served, "/engines/unload", {"all": True}).status_code == 200
    preload = post(
        served, "/engines/v1/chat/completions", {"model": MODEL, "messages": []}, headers={"X-Preload-Only": "true"}
    )
    assert (preload.status_code, preload.content) == (200, b"")  # loaded, nothing answered (no messages needed)

    (entry,) = ps(served)
    assert entry.keys() >= PS_KEYS_OF_DMR
    assert (entry["model_name"], entry["backend_name"], entry["mode"]) == (MODEL, "llama.cpp", "completion")
    assert (entry["in_use"], entry["loading"], entry["keep_alive"]) == (False, False, "5m0s")
    assert datetime.fromisoformat(entry["last_used"].replace("Z", "+00:00")).year >= 2024  # RFC 3339, UTC
    assert entry["context_size"] > 0 and entry["pid"] > 0  # this runner's own fields stay

    configured = post(served, "/engines/_configure", {"model": MODEL, "keep_alive": "90m"})
    assert configured.status_code == 202, configured.text
    assert ps(served)[0]["keep_alive"] == "1h30m0s"  # Go's duration form, as DMR writes it

    refused = post(
        served, "/engines/v1/chat/completions", {"model": MODEL, "messages": []}, headers={"X-Preload-Only": "yes"}
    )
    assert refused.status_code == 400 and "X-Preload-Only" in refused.json()["error"]["message"]
    on_create = post(served, "/models/create", {"from": MODEL}, headers={"X-Preload-Only": "true"})
    assert on_create.status_code == 400 and "inference request" in on_create.json()["error"]["message"]


def test_raw_runtime_flags_are_split_and_checked(served: RunnerEnv) -> None:
    configured = post(served, "/engines/_configure", {"model": MODEL, "raw-runtime-flags": "--temp '0.5' --top-k=40"})
    assert configured.status_code == 202, configured.text
    settings = requests.get(f"{served.base_url}/engines/_configure", params={"model": MODEL}, timeout=30).json()
    assert settings[0]["Config"]["runtime-flags"] == ["--temp", "0.5", "--top-k=40"]

    for body, named in [
        ({"raw-runtime-flags": "--temp 0", "runtime-flags": ["--temp", "0"]}, "runtime-flags and raw-runtime-flags"),
        ({"raw-runtime-flags": "--temp '0"}, "not a valid shell-quoted string"),
        ({"raw-runtime-flags": "--mlock"}, "runtime flag --mlock is not allowed"),
    ]:
        refused = post(served, "/engines/_configure", {"model": MODEL, **body})
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert named in error["message"] and error["param"] in ("raw-runtime-flags", "runtime-flags")
    # a refused configure changes nothing
    settings = requests.get(f"{served.base_url}/engines/_configure", params={"model": MODEL}, timeout=30).json()
    assert settings[0]["Config"]["runtime-flags"] == ["--temp", "0.5", "--top-k=40"]
    assert post(served, "/engines/_configure", {"model": MODEL, "runtime-flags": []}).status_code == 202


def test_configured_models_come_in_dmrs_shape_with_what_is_in_effect(served: RunnerEnv) -> None:
    assert post(served, "/engines/_configure", {"model": MODEL, "keep_alive": "90m"}).status_code == 202
    [entry] = requests.get(f"{served.base_url}/engines/_configure", params={"model": MODEL}, timeout=30).json()
    assert entry["Backend"] == "llama.cpp" and entry["Model"] == f"{MODEL}:latest" and entry["Mode"] == "completion"
    assert entry["ModelID"].startswith("sha256:") and entry["Config"]["keep_alive"] == "1h30m0s"
    assert entry["keep_alive"] == 5400 and entry["context_size"] > 0 and entry["reason"]
    assert post(served, "/engines/_configure", {"model": MODEL, "keep_alive": "5m"}).status_code == 202


def test_unload_takes_dmrs_backend_field(served: RunnerEnv) -> None:
    wrong = post(served, "/engines/unload", {"all": True, "backend": "vllm"})
    assert wrong.status_code == 400 and "unknown backend 'vllm'" in wrong.json()["error"]["message"]
    assert post(served, "/engines/unload", {"all": True, "backend": "llama.cpp"}).status_code == 200


def test_bearer_token_pulls_a_private_model_and_is_never_logged(
    runner: RunnerEnv, token_registry: tuple[RegistryServer, TokenServer], tmp_path: Path
) -> None:
    registry, tokens = token_registry
    config = write_docker_config(tmp_path / "docker", registry.host, USERNAME, PASSWORD)
    reference = f"{registry.host}/private/tiny:v1"
    RegistryClient(Store(tmp_path / "src"), docker_config=config).push_artifact(
        package(write_gguf(tmp_path / "tiny.gguf")), reference
    )
    token = requests.get(
        tokens.realm,
        params={"scope": "repository:private/tiny:pull", "service": SERVICE},
        auth=(USERNAME, PASSWORD),
        timeout=30,
    ).json()["token"]

    anonymous = post(runner, "/models/create", {"from": reference})  # the runner has no `docker login` for it
    assert anonymous.status_code == 401, anonymous.text

    wrong = post(runner, "/models/create", {"from": reference, "bearer-token": token[:-8] + "AAAAAAAA"})
    assert wrong.status_code == 401 and "wrong username, password or token" in wrong.json()["error"]["message"]

    pulled = post(runner, "/models/create", {"from": reference, "bearer-token": token}, stream=True)
    assert pulled.status_code == 200, pulled.text
    lines = [json.loads(line) for line in pulled.iter_lines() if line]
    assert lines[-1]["type"] == "success" and {line["mode"] for line in lines} == {"pull"}
    assert any(line["type"] == "progress" for line in lines)
    assert requests.get(f"{runner.base_url}/models/{reference}", timeout=30).status_code == 200

    log = (runner.state_dir.parent / "runner.log").read_text()
    assert token not in log and token[:40] not in log


@pytest.mark.parametrize(("architecture", "mode"), [("llama", "completion"), ("bert", "embedding")])
def test_a_model_being_loaded_shows_as_loading(tmp_path: Path, architecture: str, mode: str) -> None:
    """A real load is over too soon to be seen reliably, so this one runs in-process against a worker start
    held until the test lets it finish."""
    store = Store(tmp_path / "models")
    model = store.write_artifact(
        package(write_gguf(tmp_path / "m.gguf", architecture=architecture)), ["docker.io/ai/held:latest"]
    )
    release = threading.Event()

    async def start_held(spec: object, socket_path: Path, log_path: Path) -> StandInWorker:
        await asyncio.to_thread(release.wait)
        return StandInWorker()

    settings = SettingsBook(tmp_path / "settings.json")
    scheduler = Scheduler(
        store, settings, Accelerator("cpu", "test", threads=1), tmp_path / "logs",
        start_worker=start_held,  # type: ignore[arg-type]
    )  # fmt: skip
    app = Starlette(routes=engines.routes)
    app.state.runner = RunnerState(store, RegistryClient(store), scheduler.accelerator, settings, scheduler, None)  # type: ignore[arg-type]
    with TestClient(app) as client:
        load = client.portal.start_task_soon(scheduler.acquire, model, "docker.io/ai/held:latest")
        try:
            while not scheduler.loading and not load.done():
                time.sleep(0.01)
            (entry,) = client.get("/engines/ps").json()
        finally:
            release.set()  # a failed assertion must not leave the load (and pytest's exit) waiting
        assert (entry["model_name"], entry["loading"], entry["in_use"], entry["mode"]) == (
            "ai/held:latest",
            True,
            False,
            mode,
        )
        assert (entry["last_used"], entry["keep_alive"], entry["context_size"]) == (
            "0001-01-01T00:00:00Z",
            "5m0s",
            None,
        )
        scheduler.release(load.result(timeout=30))
        (entry,) = client.get("/engines/ps").json()
        assert (entry["loading"], entry["pid"], entry["mode"]) == (False, 4242, mode)
