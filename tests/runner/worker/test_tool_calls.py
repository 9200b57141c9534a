"""Tool calls in every format: SmolLM2's own template (no tools: the generic JSON format) and test templates
in the manner of Hermes (`<tool_call>` tags), Llama 3.1 (`{"name": ..., "parameters": ...}`) and Mistral
(`[TOOL_CALLS]` and an array). Against real workers with the official openai SDK, every call's arguments
are held to its function's parameters by a grammar, streamed or not; the readers and the prompts are also
tested on their own, without a model."""

from __future__ import annotations

import ctypes
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import jsonschema
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from docker_model.runner.worker.answers import Choice
from docker_model.runner.worker.bindings import lc
from docker_model.runner.worker.chat_template import CHATML_TEMPLATE, ChatTemplate
from docker_model.runner.worker.jobs import CompletionJob
from docker_model.runner.worker.llama import LlamaModel
from docker_model.runner.worker.openai_format import CompletionFormat
from docker_model.runner.worker.routes import last_chunks, text_chunks
from docker_model.runner.worker.sampling import SamplingParams, grammar_sampler
from docker_model.runner.worker.schemas import ChatCompletionBody
from docker_model.runner.worker.tool_calls import CallReader, FormatName, ToolPlan, format_of

from .conftest import Worker, start_worker

integration = pytest.mark.integration

TEMPLATES = Path(__file__).resolve().parents[2] / "fixtures" / "templates"
FAMILIES: dict[FormatName, Path] = {
    "hermes": TEMPLATES / "hermes_tools.jinja",
    "llama3": TEMPLATES / "llama3_tools.jinja",
    "mistral": TEMPLATES / "mistral_tools.jinja",
}
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
CALL_TEXT = ("<tool_call>", '"tool_calls"', "[TOOL_CALLS]", '"parameters"')  # never in an answer's text
# Two calls with ids of OpenAI's shape (not Mistral's), and their results.
EARLIER_CALLS: list[Any] = [
    {"role": "user", "content": "What is 2 plus 3, and 4 plus 4?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}},
            {"id": "call_2", "type": "function", "function": {"name": "add", "arguments": '{"a": 4, "b": 4}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    {"role": "tool", "tool_call_id": "call_2", "content": "8"},
]


@pytest.fixture(scope="module")
def family_worker(
    smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[FormatName], Worker]]:
    """The worker serving a family's test template, started on first use and shared by the module."""
    started: dict[FormatName, Worker] = {}

    def get(family: FormatName) -> Worker:
        if family not in started:
            log = tmp_path_factory.mktemp(family) / "worker.log"
            template = str(FAMILIES[family])
            started[family] = start_worker(smollm2_gguf, log, "--parallel", "2", "--chat-template", template)
        return started[family]

    yield get
    for worker in started.values():
        worker.stop()


@pytest.fixture(params=["generic", "hermes", "llama3", "mistral"])
def any_format(request: pytest.FixtureRequest, family_worker: Callable[[FormatName], Worker]) -> Worker:
    return request.getfixturevalue("worker") if request.param == "generic" else family_worker(request.param)


def named(calls: list[Any]) -> list[tuple[str, str]]:
    """Each call of a reply's message as (name, arguments)."""
    return [(call.function.name, call.function.arguments) for call in calls]


def valid_calls(calls: list[tuple[str, str]], names: set[str]) -> None:
    assert calls, "no tool calls"
    for name, arguments in calls:
        assert name in names
        jsonschema.validate(json.loads(arguments), PARAMETERS[name])


def no_call_text(content: str | None) -> None:
    assert not any(text in (content or "") for text in CALL_TEXT), content


def text_or_valid_calls(reply: Any) -> None:
    """Valid calls, or text with no call in it; or no text when the model generated nothing (SmolLM2 may
    end its answer at once)."""
    choice = reply.choices[0]
    no_call_text(choice.message.content)
    if choice.message.tool_calls:
        assert choice.finish_reason == "tool_calls"
        valid_calls(named(choice.message.tool_calls), set(PARAMETERS))
    else:
        assert choice.message.content or not reply.usage.completion_tokens


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


@integration
def test_required_gives_valid_calls_streamed_or_not(any_format: Worker) -> None:
    # One call at most: SmolLM2-135M, free to make several, repeats the same call until max_tokens.
    request: dict[str, Any] = {"model": "m", "messages": ASK, "tools": TOOLS, "tool_choice": "required"}
    request["parallel_tool_calls"] = False
    reply = any_format.client.chat.completions.create(**request, max_tokens=150, temperature=0.7)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    calls = choice.message.tool_calls or []
    assert len({call.id for call in calls}) == len(calls)
    valid_calls(named(calls), set(PARAMETERS))
    found, finish, text = streamed_calls(
        any_format.client.chat.completions.create(**request, max_tokens=150, stream=True)
    )
    assert finish == "tool_calls" and not text
    valid_calls(found, set(PARAMETERS))


@integration
def test_a_named_function_is_the_one_called_and_parallel_calls_can_be_turned_off(any_format: Worker) -> None:
    reply = any_format.client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "What is 2 plus 3?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "add"}},
        parallel_tool_calls=False,
        max_tokens=100,
        temperature=0,
    )
    calls = reply.choices[0].message.tool_calls or []
    assert len(calls) == 1 and reply.choices[0].finish_reason == "tool_calls"
    no_call_text(reply.choices[0].message.content)
    valid_calls(named(calls), {"add"})


@integration
def test_auto_answers_in_text_or_calls_and_no_call_text_leaks(any_format: Worker) -> None:
    for content in ("Hello! How are you?", "What is the weather in Rome? Use the tools."):
        reply = any_format.client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": content}],
            tools=TOOLS,
            parallel_tool_calls=False,
            max_tokens=80,
            temperature=0,
        )
        text_or_valid_calls(reply)


