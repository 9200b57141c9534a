"""Memory-aware loading through the real runner, with a memory budget set (DOCKER_MODEL_MEMORY_BUDGET):
a packaged context too large for the budget shrinks, one set with configure is refused with the sizes,
and an idle model makes room for another. The budget stands in for a machine's available memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from docker_model.runner.fit import CONTEXT_FLOOR
from tests.fixtures.cgroup import memory_limited
from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env

from .conftest import load_model
from .test_inference import FRANCE

pytestmark = pytest.mark.integration

MiB = 1024**2
BUDGET = 700 * MiB  # SmolLM2 with 4 sequences of 8192 tokens needs about 914 MiB, of 1024 about 277 MiB
HUGE, SMALL = "ai/huge-context", "ai/small-context"


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[RunnerEnv]:
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_MEMORY_BUDGET=f"{BUDGET // MiB}MiB")
    with direct_runner(env):
        load_model(env.base_url, smollm2_gguf, HUGE, context_size=131072)
        load_model(env.base_url, smollm2_gguf, SMALL, context_size=2048)
        yield env


def chat(env: RunnerEnv, model: str) -> requests.Response:
    body = {"model": model, "messages": [FRANCE], "max_tokens": 4}
    return requests.post(f"{env.base_url}/engines/v1/chat/completions", json=body, timeout=120)


def running(env: RunnerEnv) -> dict[str, dict]:
    return {entry["model_name"]: entry for entry in requests.get(f"{env.base_url}/engines/ps", timeout=10).json()}


def test_a_packaged_context_too_large_loads_with_the_largest_that_fits(budgeted: RunnerEnv) -> None:
    assert chat(budgeted, HUGE).status_code == 200
    loaded = running(budgeted)[HUGE]
    assert CONTEXT_FLOOR <= loaded["context_size"] < 8192 and loaded["sequences"] == 4
    assert loaded["context_size"] % 256 == 0
    assert "packaged with the model (131072 tokens), reduced to fit" in loaded["context_reason"]
    assert loaded["memory_estimated"] <= BUDGET
    measured = loaded["memory_measured"]
    assert measured is not None and abs(measured - loaded["memory_estimated"]) <= 0.15 * measured


def test_a_configured_context_that_cannot_fit_is_a_507_with_the_sizes(budgeted: RunnerEnv) -> None:
    def settings() -> tuple[dict, int]:
        url = f"{budgeted.base_url}/engines/_configure"
        [entry] = requests.get(url, params={"model": HUGE}, timeout=30).json()
        return entry["Config"], entry["context_size"]

    before = settings()
    response = requests.post(
        f"{budgeted.base_url}/engines/_configure", json={"model": HUGE, "context-size": 8192}, timeout=120
    )
    assert response.status_code == 507, response.text
    error = response.json()["error"]
    assert error["code"] == "insufficient_memory" and error["param"] == "model"
    message = error["message"]
    assert "does not fit" in message and "8192 tokens × 4 sequences" in message and "700.00MiB" not in message
    assert "docker model configure --context-size" in message
    assert settings() == before  # a configure that cannot load is taken back


def test_an_idle_model_is_unloaded_to_make_room_for_another(budgeted: RunnerEnv) -> None:
    assert chat(budgeted, HUGE).status_code == 200
    assert chat(budgeted, SMALL).status_code == 200
    loaded = running(budgeted)
    assert set(loaded) == {SMALL}  # the first one, idle, made room rather than the second shrinking
    assert loaded[SMALL]["context_size"] == 2048 and loaded[SMALL]["context_reason"] == "packaged with the model"


def test_a_worker_killed_for_memory_is_reported_and_the_next_load_is_smaller(
    tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> None:
    """A real out-of-memory kill: the runner and its worker in a control group of 450 MiB, told by a budget
    that 8 GiB are there, so the estimate lets a model of 4 × 8192 tokens (about 914 MiB) start."""
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_MEMORY_BUDGET="8GiB")
    with memory_limited(450 * MiB) as prefix, direct_runner(env, prefix=prefix):
        load_model(env.base_url, smollm2_gguf, HUGE, context_size=8192)
        failures = []
        for _ in range(6):  # each failure leaves the next load 3/4 of the memory of the one before
            answer = chat(env, HUGE)
            if answer.status_code == 200:
                break
            failures.append(answer.json()["error"]["message"])
        else:
            pytest.fail(f"the model never loaded: {failures}")
        assert failures and all("ran out of memory" in message for message in failures), failures
        loaded = running(env)[HUGE]
        assert loaded["context_size"] < 8192 and "it ran out of memory with more" in loaded["context_reason"]
