"""`python -m docker_model.runner --load MODEL`, as a cold `docker model run` starts it: the model's worker
is launched before the runner imports its web stack, and the runner adopts it rather than start another."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from docker_model.distribution import Store, package
from tests.fixtures.runner import direct_runner, make_runner_env

pytestmark = pytest.mark.integration

MODEL = "ai/smollm2"


def loaded_models(base_url: str, seconds: float = 60) -> list[dict]:
    """The loaded models of /engines/ps, once one is (or `seconds` passed); those still loading are left out."""
    deadline = time.monotonic() + seconds
    while True:
        running = [model for model in requests.get(f"{base_url}/engines/ps", timeout=10).json() if not model["loading"]]
        if running or time.monotonic() > deadline:
            return running
        time.sleep(0.1)


def test_the_model_loads_as_the_runner_starts_and_its_worker_serves_the_first_request(
    tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> None:
    env = make_runner_env(tmp_path_factory)
    Store(env.models_path).write_artifact(package(smollm2_gguf), tags=[MODEL])
    with direct_runner(env, f"--load={MODEL}"):
        [loaded] = loaded_models(env.base_url)  # no request asked for it
        assert loaded["model_name"] == MODEL
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}
        reply = requests.post(f"{env.base_url}/engines/v1/chat/completions", json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        assert requests.get(f"{env.base_url}/engines/ps", timeout=10).json()[0]["pid"] == loaded["pid"]
    [worker_log] = (env.state_dir / "logs").glob("model-*.log")
    assert worker_log.read_text().count(f"serving {MODEL} on ") == 1  # one worker started, not two


def test_a_model_that_is_not_stored_is_left_to_the_first_request(tmp_path_factory: pytest.TempPathFactory) -> None:
    env = make_runner_env(tmp_path_factory)
    with direct_runner(env, "--load=ai/absent"):
        assert requests.get(f"{env.base_url}/engines/ps", timeout=10).json() == []
        body = {"model": "ai/absent", "messages": [{"role": "user", "content": "hi"}]}
        reply = requests.post(f"{env.base_url}/engines/v1/chat/completions", json=body, timeout=30)
        assert reply.status_code == 404
    assert "not loading ai/absent ahead" in (env.state_dir.parent / "runner.log").read_text()