@integration
def test_calls_and_their_results_render_back_and_are_answered(any_format: Worker) -> None:
    """The worker's own call sent back with its result (Mistral's templates check the id), and earlier
    turns with two calls and ids of OpenAI's shape."""
    client = any_format.client
    asked: list[Any] = [{"role": "user", "content": "What is 2 plus 3?"}]
    first = client.chat.completions.create(
        model="m",
        messages=asked,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=100,
        temperature=0,  # sampled, a call can wander in whitespace past the token limit and be cut
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    answered = [first.choices[0].message.model_dump(exclude_none=True)]
    result = [{"role": "tool", "tool_call_id": call.id, "content": "5"}]
    turns: list[tuple[list[Any], Literal["auto", "none"]]] = [
        (asked + answered + result, "auto"),
        (EARLIER_CALLS, "none"),
    ]
    for messages, choice in turns:
        reply = client.chat.completions.create(
            model="m",
            messages=messages,
            tools=TOOLS,
            tool_choice=choice,
            parallel_tool_calls=False,
            max_tokens=60,
            temperature=0,
        )
        text_or_valid_calls(reply)


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice", "not among the tools"),
        ({"response_format": {"type": "json_object"}}, "tools", "cannot be combined"),
        ({"tools": openai.NOT_GIVEN, "tool_choice": "required"}, "tool_choice", "only allowed when tools are given"),
    ],
)
@integration
def test_what_cannot_be_honoured_is_refused_by_name(worker: Worker, extra: dict, param: str, words: str) -> None:
    request = {"model": "m", "messages": ASK, "tools": TOOLS, "max_tokens": 5, **extra}
    with pytest.raises(openai.BadRequestError) as refused:
        worker.client.chat.completions.create(**request)
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == param and words in error["message"]


@integration
def test_a_parameter_keyword_the_grammar_cannot_honour_is_named(worker: Worker) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "minProperties": 1}}}]
    with pytest.raises(openai.BadRequestError) as refused:
        worker.client.chat.completions.create(model="m", messages=ASK, tools=tools, max_tokens=5)  # type: ignore[arg-type]
    assert "minProperties" in str(refused.value.body)


# -- without a model -------------------------------------------------------------------------------------

ADD_1 = ("add", {"a": 1})
ADD_2 = ("add", {"a": 2})
HERMES_1 = '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>'
HERMES_2 = '<tool_call>\n{"name": "add", "arguments": {"a": 2}}\n</tool_call>'
MISTRAL_12 = '[{"name": "add", "arguments": {"a": 1}}, {"name": "add", "arguments": {"a": 2}}]'
LLAMA_1 = '{"name": "add", "parameters": {"a": 1}}'
GENERIC_1 = '{"tool_calls": [{"name": "add", "arguments": {"a": 1}}]}'


