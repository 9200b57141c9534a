"""The runner's own routes fuzzed from the OpenAPI document it publishes (`GET /openapi.json`), with the
harness of the OpenAI fuzz test: EXAMPLES generated requests per operation, none may get a server error or
hang (each has a timeout), every 2xx body must match the document, and the runner must still answer
afterwards. The OpenAI routes are fuzzed from OpenAI's own spec (test_openai_fuzz.py); the operations that
reach the network (pull, push) or wipe the store (purge) or open a network bridge are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis

from tests.fixtures.fuzzing import Fuzzer
from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env
from tests.runner.conftest import MODEL, load_model

pytestmark = pytest.mark.integration

EXAMPLES = 40
LEFT_OUT = {"pullModel", "pushModel", "purgeModels", "openBridge", "post__api_pull"}
OPENAI_ROUTE = re.compile(r"(/engines(/llama\.cpp)?)?/v1/(chat/completions|completions|embeddings|models(/\{name\})?)")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[RunnerEnv]:
    env = make_runner_env(tmp_path_factory)
    with direct_runner(env) as runner:
        load_model(env.base_url, smollm2_gguf, MODEL)
        yield env
        assert runner.poll() is None, "the runner died while fuzzed"


def published(env: RunnerEnv) -> dict:
    answer = requests.get(f"{env.base_url}/openapi.json", timeout=30)
    assert answer.status_code == 200
    return answer.json()


def fit_to_local_model(case: schemathesis.Case) -> None:
    """Inference bodies name the test model and ask for few tokens; everything else is as generated (a
    delete names what the generator chose, so the model stays)."""
    path = case.operation.path
    inference = case.operation.method.lower() == "post" and ("/v1/" in path or path.startswith("/api/"))
    if isinstance(case.body, dict) and inference:
        case.body["model"] = MODEL
        for cap in ("max_tokens", "max_output_tokens"):
            if cap in case.body:
                case.body[cap] = 8


def operations(document: dict) -> list[str]:
    return sorted(
        operation["operationId"]
        for path, methods in document["paths"].items()
        for operation in methods.values()
        if operation["operationId"] not in LEFT_OUT and not OPENAI_ROUTE.fullmatch(path)
    )


def test_the_runner_publishes_its_routes(fuzzed: RunnerEnv) -> None:
    document = published(fuzzed)
    assert document["openapi"].startswith("3.1")
    for path in ("/", "/metrics", "/models", "/engines/_configure", "/v1/chat/completions", "/api/chat", "/api/tags"):
        assert path in document["paths"], path
    assert set(document["paths"]["/v1/responses/{response_id}"]) == {"get", "delete"}


@pytest.fixture(scope="module")
def fuzzer(fuzzed: RunnerEnv) -> Fuzzer:
    return Fuzzer(published(fuzzed), fuzzed.base_url, fit_to_local_model, timeout=60)


def test_fuzzed_runner_routes_never_get_a_server_error(
    fuzzer: Fuzzer, fuzzed: RunnerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    tallies = [fuzzer.run(operation_id, EXAMPLES) for operation_id in operations(fuzzer.spec)]
    with capsys.disabled():
        for tally in tallies:
            print(f"\n  fuzz {tally.report()}", end="")
        print()
    assert sum(tally.statuses[5] for tally in tallies) == 0
    assert sum(tally.statuses[2] for tally in tallies) > 0
    assert requests.get(f"{fuzzed.base_url}/", timeout=30).text == "Docker Model Runner is running"
    answer = requests.post(
        f"{fuzzed.base_url}/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        timeout=120,
    )
    assert answer.status_code in (200, 404), answer.text  # 404: a fuzzed delete may have removed it
