"""`/metrics` through the real runner: it parses with prometheus_client's own parser, and its counters move
by exactly what a known set of requests did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env

from .conftest import load_model
from .test_inference import FRANCE, SYSTEM

pytestmark = pytest.mark.integration

MODEL = "ai/smollm2"
CHAT_ROUTE = "/engines/v1/chat/completions"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[RunnerEnv]:
    env = make_runner_env(tmp_path_factory)
    with direct_runner(env):
        load_model(env.base_url, smollm2_gguf, MODEL)
        yield env


def scrape(env: RunnerEnv) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample: (name, sorted labels) -> value."""
    text = requests.get(f"{env.base_url}/metrics", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_by_what_the_requests_did(fresh: RunnerEnv) -> None:
    client = openai.OpenAI(base_url=f"{fresh.base_url}/engines/v1", api_key="unused", max_retries=0)
    before = scrape(fresh)
    usages = [
        client.chat.completions.create(model=MODEL, messages=[SYSTEM, FRANCE], max_tokens=4 + i, temperature=0).usage
        for i in range(3)
    ]
    stream = client.chat.completions.create(model=MODEL, messages=[SYSTEM, FRANCE], max_tokens=3, stream=True)
    streamed = sum(1 for chunk in stream if chunk.choices and chunk.choices[0].delta.content)
    missing = requests.post(
        f"{fresh.base_url}{CHAT_ROUTE}", json={"model": "ai/nowhere", "messages": [FRANCE]}, timeout=30
    )
    assert missing.status_code == 404
    after = scrape(fresh)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("docker_model_requests_total", route=CHAT_ROUTE, model=MODEL, status="200") == 4
    assert moved("docker_model_requests_total", route=CHAT_ROUTE, model="", status="404") == 1
    generated = sum(usage.completion_tokens for usage in usages if usage) + streamed
    prompt = sum(usage.prompt_tokens for usage in usages if usage) + (usages[0].prompt_tokens if usages[0] else 0)
    assert moved("docker_model_generated_tokens_total", model=MODEL) == generated
    assert moved("docker_model_prompt_tokens_total", model=MODEL) == prompt
    assert moved("docker_model_time_to_first_token_seconds_count", model=MODEL) == 4
    assert moved("docker_model_model_loads_total", model=MODEL, result="loaded") == 1
    assert value(after, "docker_model_model_load_seconds_count", model=MODEL) == 1
    assert value(after, "docker_model_busy_sequences", model=MODEL) == 0
    assert value(after, "docker_model_queue_depth", model=MODEL) == 0
    assert value(after, "docker_model_resident_memory_bytes", process="runner", model="") > 10e6
    assert value(after, "docker_model_resident_memory_bytes", process="worker", model=MODEL) > 50e6
