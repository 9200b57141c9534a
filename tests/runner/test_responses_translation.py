"""The Responses dialect without a model: requests translated into chat, answers written as output items
and events that the openai SDK's own types accept, and the bounded store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from docker_model.runner.launch import WorkerSpec
from docker_model.runner.shared.error_body import APIError
from docker_model.runner.shared.response_ids import model_of, new_response_id
from docker_model.runner.worker.answers import Ending
from docker_model.runner.worker.dialects.responses import ResponseStore
from docker_model.runner.worker.dialects.responses_output import ResponseWriter, usage
from docker_model.runner.worker.dialects.responses_request import ResponsesBody, chat_body, conversation
from docker_model.runner.worker.schemas import parse_body
from docker_model.runner.worker.tool_calls import ToolCall


def _body(**fields: Any) -> ResponsesBody:
    body: ResponsesBody = parse_body(ResponsesBody, json.dumps({"model": "m", **fields}).encode())
    return body


def test_items_become_chat_messages() -> None:
    body = _body(
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "hm"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ],
        tools=[{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
        tool_choice={"type": "function", "name": "weather"},
        text={"format": {"type": "text"}},
        max_output_tokens=5,
    )
    messages = conversation(body, [{"role": "user", "content": "Earlier"}])
    chat = chat_body(body, messages).model_dump(exclude_none=True)
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "system", "user", "assistant", "tool"]
    assistant = chat["messages"][4]
    assert assistant["content"] == "Checking." and assistant["reasoning_content"] == "hm"
    assert assistant["tool_calls"][0]["function"] == {"name": "weather", "arguments": "{}"}
    assert chat["tools"][0]["function"]["name"] == "weather" and chat["max_tokens"] == 5
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "weather"}}


def test_json_schema_format_becomes_chats_response_format() -> None:
    schema = {"type": "object"}
    body = _body(input="x", text={"format": {"type": "json_schema", "name": "n", "schema": schema, "strict": True}})
    chat = chat_body(body, conversation(body, []))
    assert chat.response_format is not None and chat.response_format.json_schema is not None
    assert chat.response_format.json_schema.schema_ == schema


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": "x", "truncation": "auto"}, "truncation"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input.0"),
        (
            {"input": [{"type": "reasoning", "summary": [], "encrypted_content": "secret"}]},
            "input.0.reasoning.encrypted_content",
        ),
        ({"input": "x", "tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
    ],
)
def test_refused_fields_are_named(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(APIError) as refused:
        _body(**fields)
    assert refused.value.status == 400 and (refused.value.param or "").startswith(param)


def _checked(events: list[bytes]) -> list[dict[str, Any]]:
    parsed = []
    for raw in events:
        kind, data = raw.decode().split("\n")[:2]
        event = json.loads(data.removeprefix("data: "))
        assert kind == f"event: {event['type']}"
        TypeAdapter(ResponseStreamEvent).validate_python(event)
        parsed.append(event)
    return parsed


def _writer() -> ResponseWriter:
    envelope = {"id": "resp_x", "object": "response", "created_at": 0, "model": "m"}
    return ResponseWriter({**envelope, "tools": [], "tool_choice": "auto", "parallel_tool_calls": True})


def test_reasoning_text_and_calls_are_items_in_order() -> None:
    writer = _writer()
    events = writer.start() + writer.text("", "thinking") + writer.text("Hello", "")
    events += writer.end(Ending(" there", "", [ToolCall("f", '{"a": 1}', "call_1")], "tool_calls"), usage(10, 4, 2))
    kinds = [event["type"] for event in _checked(events)]
    assert "response.reasoning_text.delta" in kinds and kinds[-1] == "response.completed"
    response = Response.model_validate(writer.response)
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    assert response.output_text == "Hello there"
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 2


def test_an_answer_cut_short_is_incomplete() -> None:
    writer = _writer()
    events = writer.end(Ending("", "", [], "length"), usage(1, 1, 0))
    assert _checked(events)[-1]["type"] == "response.incomplete"
    assert writer.response["output"][0]["status"] == "incomplete"
    assert writer.response["incomplete_details"] == {"reason": "max_output_tokens"}


def test_store_is_bounded_in_number_and_age() -> None:
    store = ResponseStore(size=2, seconds=3600)
    for name in ("a", "b", "c"):
        store.put({"id": name}, [])
    assert store.get("a") is None and store.get("c") is not None
    aged = ResponseStore(size=2, seconds=0)
    aged.put({"id": "a"}, [])
    assert aged.get("a") is None


def test_ids_name_their_model() -> None:
    assert model_of(new_response_id("6cc94f7b817a")) == "6cc94f7b817a"
    assert model_of(new_response_id("")) == "" and model_of("nonsense") == ""


def test_a_worker_is_told_its_models_id() -> None:
    argv = WorkerSpec(Path("/m.gguf"), model_id="6cc94f7b817a").argv(Path("/run/w.sock"))
    assert argv[argv.index("--model-id") + 1] == "6cc94f7b817a"
