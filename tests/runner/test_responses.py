"""OpenAI's Responses API through the runner, with the openai SDK: whole and streamed answers, function
tools, JSON-schema output, stored responses and `previous_response_id`, refused fields."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
import requests
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.fixtures.runner import RunnerEnv
from tests.runner.conftest import MODEL

pytestmark = pytest.mark.integration

INSTRUCTIONS = "You are a helpful assistant. Answer briefly."
FRANCE = "What is the capital of France?"
CAPITAL = {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]}}, "required": ["city"]}
CAPITAL_OF = {"type": "function", "name": "capital_of", "description": "A country's capital", "parameters": CAPITAL}


@pytest.fixture
def client(served: RunnerEnv) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.base_url}/engines/v1", api_key="unused", max_retries=0)


def test_create_answers_paris_and_can_be_fetched_and_deleted(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, instructions=INSTRUCTIONS, input=FRANCE, temperature=0, max_output_tokens=32
    )
    assert response.status == "completed" and response.object == "response"
    assert "Paris" in response.output_text
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.instructions == INSTRUCTIONS and response.max_output_tokens == 32
    assert client.responses.retrieve(response.id).output_text == response.output_text
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_stream_is_assembled_by_the_sdk(client: openai.OpenAI) -> None:
    kinds: list[str] = []
    deltas: list[str] = []
    with client.responses.stream(
        model=MODEL, instructions=INSTRUCTIONS, input=FRANCE, temperature=0, max_output_tokens=32
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed", kinds[-3:]
    assert len(deltas) > 1 and "".join(deltas) == final.output_text
    assert "Paris" in final.output_text
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_max_output_tokens_makes_an_incomplete_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Tell me a long story.", temperature=0, max_output_tokens=4)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 4


def test_a_function_call_and_its_output_continue_the_conversation(client: openai.OpenAI) -> None:
    choice = {"type": "function", "name": "capital_of"}
    arguments: list[str] = []
    with client.responses.stream(
        model=MODEL,
        input=FRANCE,
        tools=[CAPITAL_OF],
        tool_choice=choice,
        temperature=0,  # sampled, the call can wander in whitespace past the token limit
        max_output_tokens=100,  # type: ignore[list-item]
    ) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                arguments.append(event.delta)
        called = stream.get_final_response()
    [call] = [item for item in called.output if item.type == "function_call"]
    assert call.name == "capital_of" and "".join(arguments) == call.arguments
    assert json.loads(call.arguments)["city"] in ("Paris", "Rome")
    answered = client.responses.create(
        model=MODEL,
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"capital": "Paris"}'}],
        tools=[CAPITAL_OF],  # type: ignore[list-item]
        tool_choice="none",
        temperature=0,
        max_output_tokens=32,
    )
    assert answered.previous_response_id == called.id and answered.output_text
    alone = client.responses.create(model=MODEL, input=FRANCE, max_output_tokens=1)  # the question, no call
    assert answered.usage is not None and called.usage is not None and alone.usage is not None
    assert answered.usage.input_tokens > alone.usage.input_tokens + called.usage.output_tokens


def test_json_schema_output_validates(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        instructions=INSTRUCTIONS,
        input=FRANCE,
        text={"format": {"type": "json_schema", "name": "capital", "schema": CAPITAL, "strict": True}},
        max_output_tokens=30,
    )
    jsonschema.validate(json.loads(response.output_text), CAPITAL)


def test_previous_response_id_continues_unless_not_stored(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="My name is Ada.", temperature=0, max_output_tokens=16)
    second = client.responses.create(
        model=MODEL, previous_response_id=first.id, input="What is my name?", temperature=0, max_output_tokens=16
    )
    assert first.usage is not None and second.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    unkept = client.responses.create(model=MODEL, input="Hello", store=False, max_output_tokens=4)
    assert unkept.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unkept.id)
    with pytest.raises(openai.NotFoundError) as gone:
        client.responses.create(model=MODEL, previous_response_id=unkept.id, input="And now?", max_output_tokens=4)
    assert gone.value.code == "previous_response_not_found" and gone.value.param == "previous_response_id"


def _events(served: RunnerEnv, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A stream's events, each checked against the SDK's own types."""
    url = f"{served.base_url}/v1/responses"
    with requests.post(url, json={**body, "model": MODEL, "stream": True}, stream=True, timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
        lines = [line for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    events = [json.loads(line.removeprefix("data: ")) for line in lines]
    for event in events:
        TypeAdapter(ResponseStreamEvent).validate_python(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    Response.model_validate(events[-1]["response"])
    return events


def test_stream_events_match_the_sdk_types(served: RunnerEnv) -> None:
    text = _events(served, {"input": "Tell me a long story.", "max_output_tokens": 8})
    assert [event["type"] for event in text[:4]] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert [event["type"] for event in text[-4:]] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    ask = {"input": FRANCE, "tools": [CAPITAL_OF], "tool_choice": "required", "parallel_tool_calls": False}
    call = _events(served, {**ask, "max_output_tokens": 60})
    kinds = [event["type"] for event in call]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    [item] = call[-1]["response"]["output"]
    assert item["type"] == "function_call" and item["status"] == "completed"


@pytest.mark.parametrize("prefix", ["/engines/v1", "/engines/llama.cpp/v1", "/v1"])
def test_every_prefix_creates_and_fetches(served: RunnerEnv, prefix: str) -> None:
    base = f"{served.base_url}{prefix}/responses"
    created = requests.post(base, json={"model": MODEL, "input": FRANCE, "max_output_tokens": 4}, timeout=60)
    assert created.status_code == 200, created.text
    response_id = created.json()["id"]
    Response.model_validate(created.json())
    fetched = requests.get(f"{base}/{response_id}", timeout=30)
    assert fetched.status_code == 200 and fetched.json() == created.json()
    assert _error(requests.get(f"{base}/{response_id}?stream=true", timeout=30), 400)["param"] == "stream"


def _error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"reasoning": {"effort": "low"}}, "reasoning"),
        ({"background": True}, "background"),
        ({"include": ["reasoning.encrypted_content"]}, "include"),
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input.0.message.content.0",
        ),
        ({"text": {"format": {"type": "text"}, "verbosity": "low"}}, "text.verbosity"),
        ({"previous_response_id": "resp_000000000000_0123"}, "previous_response_id"),
        ({"no_such_field": 1}, "no_such_field"),
    ],
)
def test_fields_not_done_are_refused_by_name(served: RunnerEnv, extra: dict[str, Any], param: str) -> None:
    body = {"model": MODEL, "input": FRANCE, **extra}
    response = requests.post(f"{served.base_url}/v1/responses", json=body, timeout=60)
    assert _error(response, 400)["param"] == param


def test_accepted_fields_and_unknown_ids(served: RunnerEnv) -> None:
    accepted = {"store": True, "metadata": {"k": "v"}, "user": "u", "service_tier": "auto"}
    accepted |= {"safety_identifier": "s", "prompt_cache_key": "p", "max_output_tokens": 2}
    response = requests.post(f"{served.base_url}/v1/responses", json={"model": MODEL, "input": "Hi", **accepted})
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"k": "v"}
    for response_id in ("resp_000000000000_0123", "nonsense"):
        _error(requests.get(f"{served.base_url}/v1/responses/{response_id}", timeout=30), 404)
