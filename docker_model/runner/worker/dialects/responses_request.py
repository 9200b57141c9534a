"""An OpenAI Responses request (`POST /v1/responses`), validated, and its translation into the chat request
the worker answers: instructions become a system message, input items become chat messages (function calls
an assistant's tool calls, their outputs tool messages), tools and `text.format` their chat forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationError, field_validator, model_validator

from docker_model.runner.worker.schemas import ANY_VALUE, FUNCTION_NAME, ChatCompletionBody, StrictModel, _Body, invalid

Message = dict[str, Any]


def _type_of(default: str | None = None) -> Callable[[Any], Any]:
    """An item's or part's `type`, validated or not, that picks its model."""
    return lambda value: value.get("type", default) if isinstance(value, dict) else getattr(value, "type", None)


class InputText(StrictModel):
    type: Literal["input_text", "output_text"]
    text: str
    annotations: list[Any] | None = None  # an earlier answer's, sent back: nothing to do with them
    logprobs: list[Any] | None = None


class Refusal(StrictModel):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    Annotated[InputText, Tag("input_text")]
    | Annotated[InputText, Tag("output_text")]
    | Annotated[Refusal, Tag("refusal")],
    Discriminator(
        _type_of(),
        custom_error_type="unsupported_content",
        custom_error_message="only input_text, output_text and refusal content: this model reads text only",
    ),
]


class MessageItem(StrictModel):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: list[ContentPart]  # a text is one input_text part
    id: str | None = None
    status: str | None = None
    phase: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_is_a_part(cls, value: Any) -> Any:
        return [{"type": "input_text", "text": value}] if isinstance(value, str) else value

    @property
    def text(self) -> str:
        return "".join(part.text if isinstance(part, InputText) else part.refusal for part in self.content)


class FunctionCallItem(StrictModel):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(StrictModel):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[InputText]
    id: str | None = None
    status: str | None = None


class ReasoningText(StrictModel):
    type: Literal["reasoning_text", "summary_text"]
    text: str


class ReasoningItem(StrictModel):
    type: Literal["reasoning"]
    summary: list[ReasoningText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    id: str | None = None
    status: str | None = None
    encrypted_content: None = None  # none is made here, so none can come back


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")],
    Discriminator(
        _type_of("message"),  # a message may leave its type out
        custom_error_type="unsupported_item",
        custom_error_message="only message, function_call, function_call_output and reasoning items are supported",
    ),
]
ITEMS: TypeAdapter[list[InputItem]] = TypeAdapter(list[InputItem])


class FunctionTool(StrictModel):
    type: Literal["function"]
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # the grammar holds the calls to the parameters either way


class FunctionChoice(StrictModel):
    type: Literal["function"]
    name: str


class TextFormat(StrictModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(None, min_length=1, max_length=64)  # as chat's json_schema name
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None  # the grammar holds the output to the schema either way

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> TextFormat:
        if self.type == "json_schema" and (self.name is None or self.schema_ is None):
            raise ValueError("type json_schema needs a name and a schema")
        return self

    def chat_form(self) -> dict[str, Any]:
        """Chat's `response_format`."""
        if self.type != "json_schema":
            return {"type": self.type}
        fields = {"name": self.name, "schema": self.schema_, "description": self.description, "strict": self.strict}
        return {"type": "json_schema", "json_schema": {k: v for k, v in fields.items() if v is not None}}


class TextConfig(StrictModel):
    format: TextFormat | None = None
    verbosity: Literal["medium"] | None = None  # the model's own length; other verbosities are refused


class StreamOptions(StrictModel):
    include_obfuscation: bool | None = None  # obfuscation pads events against a network observer; none here


