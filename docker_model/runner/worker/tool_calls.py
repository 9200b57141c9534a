"""Tool calls: how a request's tools reach the prompt, the grammar that keeps every call valid for its
function's parameters, and finding the calls in the answer.

Two formats, chosen from the model's chat template:

- `hermes`, for templates that render `tools` and expect `<tool_call>{"name": ..., "arguments": ...}
  </tool_call>` (Hermes, Qwen and the templates that follow them): the tools go through the template.
  With `tool_choice` "auto" the grammar starts only where a call starts (a lazy grammar triggered by
  `<tool_call>`), so the model may answer in text instead; with "required" or a named function the
  whole answer is calls.
- `generic`, for every other template: the tools are described in a system message, and the whole
  answer is one JSON object, `{"tool_calls": [...]}` or, with "auto", `{"response": "..."}`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from docker_model.runner.shared.error_body import APIError

from .chat_template import ChatTemplate
from .grammars import schema_grammar
from .openai_format import new_id
from .schemas import ChatCompletionBody
from .text import partial_suffix_len

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
CALL_RULE = "toolcallxroot"  # the converter's root, renamed; no property name turns into this
HERMES_CALLS = re.compile(re.escape(CALL_OPEN) + r"\s*(\{.*?\})\s*" + re.escape(CALL_CLOSE), re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # JSON text, as OpenAI sends it
    id: str

    def message_entry(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ToolPlan:
    """What a request with tools does differently: its prompt, its grammar, how its answer is read."""

    format: Literal["hermes", "generic"]
    tools: list[dict[str, Any]]  # the function definitions, as the template takes them
    choice: str  # "none", "auto", "required", or the name of the function to call
    grammar: str | None = None  # None with "none": no call can be made
    trigger: str | None = None  # where a lazy grammar starts (a regex with one group); None: from the start

    @classmethod
    def of(cls, body: ChatCompletionBody, template: ChatTemplate) -> ToolPlan | None:
        """The plan for `body`, None when it has no tools. With tool_choice "none" the tools are not shown
        and no call is read, but earlier calls in the conversation are still rendered."""
        choice = body.tool_choice_name
        if not body.tools:
            for field in ("tool_choice", "parallel_tool_calls"):
                if getattr(body, field) is not None and choice != "none":
                    raise APIError(400, f"{field} is only allowed when tools are given", param=field)
            return None
        tools = [tool.model_dump(exclude_none=True) for tool in body.tools]
        hermes = "tools" in template.source and CALL_OPEN in template.source
        if choice == "none":
            return cls("hermes" if hermes else "generic", tools, choice)
        constrained = body.response_format is not None and body.response_format.type != "text"
        if constrained or body.grammar is not None or body.json_schema is not None:
            raise APIError(400, "tools and a constrained response format cannot be combined: send one", param="tools")
        names = [tool.function.name for tool in body.tools]
        if choice not in ("auto", "required") and choice not in names:
            raise APIError(400, f"tool_choice names {choice!r}, which is not among the tools", param="tool_choice")
        chosen = [tool for tool in body.tools if choice in ("auto", "required", tool.function.name)]
        calls = {"anyOf": [_call_schema(tool.function.name, tool.function.parameters) for tool in chosen]}
        many = body.parallel_tool_calls is not False
        if hermes:
            call_rules = re.sub(r"^root ::=", f"{CALL_RULE} ::=", schema_grammar(calls, "tools"), flags=re.MULTILINE)
            one = f'"{CALL_OPEN}\\n" {CALL_RULE} "\\n{CALL_CLOSE}"'
            root = f"root ::= {one}" + (f' ("\\n" {one})*' if many else "")
            trigger = f"({re.escape(CALL_OPEN)})" if choice == "auto" else None
            return cls("hermes", tools, choice, f"{root}\n{call_rules}", trigger)
        call_list = {"type": "array", "items": calls, "minItems": 1, **({} if many else {"maxItems": 1})}
        answer: dict[str, Any] = _object({"tool_calls": call_list})
        if choice == "auto":
            answer = {"anyOf": [answer, _object({"response": {"type": "string"}})]}
        return cls("generic", tools, choice, schema_grammar(answer, "tools"))

    def template_tools(self) -> list[dict[str, Any]] | None:
        """The tools the chat template renders itself; the generic format describes them in a message."""
        return self.tools if self.format == "hermes" and self.choice != "none" else None

    def messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The conversation as the template should see it."""
        if self.format == "hermes":
            return [_with_argument_objects(message) for message in messages]
        rendered = [_generic_turn(message) for message in messages]
        if self.choice == "none":
            return rendered
        instructions = self._generic_instructions()
        if rendered and rendered[0].get("role") == "system" and isinstance(rendered[0].get("content"), str):
            return [{**rendered[0], "content": f"{rendered[0]['content']}\n\n{instructions}"}, *rendered[1:]]
        return [{"role": "system", "content": instructions}, *rendered]

    def _generic_instructions(self) -> str:
        described = json.dumps([tool["function"] for tool in self.tools], ensure_ascii=False)
        calls = '{"tool_calls": [{"name": "<tool name>", "arguments": {<its arguments>}}]} to call tools'
        if self.choice == "auto":
            answer = f'either {calls}, or {{"response": "<your answer>"}} to answer without a tool'
        elif self.choice == "required":
            answer = calls
        else:
            answer = calls.replace("<tool name>", self.choice)
        return (
            "You can call these tools (each with its name, what it does and the JSON Schema of its arguments):\n"
            f"{described}\nReply with one JSON object and nothing else: {answer}."
        )

    def reader(self) -> CallReader | None:
        """What reads the calls back from the answer; None when no call can be made."""
        return CallReader(self.format) if self.grammar is not None else None