@pytest.mark.parametrize(
    ("fmt", "answer", "text", "calls"),
    [
        ("hermes", HERMES_1, "", [ADD_1]),
        ("hermes", f"{HERMES_1}\n{HERMES_2}", "", [ADD_1, ADD_2]),
        ("hermes", f"Let me add.\n{HERMES_1}", "Let me add.", [ADD_1]),
        ("hermes", f"{HERMES_1}\n{HERMES_2[:30]}", f"{HERMES_1}\n{HERMES_2[:30]}", []),  # cut short
        ("hermes", "Use <tool_call> tags.", "Use <tool_call> tags.", []),
        ("mistral", f"[TOOL_CALLS] {MISTRAL_12}", "", [ADD_1, ADD_2]),
        ("mistral", f" {MISTRAL_12}", "", [ADD_1, ADD_2]),  # [TOOL_CALLS] a control token, left out
        ("mistral", f"Sure.\n[TOOL_CALLS]{MISTRAL_12}", "Sure.", [ADD_1, ADD_2]),
        ("mistral", f"[TOOL_CALLS] {MISTRAL_12[:25]}", f"[TOOL_CALLS] {MISTRAL_12[:25]}", []),
        ("mistral", "See [1] and [2].", "See [1] and [2].", []),
        ("llama3", LLAMA_1, "", [ADD_1]),
        ("llama3", f"\n<|python_tag|>{LLAMA_1}", "", [ADD_1]),
        ("llama3", f"Sure: {LLAMA_1}", f"Sure: {LLAMA_1}", []),  # a call opens the answer, or there is none
        ("llama3", LLAMA_1[:-2], LLAMA_1[:-2], []),
        ("llama3", '{"nam', '{"nam', []),
        ("generic", GENERIC_1, "", [ADD_1]),
        ("generic", '{"response": "Hi!"}', "Hi!", []),
        ("generic", GENERIC_1[:-3], GENERIC_1[:-3], []),
    ],
)
def test_the_reader_finds_the_calls_whole_or_streamed(
    fmt: FormatName, answer: str, text: str, calls: list[tuple[str, dict]]
) -> None:
    whole = CallReader(fmt)
    sent = whole.feed(answer)
    rest, found = whole.finish()
    assert (sent + rest, [(call.name, json.loads(call.arguments)) for call in found]) == (text, calls)
    streamed = CallReader(fmt)  # one character at a time: every marker split across chunks
    sent = "".join(streamed.feed(char) for char in answer)
    rest, found_streamed = streamed.finish()
    assert sent + rest == text and [call.name for call in found_streamed] == [name for name, _ in calls]
    if calls:
        assert text.startswith(sent)  # no call text was sent before the calls were known


def test_mistral_calls_get_ids_its_templates_take() -> None:
    reader = CallReader("mistral")
    reader.feed(f"[TOOL_CALLS] {MISTRAL_12}")
    ids = [call.id for call in reader.finish()[1]]
    assert len(set(ids)) == 2 and all(re.fullmatch(r"[A-Za-z0-9]{9}", i) for i in ids)


@pytest.mark.parametrize(
    ("source", "fmt"),
    [
        *((path.read_text(), family) for family, path in FAMILIES.items()),
        (CHATML_TEMPLATE, "generic"),
        ("{{ tools }} ... <|python_tag|>", "llama3"),
        ("{{ tools }} [AVAILABLE_TOOLS] [TOOL_CALLS]{{ name }}[ARGS]{{ arguments }}", "generic"),
    ],
)
def test_the_format_is_chosen_from_the_template(source: str, fmt: str) -> None:
    assert format_of(ChatTemplate(source)) == fmt


def plan(fmt: FormatName, **request: Any) -> tuple[ToolPlan, ChatTemplate]:
    template = ChatTemplate(FAMILIES[fmt].read_text(), "<s>", "</s>")
    body = ChatCompletionBody.model_validate({"messages": EARLIER_CALLS, "tools": TOOLS, **request})
    tools = ToolPlan.of(body, template)
    assert tools is not None and tools.format == fmt
    return tools, template


@pytest.mark.parametrize("fmt", list(FAMILIES))
@pytest.mark.parametrize("choice", ["auto", "none"])
def test_earlier_calls_and_results_render_through_the_template(fmt: FormatName, choice: str) -> None:
    tools, template = plan(fmt, tool_choice=choice)
    prompt = template.render(tools.messages(EARLIER_CALLS), tools.template_tools())
    assert '{"a": 2, "b": 3}' in prompt and '{"a": 4, "b": 4}' in prompt  # arguments as objects
    assert ("get_weather" in prompt) == (choice == "auto")


