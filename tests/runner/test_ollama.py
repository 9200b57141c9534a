"""Ollama's API through the official `ollama` client against the real runner: the store (list, show,
pull with progress from the test registry, copy, delete), what is loaded (ps, keep_alive 0), chat and
generate (streamed and not, `format` as a JSON Schema held to by the grammar), and embeddings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import ollama
import pytest

from docker_model.distribution import RegistryClient, Store
from docker_model.distribution.packaging import package
from tests.fixtures.registry import RegistryServer
from tests.fixtures.runner import RunnerEnv
from tests.fixtures.waiting import wait_until

from .conftest import load_model

pytestmark = pytest.mark.integration

MODEL = "ai/smollm2"
FRANCE = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}, "country": {"type": "string", "maxLength": 20}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
GREEDY = {"temperature": 0, "num_predict": 48}


@pytest.fixture(scope="module")
def client(runner: RunnerEnv, smollm2_gguf: Path) -> Iterator[ollama.Client]:
    load_model(runner.base_url, smollm2_gguf, MODEL)
    yield ollama.Client(host=runner.base_url, timeout=120)


def test_list_show_and_ps(client: ollama.Client) -> None:
    names = [entry.model for entry in client.list().models]
    assert "ai/smollm2:latest" in names
    shown = client.show(MODEL)
    assert shown.details is not None and shown.details.family == "llama" and shown.details.quantization_level == "Q4_1"
    assert shown.modelinfo is not None and shown.modelinfo["llama.block_count"] == "30"
    assert shown.capabilities == ["completion"]  # SmolLM2's template takes no tools and does not think
    client.chat(MODEL, messages=FRANCE, options=GREEDY)
    [loaded] = [entry for entry in client.ps().models if entry.model == "ai/smollm2"]
    assert loaded.size and loaded.expires_at is not None


def test_chat_whole_and_streamed_with_real_timings(client: ollama.Client) -> None:
    reply = client.chat(MODEL, messages=FRANCE, options=GREEDY)
    assert "Paris" in reply.message.content and reply.done and reply.done_reason == "stop"
    assert reply.eval_count and reply.eval_duration and reply.total_duration and reply.prompt_eval_duration
    assert reply.total_duration >= reply.eval_duration + reply.prompt_eval_duration
    parts = list(client.chat(MODEL, messages=FRANCE, options=GREEDY, stream=True))
    assert "".join(part.message.content for part in parts) == reply.message.content
    assert [part.done for part in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].eval_count == reply.eval_count


def test_format_as_a_schema_is_held_to(client: ollama.Client) -> None:
    ask = [{"role": "user", "content": "Name a city and its country as JSON."}]
    reply = client.chat(MODEL, messages=ask, format=CITY, options={"temperature": 0, "num_predict": 96})
    jsonschema.validate(json.loads(reply.message.content), CITY)
    loose = client.generate(
        MODEL, "Describe Paris as JSON.", format="json", options={"temperature": 0, "num_predict": 96}
    )
    assert isinstance(json.loads(loose.response), dict)


def test_generate_stops_at_num_predict(client: ollama.Client) -> None:
    reply = client.generate(MODEL, "Count from one to fifty:", options={"temperature": 0, "num_predict": 5})
    assert reply.done_reason == "length" and reply.eval_count == 5 and reply.response


def test_embed_and_the_older_embeddings(client: ollama.Client) -> None:
    reply = client.embed(MODEL, ["first text", "second text"])
    assert len(reply.embeddings) == 2 and len(reply.embeddings[0]) == 576 and reply.prompt_eval_count
    older = client.embeddings(MODEL, "first text")
    assert older.embedding == pytest.approx(reply.embeddings[0], abs=1e-5)


def test_unknown_options_and_models_are_errors_that_name_them(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(MODEL, messages=FRANCE, options={"num_gpu": 1})
    assert refused.value.status_code == 400 and "options.num_gpu" in refused.value.error
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat("ai/nowhere", messages=FRANCE)
    assert missing.value.status_code == 404 and "ai/nowhere" in missing.value.error


def test_keep_alive_zero_unloads_the_model(client: ollama.Client) -> None:
    client.chat(MODEL, messages=FRANCE, options=GREEDY)
    assert any(entry.model == "ai/smollm2" for entry in client.ps().models)
    client.chat(MODEL, messages=FRANCE, options=GREEDY, keep_alive=0)
    # The worker sends the answer itself; the runner unloads once the worker reports it done, just after.
    assert wait_until(lambda: not client.ps().models, seconds=10)
    loaded = client.generate(MODEL)  # no prompt: loads the model only
    assert loaded.done_reason == "load" and client.ps().models
    assert client.generate(MODEL, keep_alive=0).done_reason == "unload" and not client.ps().models


def test_pull_with_progress_copy_and_delete(
    client: ollama.Client, module_registry: RegistryServer, smollm2_gguf: Path, tmp_path: Path
) -> None:
    remote = f"{module_registry.host}/ai/pulled:v1"
    elsewhere = Store(tmp_path / "elsewhere")
    elsewhere.write_artifact(package(smollm2_gguf, context_size=1024), [remote])
    RegistryClient(elsewhere).push(remote)
    events = list(client.pull(remote, stream=True))
    assert events[-1].status == "success"
    layers = [event for event in events if event.digest]
    assert layers and layers[-1].completed == layers[-1].total
    assert client.copy(remote, "ai/copied").status == "success"
    names = [entry.model for entry in client.list().models]
    assert {f"{remote}", "ai/copied:latest"} <= set(names)
    client.delete("ai/copied")
    with pytest.raises(ollama.ResponseError) as gone:
        client.delete("ai/copied")
    assert gone.value.status_code == 404


def test_tools_and_a_tool_round_trip_render_and_answer(client: ollama.Client) -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    conversation = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "18 degrees and sunny", "tool_name": "get_weather"},
    ]
    reply = client.chat(MODEL, messages=conversation, tools=[weather], options={"temperature": 0, "num_predict": 64})
    assert reply.done
    for call in reply.message.tool_calls or []:  # the model may call again: then with valid arguments
        assert call.function.name == "get_weather" and isinstance(call.function.arguments["city"], str)
    assert reply.message.content or reply.message.tool_calls