class ResponsesBody(_Body):
    input: list[InputItem] | None = None  # a text is a user message
    instructions: str | None = None
    previous_response_id: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, ge=0, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    text: TextConfig | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    # Known, not done here: each a 400 unless left out or set to the value given.
    background: bool | None = None
    include: list[str] | None = None
    max_tool_calls: int | None = None
    reasoning: Any = None
    top_logprobs: int | None = None
    truncation: str | None = None
    conversation: Any = None
    prompt: Any = None
    prompt_cache_retention: str | None = None
    context_management: Any = None
    REFUSED_UNLESS: ClassVar[dict[str, Any]] = {
        "background": False,
        "include": [],
        "max_tool_calls": ANY_VALUE,
        "reasoning": ANY_VALUE,
        "top_logprobs": 0,
        "truncation": "disabled",
        "conversation": ANY_VALUE,
        "prompt": ANY_VALUE,
        "prompt_cache_retention": "in_memory",
        "context_management": ANY_VALUE,
    }

    @field_validator("input", mode="before")
    @classmethod
    def _text_is_a_message(cls, value: Any) -> Any:
        return [{"role": "user", "content": value}] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _some_input(self) -> ResponsesBody:
        if not self.input and self.previous_response_id is None:
            raise ValueError("input is required (a text or a list of items)")
        return self

    @property
    def stored(self) -> bool:
        """Whether the response is kept for `previous_response_id` and `GET /v1/responses/{id}`."""
        return self.store is not False


# Chat's parameter names in the errors of the chat path -> the names this request gave them.
_PARAMS = {
    "messages": "input",
    "response_format": "text.format",
    "max_tokens": "max_output_tokens",
}


def conversation(body: ResponsesBody, history: list[Message]) -> list[Message]:
    """The request's input as chat messages, after `history` (an earlier response's conversation)."""
    return [*history, *item_messages(body.input or [])]


def chat_body(body: ResponsesBody, messages: list[Message]) -> ChatCompletionBody:
    """The chat request that answers `body` with its conversation, `messages`, after its instructions."""
    system = [{"role": "system", "content": body.instructions}] if body.instructions else []
    tools = body.tools or None
    chat = {
        "model": body.model,
        "messages": [*system, *messages],
        "max_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "tools": [_chat_tool(tool) for tool in tools] if tools else None,
        "tool_choice": _chat_choice(body.tool_choice),
        "parallel_tool_calls": body.parallel_tool_calls,
        "response_format": body.text.format.chat_form() if body.text and body.text.format else None,
    }
    try:
        return ChatCompletionBody.model_validate({k: v for k, v in chat.items() if v is not None})
    except ValidationError as exc:
        raise invalid(exc, responses_param) from None


def responses_param(param: str) -> str:
    """A chat parameter's name as this request calls it."""
    head, dot, rest = param.partition(".")
    return _PARAMS.get(head, head) + dot + rest


def item_messages(items: list[Any]) -> list[Message]:
    """Input (or output) items as chat messages: an assistant's reasoning, text and calls in one message."""
    messages: list[Message] = []
    for item in items:
        message = _message(item)
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" == message["role"] and _joins(last, message):
            tool_calls = last.get("tool_calls", []) + message.get("tool_calls", [])
            last.update({**message, "content": last.get("content", "") + message.get("content", "")})
            if tool_calls:
                last["tool_calls"] = tool_calls
        else:
            messages.append(message)
    return messages


def _joins(last: Message, message: Message) -> bool:
    """Whether an assistant's `message` continues its `last` one: calls after its text, text after its
    reasoning, never reasoning after anything."""
    if "reasoning_content" in message:
        return False
    return "tool_calls" in message or not (last.get("content") or last.get("tool_calls"))


def _message(item: Any) -> Message:
    if isinstance(item, MessageItem):
        return {"role": "system" if item.role == "developer" else item.role, "content": item.text}
    if isinstance(item, FunctionCallItem):
        call = {"id": item.call_id, "type": "function", "function": {"name": item.name, "arguments": item.arguments}}
        return {"role": "assistant", "content": "", "tool_calls": [call]}
    if isinstance(item, FunctionCallOutputItem):
        output = item.output if isinstance(item.output, str) else "".join(part.text for part in item.output)
        return {"role": "tool", "tool_call_id": item.call_id, "content": output}
    assert isinstance(item, ReasoningItem)
    parts = item.content or item.summary
    return {"role": "assistant", "content": "", "reasoning_content": "".join(part.text for part in parts)}


def _chat_tool(tool: FunctionTool) -> dict[str, Any]:
    function = tool.model_dump(exclude={"type"}, exclude_none=True)
    return {"type": "function", "function": function}


def _chat_choice(choice: str | FunctionChoice | None) -> Any:
    if isinstance(choice, FunctionChoice):
        return {"type": "function", "function": {"name": choice.name}}
    return choice