class CallReader:
    """Separates an answer's text from its tool calls, as the text streams in."""

    def __init__(self, fmt: Literal["hermes", "generic"]):
        self.format = fmt
        self._held = ""  # text not sent yet: a possible call start, or (generic) all of it
        self._in_calls = False

    def feed(self, text: str) -> str:
        """The part of `text` that is plain answer and safe to send now."""
        self._held += text
        if self.format == "generic" or self._in_calls:
            return ""
        start = self._held.find(CALL_OPEN)
        if start >= 0:
            self._in_calls = True
            sendable, self._held = self._held[:start], self._held[start:]
            return sendable
        keep = partial_suffix_len(self._held, [CALL_OPEN])
        sendable, self._held = self._held[: len(self._held) - keep], self._held[len(self._held) - keep :]
        return sendable

    def finish(self) -> tuple[str, list[ToolCall]]:
        """The rest of the answer's text, and the calls. An answer cut short keeps its text, with no calls."""
        held, self._held = self._held, ""
        if self.format == "hermes":
            found = [_parsed(match) for match in HERMES_CALLS.findall(held)]
            calls = [call for call in found if call is not None]
            return ("", calls) if calls and len(calls) == len(found) else (held, [])
        try:
            answer = json.loads(held)
        except ValueError:
            return held, []
        if isinstance(answer, dict) and isinstance(answer.get("response"), str):
            return answer["response"], []
        if isinstance(answer, dict) and isinstance(answer.get("tool_calls"), list):
            entries = [_call(entry) for entry in answer["tool_calls"]]
            calls = [call for call in entries if call is not None]
            if calls and len(calls) == len(entries):
                return "", calls
        return held, []


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _call_schema(name: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    return _object({"name": {"const": name}, "arguments": parameters or {"type": "object"}})


def _parsed(text: str) -> ToolCall | None:
    try:
        return _call(json.loads(text))
    except ValueError:
        return None


def _call(entry: Any) -> ToolCall | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return None
    arguments = entry.get("arguments", entry.get("parameters", {}))
    return ToolCall(entry["name"], json.dumps(arguments, ensure_ascii=False), new_id("call"))


def _arguments_object(arguments: Any) -> Any:
    """A call's arguments as an object when they are JSON text (as OpenAI sends them), else as given."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _with_argument_objects(message: dict[str, Any]) -> dict[str, Any]:
    """Hugging Face templates take a call's arguments as an object."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return message
    converted = []
    for call in calls:
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            function = call["function"]
            call = {**call, "function": {**function, "arguments": _arguments_object(function.get("arguments"))}}
        converted.append(call)
    return {**message, "tool_calls": converted}


def _generic_turn(message: dict[str, Any]) -> dict[str, Any]:
    """An assistant's calls as the JSON the generic format answers with."""
    calls = message.get("tool_calls")
    if message.get("role") != "assistant" or not isinstance(calls, list):
        return message
    entries = []
    for call in calls:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        entries.append({"name": function.get("name"), "arguments": _arguments_object(function.get("arguments", {}))})
    rest = {key: value for key, value in message.items() if key != "tool_calls"}
    return {**rest, "content": json.dumps({"tool_calls": entries}, ensure_ascii=False)}
