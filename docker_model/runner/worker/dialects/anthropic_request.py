"""Anthropic's Messages request, validated, and its translation into the fields of OpenAI's chat body.

Every field is done or refused by name (a field this module does not declare is a 400). Accepted as
meaningless here: `metadata`, `service_tier`, and `cache_control` (the engine reuses any cached prompt
prefix on its own). The model's thinking in earlier assistant turns is left out of the prompt, as
Anthropic leaves it out of the context.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from docker_model.runner.shared.error_body import APIError
from docker_model.runner.worker.schemas import FUNCTION_NAME, StrictModel

TEXT_ONLY = ("image", "document", "search_result", "container_upload")  # blocks a text model cannot read


class TextBlock(StrictModel):
    type: Literal["text"]
    text: str
    cache_control: Any = None
    citations: list[Any] | None = None

    @field_validator("citations")
    @classmethod
    def _no_citations(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError("citations are not supported: leave them out")
        return value


class ToolUseBlock(StrictModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: Any = None


class ToolResultBlock(StrictModel):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock] = ""
    is_error: bool = False
    cache_control: Any = None

    @property
    def text(self) -> str:
        """The result as the model reads it; an error is marked as one."""
        text = self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)
        return f"Error: {text}" if self.is_error else text


class ThinkingBlock(StrictModel):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(StrictModel):
    type: Literal["redacted_thinking"]
    data: str


Block = Annotated[
    TextBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock, Field(discriminator="type")
]


class MessageParam(StrictModel):
    role: Literal["user", "assistant"]
    content: list[Block]

    @field_validator("content", mode="before")
    @classmethod
    def _blocks(cls, value: Any) -> Any:
        """A string is one text block; blocks a text model cannot read are refused by name."""
        if isinstance(value, str):
            return [{"type": "text", "text": value}]
        for index, block in enumerate(value if isinstance(value, list) else []):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind in TEXT_ONLY:
                raise ValueError(f"block {index}: {kind} blocks are not supported: this model reads text only")
        return value


class ToolDefinition(StrictModel):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None
    strict: bool | None = None  # calls are held to the schema either way
    cache_control: Any = None

    @model_validator(mode="before")
    @classmethod
    def _client_tool(cls, value: Any) -> Any:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind not in (None, "custom"):
            raise ValueError(f"{kind} is a server tool, and this server runs none: define the tool's input_schema")
        return value


class ToolChoice(StrictModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None

    @model_validator(mode="after")
    def _name_with_tool(self) -> ToolChoice:
        if (self.type == "tool") != (self.name is not None):
            raise ValueError('name is required with type "tool", and only with it')
        return self

    def openai(self) -> dict[str, Any]:
        """As OpenAI's `tool_choice` and `parallel_tool_calls`."""
        named = {"type": "function", "function": {"name": self.name}}
        choice = {"auto": "auto", "any": "required", "none": "none"}.get(self.type, named)
        fields: dict[str, Any] = {"tool_choice": choice}
        if self.disable_parallel_tool_use is not None:
            fields["parallel_tool_calls"] = not self.disable_parallel_tool_use
        return fields


class Thinking(StrictModel):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None
    display: str | None = None


class OutputFormat(StrictModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(StrictModel):
    format: OutputFormat | None = None
    effort: str | None = None

    @field_validator("effort")
    @classmethod
    def _no_effort(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("is not supported: leave it out")
        return value


class CountTokensBody(StrictModel):
    model: str | None = None
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    cache_control: Any = None

    @field_validator("thinking")
    @classmethod
    def _thinking_off(cls, value: Thinking | None) -> Thinking | None:
        if value is not None and value.type != "disabled":
            raise ValueError('extended thinking is not supported: leave it out or set it to {"type": "disabled"}')
        return value


class MessagesBody(CountTokensBody):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    metadata: Any = None
    service_tier: Any = None


def chat_fields(body: CountTokensBody) -> dict[str, Any]:
    """The OpenAI chat body's fields for `body`."""
    if body.messages[-1].role == "assistant":
        raise APIError(
            400,
            "messages: the last message is the assistant's, and continuing a prefilled answer is not supported: "
            "end with a user message",
            param="messages",
        )
    messages = [{"role": "system", "content": _parts(body.system)}] if body.system else []
    for number, message in enumerate(body.messages):
        messages += _assistant_turn(message, number) if message.role == "assistant" else _user_turns(message, number)
    fields: dict[str, Any] = {"model": body.model, "messages": messages}
    if body.tools:
        fields["tools"] = [_function(tool) for tool in body.tools]
    if body.tool_choice is not None:
        fields.update(body.tool_choice.openai())
    if body.thinking is not None:  # disabled: templates that think by default are told not to
        fields["chat_template_kwargs"] = {"enable_thinking": False}
    if body.output_config is not None and body.output_config.format is not None:
        schema = {"name": "output", "schema": body.output_config.format.schema_}
        fields["response_format"] = {"type": "json_schema", "json_schema": schema}
    if isinstance(body, MessagesBody):
        sampling = {"max_tokens": body.max_tokens, "stop": body.stop_sequences, "temperature": body.temperature}
        sampling |= {"top_p": body.top_p, "top_k": body.top_k}
        fields.update((name, value) for name, value in sampling.items() if value is not None)
    return fields


def _parts(text: str | list[TextBlock]) -> str | list[dict[str, str]]:
    return text if isinstance(text, str) else [{"type": "text", "text": block.text} for block in text]


def _misplaced(number: int, index: int, kind: str, role: str) -> APIError:
    where = f"messages.{number}.content.{index}"
    return APIError(400, f"{where}: {kind} blocks belong in a message of the {role}", param=where)


def _assistant_turn(message: MessageParam, number: int) -> list[dict[str, Any]]:
    """One assistant message: its text and its tool calls (its thinking left out)."""
    texts: list[TextBlock] = []
    calls = []
    for index, block in enumerate(message.content):
        if isinstance(block, TextBlock):
            texts.append(block)
        elif isinstance(block, ToolUseBlock):
            arguments = json.dumps(block.input, ensure_ascii=False)
            calls.append({"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}})
        elif isinstance(block, ToolResultBlock):
            raise _misplaced(number, index, block.type, "user")
    turn: dict[str, Any] = {"role": "assistant", "content": _parts(texts) if texts else None}
    return [{**turn, "tool_calls": calls}] if calls else [turn]


def _user_turns(message: MessageParam, number: int) -> list[dict[str, Any]]:
    """A user message as OpenAI's: each tool result a `tool` message, the text between them user messages."""
    turns: list[dict[str, Any]] = []
    for index, block in enumerate(message.content):
        if isinstance(block, ToolResultBlock):
            turns.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": block.text})
        elif isinstance(block, TextBlock):
            if not turns or turns[-1]["role"] != "user":
                turns.append({"role": "user", "content": []})
            turns[-1]["content"] += _parts([block])
        else:
            raise _misplaced(number, index, block.type, "assistant")
    return turns


def _function(tool: ToolDefinition) -> dict[str, Any]:
    function = {"name": tool.name, "parameters": tool.input_schema}
    return {"type": "function", "function": function | ({"description": tool.description} if tool.description else {})}
