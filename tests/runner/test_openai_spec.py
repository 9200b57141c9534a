"""The runner's real answers against OpenAI's published OpenAPI spec (vendored in tests/openai_spec), on
every path prefix the OpenAI API is served at: chat and completions, whole and streamed (every chunk,
the usage chunk, the `[DONE]` end), embeddings as floats and as base64, models listed and retrieved
(one created at the epoch), and the error body of every status the runner gives these routes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from docker_model import distribution
from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env
from tests.openai_spec.conformance import validate
from tests.runner.conftest import MODEL

pytestmark = pytest.mark.integration

PREFIXES = ("/v1", "/engines/v1", "/engines/llama.cpp/v1")
EPOCH_MODEL = "ai/epoch"
MESSAGES = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def spec_runner(served: RunnerEnv, smollm2_gguf: Path) -> RunnerEnv:
    """The served runner, also holding a model whose artifact says it was created at the Unix epoch."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    archive = model_archive(smollm2_gguf, created=epoch)
    loaded = requests.post(f"{served.base_url}/models/load", params={"tag": EPOCH_MODEL}, data=archive, timeout=120)
    assert loaded.status_code == 201, loaded.text
    return served


def model_archive(gguf: Path, created: datetime | None = None) -> bytes:
    """A `docker model load` archive of `gguf`."""
    archive = io.BytesIO()
    distribution.write_model_tar(distribution.package(gguf, created=created), archive)
    return archive.getvalue()


def sse_payloads(response: requests.Response) -> Iterator[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    for line in response.iter_lines():  # bytes: a decoded line would also be cut at U+0085 or U+2028
        if line.startswith(b"data: "):
            yield line.removeprefix(b"data: ").decode()


def streamed(url: str, body: dict, chunk_schema: str) -> list[dict]:
    """Every chunk of a stream, each valid against `chunk_schema`; the stream must end with `[DONE]`."""
    with requests.post(url, json={**body, "stream": True}, stream=True, timeout=120) as response:
        payloads = list(sse_payloads(response))
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    for chunk in chunks:
        validate(chunk_schema, chunk)
    return chunks


@pytest.mark.parametrize("prefix", PREFIXES)
def test_chat_completions(spec_runner: RunnerEnv, prefix: str) -> None:
    url = f"{spec_runner.base_url}{prefix}/chat/completions"
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 8, "logprobs": True, "top_logprobs": 2}
    whole = requests.post(url, json=body, timeout=120)
    assert whole.status_code == 200, whole.text
    validate("CreateChatCompletionResponse", whole.json())
    chunks = streamed(url, {**body, "stream_options": {"include_usage": True}}, "CreateChatCompletionStreamResponse")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


def test_chat_tool_calls_and_json_output(spec_runner: RunnerEnv) -> None:
    url = f"{spec_runner.base_url}/v1/chat/completions"
    parameters = {"type": "object", "properties": {"name": {"enum": ["red", "blue"]}}, "required": ["name"]}
    tool = {"type": "function", "function": {"name": "colour", "parameters": parameters}}
    calling = {"tools": [tool], "tool_choice": "required", "parallel_tool_calls": False}
    called = requests.post(url, json={"model": MODEL, "messages": MESSAGES, "max_tokens": 60, **calling}, timeout=120)
    assert called.status_code == 200, called.text
    validate("CreateChatCompletionResponse", called.json())
    assert called.json()["choices"][0]["message"]["tool_calls"]
    formatted = {"type": "json_schema", "json_schema": {"name": "c", "schema": parameters}}
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 12, "response_format": formatted, "n": 2}
    answer = requests.post(url, json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    validate("CreateChatCompletionResponse", answer.json())
    streamed(
        url,
        {**body, "tools": [tool], "tool_choice": "required", "response_format": None},
        ("CreateChatCompletionStreamResponse"),
    )


@pytest.mark.parametrize("prefix", PREFIXES)
def test_completions(spec_runner: RunnerEnv, prefix: str) -> None:
    url = f"{spec_runner.base_url}{prefix}/completions"
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 8, "logprobs": 2}
    whole = requests.post(url, json=body, timeout=120)
    assert whole.status_code == 200, whole.text
    validate("CreateCompletionResponse", whole.json())
    chunks = streamed(url, {**body, "stream_options": {"include_usage": True}}, "CreateCompletionStreamResponse")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings(spec_runner: RunnerEnv, prefix: str, encoding: str) -> None:
    body = {"model": MODEL, "input": ["a cat", "a dog"], "encoding_format": encoding}
    answer = requests.post(f"{spec_runner.base_url}{prefix}/embeddings", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    validate("CreateEmbeddingResponse", answer.json())
    vector = answer.json()["data"][0]["embedding"]
    assert isinstance(vector, str if encoding == "base64" else list)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_models_listed_and_retrieved(spec_runner: RunnerEnv, prefix: str) -> None:
    listed = requests.get(f"{spec_runner.base_url}{prefix}/models", timeout=30)
    assert listed.status_code == 200
    validate("ListModelsResponse", listed.json())
    by_id = {model["id"]: model for model in listed.json()["data"]}
    assert by_id[f"{EPOCH_MODEL}:latest"]["created"] == 0
    for name in (MODEL, EPOCH_MODEL):
        retrieved = requests.get(f"{spec_runner.base_url}{prefix}/models/{name}", timeout=30)
        assert retrieved.status_code == 200
        validate("Model", retrieved.json())


def test_every_error_status_answers_the_error_body(
    spec_runner: RunnerEnv, tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> None:
    base = f"{spec_runner.base_url}/v1"
    answers = {
        400: requests.post(f"{base}/chat/completions", json={"model": MODEL, "messages": MESSAGES, "temprature": 1}),
        403: requests.get(f"{base}/models", headers={"Origin": "https://evil.example"}),
        404: requests.get(f"{base}/models/ai/none"),
        405: requests.delete(f"{base}/chat/completions"),
        413: requests.post(f"{base}/embeddings", data=b" " * (10 * 1024 * 1024 + 1)),
    }
    # 401 and 507 need a runner set up for them: the token required everywhere, and a memory budget
    # no model fits in.
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_REQUIRE_TOKEN="all", DOCKER_MODEL_MEMORY_BUDGET="1MiB")
    with direct_runner(env):
        token = (env.state_dir / "token").read_text().strip()
        answers[401] = requests.get(f"{env.base_url}/v1/models", timeout=30)
        loaded = requests.post(
            f"{env.base_url}/models/load",
            params={"tag": MODEL},
            data=model_archive(smollm2_gguf),
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
        assert loaded.status_code == 201, loaded.text
        answers[507] = requests.post(
            f"{env.base_url}/v1/chat/completions",
            json={"model": MODEL, "messages": MESSAGES},
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
    for status, answer in answers.items():
        assert answer.status_code == status, answer.text
        validate("ErrorResponse", answer.json())
        assert isinstance(answer.json()["error"]["code"], str)