def test_ids_other_than_mistrals_are_mapped_the_same_way_in_calls_and_results() -> None:
    tools, _ = plan("mistral")
    messages = tools.messages(EARLIER_CALLS)
    ids = [call["id"] for call in messages[1]["tool_calls"]]
    assert [message["tool_call_id"] for message in messages[2:]] == ids
    assert all(re.fullmatch(r"[A-Za-z0-9]{9}", i) for i in ids) and tools.messages(EARLIER_CALLS) == messages


# What SmolLM2 may have written so far, and whether a lazy grammar then holds the rest (a token reaching
# past an opening, "></" or "],", must leave it waiting: llama.cpp replays that token through the grammar).
TRIGGERS: list[tuple[FormatName, str, bool]] = [
    ("hermes", "Sure. <tool_call>\n", True),
    ("hermes", "<tool_call></", False),
    ("hermes", "<tool_call>>", False),
    ("mistral", "[TOOL_CALLS][", True),
    ("mistral", 'Hi [{"name":', True),  # as written when [TOOL_CALLS] is a control token left out
    ("mistral", "[TOOL_CALLS],", False),
    ("mistral", "See [1]", False),
    ("llama3", '{"name": "', True),
    ("llama3", '<|python_tag|>{"name":', True),
    ("llama3", '{"name"}', False),
    ("llama3", 'Hi {"name":', False),  # a call opens the answer
]


@pytest.mark.parametrize(("fmt", "text", "fires"), TRIGGERS)
def test_a_lazy_grammar_starts_where_the_text_so_far_ends_in_a_call_opening(
    fmt: FormatName, text: str, fires: bool
) -> None:
    auto, _ = plan(fmt, tool_choice="auto")
    required, _ = plan(fmt, tool_choice="required")
    assert auto.trigger is not None and required.trigger is None
    trigger = auto.trigger.replace("$", r"\Z")  # ECMAScript's `$`, which a final newline does not satisfy
    assert bool(re.search(trigger, text)) == fires


@pytest.fixture(scope="module")
def model(smollm2_gguf: Path) -> Iterator[LlamaModel]:
    loaded = LlamaModel(smollm2_gguf)
    yield loaded
    loaded.close()


@pytest.mark.parametrize(("fmt", "text", "fires"), TRIGGERS)
@integration
def test_llama_cpp_holds_the_answer_to_the_grammar_once_a_call_opens(
    model: LlamaModel, fmt: FormatName, text: str, fires: bool
) -> None:
    """SmolLM2's tokens of `text` through the real lazy grammar sampler: it refuses a word only once
    triggered, and a token reaching past an opening does not abort the process."""
    tools, _ = plan(fmt, tool_choice="auto")
    assert tools.grammar is not None
    sampler = grammar_sampler(model, tools.grammar, tools.trigger)
    try:
        for token in model.tokenize(text, special=False):
            lc.llama_sampler_accept(sampler, token)
        (word,) = model.tokenize(" hello", special=False)
        candidates = (lc.llama_token_data * 1)(lc.llama_token_data(word, 1.0, 0.0))
        lc.llama_sampler_apply(sampler, ctypes.byref(lc.llama_token_data_array(candidates, 1, -1, False)))
    finally:
        lc.llama_sampler_free(sampler)
    assert (candidates[0].logit == float("-inf")) == fires


def test_several_streamed_calls_get_distinct_indexes_the_sdk_assembles() -> None:
    """SmolLM2 does not stop after two calls by itself, so the answer is given: the stream of one with two
    calls, as the worker writes it, read back by the openai SDK's own stream accumulator."""
    job = CompletionJob([1], SamplingParams())
    job.finish = "stop"
    choice = Choice(0, job, reader=CallReader("hermes"))
    calls = [{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "get_weather", "arguments": {"city": "Oslo"}}]
    answer = "".join(f"<tool_call>\n{json.dumps(call)}\n</tool_call>\n" for call in calls)
    fmt = CompletionFormat(True, "m")
    chunks = [*text_chunks(choice, fmt, answer, []), *last_chunks(choice, fmt)]
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate_json(chunk.removeprefix(b"data: ")))
    final = state.get_final_completion().choices[0]
    assert final.finish_reason == "tool_calls" and not final.message.content
    made = final.message.tool_calls or []
    assert [(call.function.name, json.loads(call.function.arguments)) for call in made] == [
        (call["name"], call["arguments"]) for call in calls
    ]
    assert len({call.id for call in made}) == 2
