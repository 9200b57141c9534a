"""Request bodies of the OpenAI-compatible endpoints, validated with pydantic."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from docker_model.runner.shared.error_body import APIError


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None

    def refused_field(self) -> str | None:
        """The first field set to something this server does not do yet (its default is accepted)."""
        return None


class StreamOptions(BaseModel):
    include_usage: bool = False


class JSONSchemaFormat(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None  # the grammar holds the output to the schema either way


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema object with a name and a schema")
        return self


class GenerationBody(_Body):
    """Fields shared by chat and text completions."""

    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    repeat_penalty: float | None = Field(None, gt=0)
    ignore_eos: bool = False
    n: int = Field(1, ge=1, le=1)
    logit_bias: dict[int, float] | None = None  # token id -> -100..100 added to its logit
    response_format: ResponseFormat | None = None
    json_schema: dict[str, Any] | None = None  # llama-server's extension: output valid against this schema
    grammar: str | None = Field(None, min_length=1)  # llama-server's extension: output matching this GBNF

    @field_validator("logit_bias")
    @classmethod
    def _bias_range(cls, value: dict[int, float] | None) -> dict[int, float] | None:
        if value and any(not -100 <= bias <= 100 for bias in value.values()):
            raise ValueError("each bias must be between -100 and 100")
        return value

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else self.stop

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ToolFunction(BaseModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema; the calls are held to it
    strict: bool | None = None  # held to it either way


class Tool(BaseModel):
    type: Literal["function"]
    function: ToolFunction


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class ChatCompletionBody(GenerationBody):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @property
    def tool_choice_name(self) -> str:
        """ "none", "auto", "required", or the name of the one function to call."""
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            return choice.function.name
        return choice or ("auto" if self.tools else "none")

    def refused_field(self) -> str | None:
        if self.logprobs:
            return "logprobs"
        return "top_logprobs" if self.top_logprobs else None


class CompletionBody(GenerationBody):
    prompt: str | list[str] | list[int]
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False

    def refused_field(self) -> str | None:
        if self.logprobs:
            return "logprobs"
        return "echo" if self.echo else None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str] | list[int]) -> str | list[str] | list[int]:
        """One prompt per request: a list of one text is that text."""
        if isinstance(value, list) and value and isinstance(value[0], str):
            if len(value) != 1:
                raise ValueError("only one prompt per request is supported")
            return value[0]
        return value


class EmbeddingBody(_Body):
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if not value:
            raise ValueError("input must not be empty")
        return value

    @property
    def inputs(self) -> list[str | list[int]]:
        """Each input as text or as token ids."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if all(isinstance(v, int) for v in value):
            return [value]  # type: ignore[list-item]
        return list(value)  # type: ignore[arg-type]


def parse_body(model: type[_Body], raw: bytes) -> Any:
    """Validate a JSON body, turning any problem into a 400 APIError naming the field."""
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        if first.get("type") == "json_invalid":
            raise APIError(400, f"the request body is not valid JSON: {first['msg']}") from None
        message = f"{where}: {first['msg']}" if where else first["msg"]
        raise APIError(400, message, param=where or None) from None
    refused = body.refused_field()
    if refused is not None:
        raise APIError(
            400,
            f"{refused} is not supported yet: leave it out (or set it to its default) and send the request again",
            param=refused,
            code="unsupported_parameter",
        )
    return body
