"""Anthropic's Messages API through the runner, with the official anthropic SDK: answers whole and streamed,
token counting, a tool-use round trip and Anthropic-shaped errors, on SmolLM2 (its own template has no
tools: calls take the generic JSON format)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import pytest
import requests

from docker_model.runner.worker.answers import Choice
from docker_model.runner.worker.dialects.anthropic import stream_events
from docker_model.runner.worker.jobs import CompletionJob
from docker_model.runner.worker.sampling import SamplingParams
from tests.fixtures.runner import RunnerEnv

integration = pytest.mark.integration

MODEL = "ai/smollm2"
SYSTEM = "You are a helpful assistant. Answer briefly."
FRANCE: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY: dict[str, Any] = {"extra_body": {"temperature": 0}}  # the SDK has no temperature argument of its own
CAPITAL_OF = {
    "name": "capital_of",
    "description": "The capital city of a country",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"enum": ["Paris", "Rome"]}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(served: RunnerEnv) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{served.base_url}/anthropic", api_key="unused", max_retries=0)


@integration
def test_create_answers_paris(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, max_tokens=32, system=SYSTEM, messages=FRANCE, **GREEDY)
    [block] = reply.content
    assert block.type == "text" and "Paris" in block.text
    assert reply.role == "assistant" and reply.stop_reason in ("end_turn", "max_tokens")
    assert reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0) > 0
    assert reply.usage.output_tokens > 0
    cut = client.messages.create(model=MODEL, max_tokens=2, messages=FRANCE, **GREEDY)
    assert (cut.stop_reason, cut.usage.output_tokens) == ("max_tokens", 2)


@integration
def test_stream_at_the_root_base_url_assembles_the_text(served: RunnerEnv) -> None:
    client = anthropic.Anthropic(base_url=served.base_url, api_key="unused", max_retries=0)  # at /v1/messages
    with client.messages.stream(model=MODEL, max_tokens=32, system=SYSTEM, messages=FRANCE, **GREEDY) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len([piece for piece in pieces if piece]) > 1  # streamed, not sent in one piece
    assert "Paris" in "".join(pieces) and final.content[0].type == "text"
    assert final.content[0].text == "".join(pieces) and final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.output_tokens > 0
    events = client.messages.create(model=MODEL, max_tokens=8, messages=FRANCE, stream=True, **GREEDY)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"] and set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


@integration
def test_count_tokens_is_the_prompt_a_message_evaluates(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model=MODEL, system=SYSTEM, messages=FRANCE)
    reply = client.messages.create(model=MODEL, max_tokens=1, system=SYSTEM, messages=FRANCE)
    assert counted.input_tokens > 10
    assert counted.input_tokens == reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0)


@integration
def test_a_forced_tool_use_and_its_result(client: anthropic.Anthropic) -> None:
    forced: dict[str, Any] = {"tools": [CAPITAL_OF], "tool_choice": {"type": "tool", "name": "capital_of"}}
    reply = client.messages.create(model=MODEL, max_tokens=60, messages=FRANCE, **forced, **GREEDY)
    [call] = [block for block in reply.content if block.type == "tool_use"]
    assert reply.stop_reason == "tool_use" and call.name == "capital_of"
    assert call.input["city"] in ("Paris", "Rome")
    with client.messages.stream(model=MODEL, max_tokens=60, messages=FRANCE, **forced, **GREEDY) as stream:
        streamed = stream.get_final_message()
    [streamed_call] = streamed.content  # its input assembled from the stream's pieces of JSON
    assert streamed_call.type == "tool_use" and streamed_call.input == call.input
    answered = [
        *FRANCE,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in reply.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": call.input["city"]}]},
    ]
    final = client.messages.create(
        model=MODEL, max_tokens=20, messages=answered, tools=[CAPITAL_OF], tool_choice={"type": "none"}, **GREEDY
    )
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert [block.type for block in final.content] == ["text"]


@integration
def test_errors_have_anthropic_s_shape(client: anthropic.Anthropic, served: RunnerEnv) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="ai/never-pulled", max_tokens=8, messages=FRANCE)
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": missing.value.body["error"]["message"]},
    }
    assert "ai/never-pulled" in missing.value.message
    with pytest.raises(anthropic.BadRequestError) as unknown:
        client.messages.create(model=MODEL, max_tokens=8, messages=FRANCE, extra_body={"best_of": 2})
    assert unknown.value.body["error"]["type"] == "invalid_request_error"
    assert "unknown field best_of" in unknown.value.message
    with pytest.raises(anthropic.BadRequestError, match="thinking"):
        client.messages.create(
            model=MODEL, max_tokens=2048, messages=FRANCE, thinking={"type": "enabled", "budget_tokens": 1024}
        )
    raw = requests.post(f"{served.base_url}/v1/messages", data=b"{", timeout=30)
    assert raw.status_code == 400 and raw.json()["type"] == "error"
    too_large = requests.post(f"{served.base_url}/anthropic/v1/messages", data=b" " * (10 * 1024 * 1024 + 1))
    assert too_large.status_code == 413 and too_large.json()["error"]["type"] == "request_too_large"
    assert json.loads(too_large.text)["type"] == "error"


def test_a_failure_mid_stream_is_an_error_event() -> None:
    job = CompletionJob([1, 2, 3], SamplingParams())

    async def events() -> list[str]:
        job.deliver("Hello", None, 1, None)
        job.deliver("", "error", 1, "generation failed: boom")
        return [chunk.decode() async for chunk in stream_events(Choice(0, job), MODEL)]

    sent = asyncio.run(events())
    assert [event.split("\n")[0] for event in sent] == [
        "event: message_start",
        "event: content_block_start",
        "event: content_block_delta",
        "event: error",
    ]
    assert json.loads(sent[-1].split("data: ")[1]) == {
        "type": "error",
        "error": {"type": "api_error", "message": "generation failed: boom"},
    }
