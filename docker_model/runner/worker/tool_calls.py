"""Tool calls: how a request's tools reach the prompt, the grammar that keeps every call valid for its
function's parameters, and finding the calls in the answer.

The format is chosen from the model's chat template:

- `hermes` (Hermes, Qwen and the templates that follow them: the template writes `<tool_call>`): each call
  is `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`, after text or not, several in a row.
- `mistral` (Mistral 7B v0.3, Mixtral, Nemo: `[TOOL_CALLS]` and `[AVAILABLE_TOOLS]`, without the `[ARGS]`
  of later Mistrals): `[TOOL_CALLS]` then a JSON array of `{"name": ..., "arguments": {...}}`, one item
  without parallel calls. These templates refuse call ids other than 9 letters and digits: calls get such
  ids, and any other id in the conversation is mapped to one (the same id always to the same one).
- `llama3` (Llama 3.1 to 3.3: `<|python_tag|>` or the `ipython` role): a call is the whole answer, one JSON
  object `{"name": ..., "parameters": {...}}`. Llama 3.x makes one call per turn, so there is one at most
  whatever `parallel_tool_calls` says (true lets a model make several, it does not ask for them); an
  earlier turn with several calls reaches the template as one turn per call, as its template takes one.
- `generic`, for every other template: the tools are described in a system message, and the whole answer
  is one JSON object, `{"tool_calls": [...]}` or, with "auto", `{"response": "..."}`.

In the first three the template renders the tools (its `tools` variable), and earlier calls reach it with
their arguments as objects. With `tool_choice` "required" or a named function the grammar covers the whole
answer; with "auto" it is lazy: it starts where a call starts (the `trigger`), so the model may answer in
text instead. llama.cpp matches the trigger against all the text generated so far and replays the tokens
from its first group on through the grammar; a token reaching past what the grammar allows would abort
the process, so a trigger matches only where that text ends, at a call's opening or a few characters in.

A marker that is one control token in the model's vocabulary (`[TOOL_CALLS]` in Mistral's, `<|python_tag|>`
in Llama's) is in the text the trigger sees but not in the answer (the engine leaves control tokens out):
the readers also take calls that open without their marker, and the mistral trigger fires on such an
opening (`[{"name"`) too, so a call read was held to the grammar (unless one token ran further into it
than a trigger allows, which leaves the grammar waiting).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from docker_model.runner.shared.error_body import APIError

from .chat_template import ChatTemplate
from .grammars import schema_grammar
from .openai_format import new_id
from .schemas import ChatCompletionBody
from .text import partial_suffix_len

FormatName = Literal["hermes", "mistral", "llama3", "generic"]
Message = dict[str, Any]

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
TOOL_CALLS, PYTHON_TAG = "[TOOL_CALLS]", "<|python_tag|>"
CALL_RULE = "toolcallxroot"  # the converter's root, renamed; no property name turns into this
HERMES_CALL = re.escape(CALL_OPEN) + r"\s*(\{.*?\})\s*" + re.escape(CALL_CLOSE)
HERMES_CALLS = re.compile(HERMES_CALL, re.DOTALL)
HERMES_ANSWER = re.compile(rf"(?:\s*{HERMES_CALL})+\s*", re.DOTALL)
MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
# Lazy grammar triggers (ECMAScript regexes): the first group that matched is where the grammar starts, and
# each ends the text so far (`$`) at a call's opening plus what the grammar allows a token to carry past it.
AFTER_NAME = r'(?: ?:(?: ?")?)?'  # after `"name"`
HERMES_TRIGGER = r"(<tool_call>)(?:\n\{?)?$"
MISTRAL_TRIGGER = r'(\[TOOL_CALLS\])(?: ?\[(?: ?\{(?: ?")?)?)?$|(\[ ?\{ ?"name")' + AFTER_NAME + "$"
LLAMA3_TRIGGER = r'^\s*(?:<\|python_tag\|>)?(\{ ?"name")' + AFTER_NAME + "$"  # only where the answer starts


def _spellings(*parts: str) -> tuple[str, ...]:
    """`parts` joined in each way the grammar's `space` (one optional " ") allows."""
    joined = [parts[0]]
    for part in parts[1:]:
        joined = [f"{head}{gap}{part}" for head in joined for gap in ("", " ")]
    return tuple(joined)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # JSON text, as OpenAI sends it
    id: str

    def message_entry(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


class _Format(ABC):
    """One family's way with calls: how its template takes them, its grammar, and how calls open."""

    name: ClassVar[FormatName]
    openers: ClassVar[tuple[str, ...]]  # texts the calls open with; "": the whole answer is read
    anywhere: ClassVar[bool] = True  # calls may follow text; else they open the answer
    renders_tools: ClassVar[bool] = True  # the template shows the tools (its `tools` variable)
    arguments_key: ClassVar[str] = "arguments"

    @abstractmethod
    def fits(self, source: str) -> bool:
        """Whether a chat template with this source writes calls this way."""

    @abstractmethod
    def grammar(self, call: dict[str, Any], many: bool, auto: bool) -> tuple[str, str | None]:
        """GBNF for an answer of calls each valid against `call`, and, with "auto", its lazy trigger."""

    @abstractmethod
    def read(self, text: str) -> tuple[str, list[Any]] | None:
        """The answer's text and call entries in `text` (from where calls open); None if it is not calls."""

    def history(self, messages: list[Message]) -> list[Message]:
        """The conversation's earlier calls as the template takes them."""
        return [_calls_mapped(message, _argument_object) for message in messages]

    def call_id(self) -> str:
        return new_id("call")

    def call_start(self, text: str, at_start: bool) -> int | None:
        """Where calls open in `text` (`at_start`: nothing before it was sent), None where none does."""
        if self.anywhere:
            return min((i for i in (text.find(opener) for opener in self.openers) if i >= 0), default=None)
        body = text.lstrip()
        return len(text) - len(body) if at_start and body.startswith(self.openers) else None

    def pending(self, text: str, at_start: bool) -> int:
        """How many characters at the end of `text` may still grow into an opening of calls."""
        if self.anywhere:
            return partial_suffix_len(text, self.openers)
        body = text.lstrip()
        return len(text) if at_start and any(opener.startswith(body) for opener in self.openers) else 0


class _Hermes(_Format):
    name = "hermes"
    openers = (CALL_OPEN,)

    def fits(self, source: str) -> bool:
        return "tools" in source and CALL_OPEN in source

    def grammar(self, call: dict[str, Any], many: bool, auto: bool) -> tuple[str, str | None]:
        one = f'"{CALL_OPEN}\\n" {CALL_RULE} "\\n{CALL_CLOSE}"'
        root = one + (f' ("\\n" {one})*' if many else "")
        return _grammar(root, call), (HERMES_TRIGGER if auto else None)

    def read(self, text: str) -> tuple[str, list[Any]] | None:
        if not HERMES_ANSWER.fullmatch(text):
            return None
        return "", [_json(found) for found in HERMES_CALLS.findall(text)]


class _Mistral(_Format):
    name = "mistral"
    openers = (TOOL_CALLS, *_spellings("[", "{", '"name"'))

    def fits(self, source: str) -> bool:
        return TOOL_CALLS in source and "[AVAILABLE_TOOLS]" in source and "[ARGS]" not in source

    def grammar(self, call: dict[str, Any], many: bool, auto: bool) -> tuple[str, str | None]:
        marker = f'("{TOOL_CALLS}" " "?)' + ("?" if auto else "")
        return _grammar(f"{marker} {CALL_RULE}", _call_list(call, many)), (MISTRAL_TRIGGER if auto else None)

    def read(self, text: str) -> tuple[str, list[Any]] | None:
        calls = _json(text.strip().removeprefix(TOOL_CALLS))
        return ("", calls) if isinstance(calls, list) and calls else None

    def history(self, messages: list[Message]) -> list[Message]:
        return [_with_mistral_ids(message) for message in super().history(messages)]

    def call_id(self) -> str:
        return uuid.uuid4().hex[:9]


class _Llama3(_Format):
    name = "llama3"
    openers = (*_spellings("{", '"name"'), *_spellings(PYTHON_TAG + "{", '"name"'))
    anywhere = False
    arguments_key = "parameters"

    def fits(self, source: str) -> bool:
        return "tools" in source and (PYTHON_TAG in source or "ipython" in source)

    def grammar(self, call: dict[str, Any], many: bool, auto: bool) -> tuple[str, str | None]:
        return _grammar(CALL_RULE, call), (LLAMA3_TRIGGER if auto else None)

    def read(self, text: str) -> tuple[str, list[Any]] | None:
        call = _json(text.strip().removeprefix(PYTHON_TAG))
        return ("", [call]) if isinstance(call, dict) else None

    def history(self, messages: list[Message]) -> list[Message]:
        return super().history([turn for message in messages for turn in _one_call_per_turn(message)])


class _Generic(_Format):
    name = "generic"
    openers = ("",)
    anywhere = False
    renders_tools = False

    def fits(self, source: str) -> bool:
        return True

    def grammar(self, call: dict[str, Any], many: bool, auto: bool) -> tuple[str, str | None]:
        answer: dict[str, Any] = _object({"tool_calls": _call_list(call, many)})
        if auto:
            answer = {"anyOf": [answer, _object({"response": {"type": "string"}})]}
        return schema_grammar(answer, "tools"), None

    def read(self, text: str) -> tuple[str, list[Any]] | None:
        answer = _json(text)
        if not isinstance(answer, dict):
            return None
        if isinstance(answer.get("response"), str):
            return answer["response"], []
        calls = answer.get("tool_calls")
        return ("", calls) if isinstance(calls, list) and calls else None

    def history(self, messages: list[Message]) -> list[Message]:
        return [_generic_turn(message) for message in messages]


# In the order they are tried: generic fits every template.
FORMATS: dict[FormatName, _Format] = {fmt.name: fmt for fmt in (_Hermes(), _Mistral(), _Llama3(), _Generic())}


def format_of(template: ChatTemplate) -> FormatName:
    """The format of the first family whose template this looks like; generic when none."""
    return next(name for name, fmt in FORMATS.items() if fmt.fits(template.source))


@dataclass(frozen=True)
class ToolPlan:
    """What a request with tools does differently: its prompt, its grammar, how its answer is read."""

    format: FormatName
    tools: list[dict[str, Any]]  # the function definitions, as the template takes them
    choice: str  # "none", "auto", "required", or the name of the function to call
    grammar: str | None = None  # None with "none": no call can be made
    trigger: str | None = None  # a regex: a lazy grammar starts at its first group that matched; None: at once

    @classmethod
    def of(cls, body: ChatCompletionBody, template: ChatTemplate) -> ToolPlan | None:
        """The plan for `body`, None when it has no tools. With tool_choice "none" the tools are not shown
        and no call is read, but earlier calls in the conversation are still rendered."""
        choice = _checked_choice(body)
        if not body.tools:
            return None
        tools = [tool.model_dump(exclude_none=True) for tool in body.tools]
        fmt = FORMATS[format_of(template)]
        if choice == "none":
            return cls(fmt.name, tools, choice)
        chosen = [tool.function for tool in body.tools if choice in ("auto", "required", tool.function.name)]
        call = {"anyOf": [_call_schema(f.name, f.parameters, fmt.arguments_key) for f in chosen]}
        grammar, trigger = fmt.grammar(call, body.parallel_tool_calls is not False, choice == "auto")
        return cls(fmt.name, tools, choice, grammar, trigger)

    def template_tools(self) -> list[dict[str, Any]] | None:
        """The tools the chat template renders itself; the generic format describes them in a message."""
        return self.tools if FORMATS[self.format].renders_tools and self.choice != "none" else None

    def messages(self, messages: list[Message]) -> list[Message]:
        """The conversation as the template should see it."""
        fmt = FORMATS[self.format]
        rendered = fmt.history(messages)
        if fmt.renders_tools or self.choice == "none":
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
    """Separates an answer's text from its tool calls, as the text streams in. Text that may open calls
    is held back until it cannot; whitespace waits too, and is dropped when calls follow it."""

    def __init__(self, fmt: FormatName):
        self._format = FORMATS[fmt]
        self._held = ""  # text not sent yet
        self._sent = False  # some text was sent: calls can no longer open the answer
        self._calls = False  # the held text opens with calls

    def feed(self, text: str) -> str:
        """The part of `text` that is plain answer and safe to send now."""
        self._held += text
        if self._calls:
            return ""
        start = self._format.call_start(self._held, not self._sent)
        self._calls = start is not None
        end = start if start is not None else len(self._held) - self._format.pending(self._held, not self._sent)
        end = len(self._held[:end].rstrip())
        sendable, self._held = self._held[:end], self._held[end:]
        self._sent = self._sent or bool(sendable)
        return sendable

    def finish(self) -> tuple[str, list[ToolCall]]:
        """The rest of the answer's text, and the calls. An answer that is not well-formed calls (one cut
        short) is text, with no calls."""
        held, self._held = self._held, ""
        found = self._format.read(held) if self._calls else None
        if found is None:
            return held, []
        text, entries = found
        made = [self._call(entry) for entry in entries]
        calls = [call for call in made if call is not None]
        return (text, calls) if len(calls) == len(made) else (held, [])

    def _call(self, entry: Any) -> ToolCall | None:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            return None
        arguments = entry.get(self._format.arguments_key)
        if not isinstance(arguments, dict):
            return None
        return ToolCall(entry["name"], json.dumps(arguments, ensure_ascii=False), self._format.call_id())


def _checked_choice(body: ChatCompletionBody) -> str:
    """The request's tool_choice; a 400 for a choice that cannot be honoured."""
    choice = body.tool_choice_name
    if not body.tools:
        for field in ("tool_choice", "parallel_tool_calls"):
            if getattr(body, field) is not None and choice != "none":
                raise APIError(400, f"{field} is only allowed when tools are given", param=field)
        return choice
    if choice == "none":
        return choice
    constrained = body.response_format is not None and body.response_format.type != "text"
    if constrained or body.grammar is not None or body.json_schema is not None:
        raise APIError(400, "tools and a constrained response format cannot be combined: send one", param="tools")
    if choice not in ("auto", "required") and choice not in [tool.function.name for tool in body.tools]:
        raise APIError(400, f"tool_choice names {choice!r}, which is not among the tools", param="tool_choice")
    return choice


def _grammar(root: str, schema: dict[str, Any]) -> str:
    """GBNF whose root is `root`, in which `CALL_RULE` stands for JSON valid against `schema`."""
    rules = re.sub(r"^root ::=", f"{CALL_RULE} ::=", schema_grammar(schema, "tools"), flags=re.MULTILINE)
    return f"root ::= {root}\n{rules}"


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _call_list(call: dict[str, Any], many: bool) -> dict[str, Any]:
    """A JSON array of one call or more (of one alone without `many`)."""
    return {"type": "array", "items": call, "minItems": 1, **({} if many else {"maxItems": 1})}


def _call_schema(name: str, parameters: dict[str, Any] | None, arguments_key: str) -> dict[str, Any]:
    return _object({"name": {"const": name}, arguments_key: parameters or {"type": "object"}})


def _json(text: str) -> Any:
    """The value of JSON text; None when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def _arguments_object(arguments: Any) -> Any:
    """A call's arguments as an object when they are JSON text (as OpenAI sends them), else as given."""
    if isinstance(arguments, str):
        parsed = _json(arguments)
        return arguments if parsed is None else parsed
    return arguments


def _calls_mapped(message: Message, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Message:
    """`message` with `change` applied to each of its tool calls."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return message
    return {**message, "tool_calls": [change(call) if isinstance(call, dict) else call for call in calls]}


def _argument_object(call: dict[str, Any]) -> dict[str, Any]:
    """Hugging Face templates take a call's arguments as an object."""
    function = call.get("function")
    if not isinstance(function, dict):
        return call
    return {**call, "function": {**function, "arguments": _arguments_object(function.get("arguments"))}}


def _mistral_id(value: Any) -> Any:
    """An id as Mistral's templates take it, 9 letters and digits: another string maps to one, always the
    same (so a conversation's prompt stays the same from turn to turn)."""
    if not isinstance(value, str) or MISTRAL_ID.fullmatch(value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:9]


def _with_mistral_ids(message: Message) -> Message:
    if message.get("role") == "tool" and "tool_call_id" in message:
        return {**message, "tool_call_id": _mistral_id(message["tool_call_id"])}
    return _calls_mapped(message, lambda call: {**call, "id": _mistral_id(call.get("id"))})


def _one_call_per_turn(message: Message) -> list[Message]:
    """An assistant turn with several calls as one turn per call (the first keeps the text)."""
    calls = message.get("tool_calls")
    if message.get("role") != "assistant" or not isinstance(calls, list) or len(calls) < 2:
        return [message]
    return [{**message, "tool_calls": [call], **({"content": None} if i else {})} for i, call in enumerate(calls)]


def _generic_turn(message: Message) -> Message:
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
