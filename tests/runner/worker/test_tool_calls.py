"""Tool calls with the official openai SDK, in both formats: SmolLM2's own template (no tools: the generic
JSON format) and a Hermes-style template that renders tools (`<tool_call>` tags). Every call's arguments
are held to its function's parameters by a grammar, streamed or not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from .conftest import Worker, start_worker

pytestmark = pytest.mark.integration

HERMES_TEMPLATE = Path(__file__).resolve().parents[2] / "fixtures" / "templates" / "hermes_tools.jinja"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 30}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
ADD = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER},
    },
    {"type": "function", "function": {"name": "add", "description": "Add two integers", "parameters": ADD}},
]
PARAMETERS = {"get_weather": WEATHER, "add": ADD}
ASK = [{"role": "user", "content": "What is the weather in Paris? Use the tools."}]


@pytest.fixture(scope="module")
def hermes(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    log = tmp_path_factory.mktemp("hermes") / "worker.log"
    started = start_worker(smollm2_gguf, log, "--parallel", "2", "--chat-template", str(HERMES_TEMPLATE))
    yield started
    started.stop()


@pytest.fixture(params=["generic", "hermes"])
def any_format(request: pytest.FixtureRequest, worker: Worker, hermes: Worker) -> Worker:
    return worker if request.param == "generic" else hermes


def valid_calls(calls: list[tuple[str, str]], names: set[str]) -> None:
    assert calls, "no tool calls"
    for name, arguments in calls:
        assert name in names
        jsonschema.validate(json.loads(arguments), PARAMETERS[name])


def streamed_calls(stream: Any) -> tuple[list[tuple[str, str]], str | None, str]:
    """Calls assembled from OpenAI's deltas by index, the finish reason and the streamed text."""
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    finish, text = None, ""
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        text += choice.delta.content or ""
        for delta in choice.delta.tool_calls or []:
            if delta.id:
                assert delta.function and delta.function.name
                names[delta.index] = delta.function.name
            arguments[delta.index] = arguments.get(delta.index, "") + (delta.function.arguments or "")
        finish = choice.finish_reason or finish
    return [(names[i], arguments[i]) for i in sorted(names)], finish, text


def test_required_gives_valid_calls_streamed_or_not(any_format: Worker) -> None:
    # One call at most: SmolLM2-135M, free to make several, repeats the same call until max_tokens.
    request: dict[str, Any] = {"model": "m", "messages": ASK, "tools": TOOLS, "tool_choice": "required"}
    request["parallel_tool_calls"] = False
    reply = any_format.client.chat.completions.create(**request, max_tokens=150, temperature=0.7)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    calls = choice.message.tool_calls or []
    assert len({call.id for call in calls}) == len(calls)
    valid_calls([(call.function.name, call.function.arguments) for call in calls], set(PARAMETERS))
    found, finish, text = streamed_calls(
        any_format.client.chat.completions.create(**request, max_tokens=150, stream=True)
    )
    assert finish == "tool_calls" and not text
    valid_calls(found, set(PARAMETERS))


def test_a_named_function_is_the_one_called_and_parallel_calls_can_be_turned_off(any_format: Worker) -> None:
    reply = any_format.client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "What is 2 plus 3?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "add"}},
        parallel_tool_calls=False,
        max_tokens=100,
    )
    calls = reply.choices[0].message.tool_calls or []
    assert len(calls) == 1
    valid_calls([(call.function.name, call.function.arguments) for call in calls], {"add"})


def test_auto_answers_in_text_or_calls_and_no_call_text_leaks(any_format: Worker) -> None:
    for content in ("Hello! How are you?", "What is the weather in Rome? Use the tools."):
        reply = any_format.client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": content}],
            tools=TOOLS,
            parallel_tool_calls=False,
            max_tokens=150,
            temperature=0,
        )
        message = reply.choices[0].message
        assert "<tool_call>" not in (message.content or "") and '"tool_calls"' not in (message.content or "")
        if message.tool_calls:
            assert reply.choices[0].finish_reason == "tool_calls"
            valid_calls([(call.function.name, call.function.arguments) for call in message.tool_calls], set(PARAMETERS))
        else:
            assert message.content


def test_a_tool_result_round_trips(any_format: Worker) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}
    messages: list[Any] = [
        {"role": "user", "content": "What is 2 plus 3?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    ]
    reply = any_format.client.chat.completions.create(
        model="m", messages=messages, tools=TOOLS, tool_choice="none", max_tokens=30, temperature=0
    )
    assert reply.choices[0].message.content and not reply.choices[0].message.tool_calls


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice", "not among the tools"),
        ({"response_format": {"type": "json_object"}}, "tools", "cannot be combined"),
        ({"tools": openai.NOT_GIVEN, "tool_choice": "required"}, "tool_choice", "only allowed when tools are given"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(worker: Worker, extra: dict, param: str, words: str) -> None:
    request = {"model": "m", "messages": ASK, "tools": TOOLS, "max_tokens": 5, **extra}
    with pytest.raises(openai.BadRequestError) as refused:
        worker.client.chat.completions.create(**request)
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == param and words in error["message"]


def test_a_parameter_keyword_the_grammar_cannot_honour_is_named(worker: Worker) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "minProperties": 1}}}]
    with pytest.raises(openai.BadRequestError) as refused:
        worker.client.chat.completions.create(model="m", messages=ASK, tools=tools, max_tokens=5)  # type: ignore[arg-type]
    assert "minProperties" in str(refused.value.body)
