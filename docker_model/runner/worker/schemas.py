"""Request bodies of the OpenAI-compatible endpoints, validated with pydantic."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from docker_model.runner.shared.error_body import APIError

FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"  # what a tool's function may be called
ANY_VALUE = object()  # in REFUSED_UNLESS: no value but null is accepted
LARGEST_INTEGER = 2**64  # past any integer a request may carry (a seed is 64 bits at most)
PLAIN_NUMBER_ERRORS = ("number_type", "int_too_big")
MAX_STOP_STRINGS = 16  # OpenAI takes 4; llama.cpp clients send a few more
MAX_STOP_LENGTH = 512  # characters: each is matched against the text at every token


class StrictModel(BaseModel):
    """A part of a request body: a field it does not define is a 400 naming it, never ignored; a number
    must be one (no NaN or infinity, no `true` where an integer belongs)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _plain_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name)
            if field is None:
                continue
            if isinstance(value, bool):
                admitted = _types_of(field.annotation)
                if bool not in admitted and {int, float} & admitted:
                    raise PydanticCustomError("number_type", "Input should be a number, not a boolean", {"at": name})
            elif isinstance(value, int) and abs(value) >= LARGEST_INTEGER:
                raise PydanticCustomError(
                    "int_too_big", "Input should be an integer that fits in 64 bits", {"at": name}
                )
        return data


def _types_of(annotation: Any) -> set[Any]:
    """The plain types a field's annotation admits (`int | None` -> {int, NoneType})."""
    found: set[Any] = set()
    for arg in typing.get_args(annotation) or (annotation,):
        found |= _types_of(arg) if typing.get_args(arg) else {typing.get_origin(arg) or arg}
    return found


class _Body(StrictModel):
    model: str | None = None
    # OpenAI fields that mean nothing on a local runner: accepted, and listed as such in README.
    user: Any = None
    metadata: Any = None
    service_tier: Any = None
    store: Any = None
    safety_identifier: Any = None
    prompt_cache_key: Any = None
    prompt_cache_retention: Any = None
    prompt_cache_options: Any = None

    # Fields this server knows but does not do: each is a 400 unless null or the value given here (ANY_VALUE:
    # unless null).
    REFUSED_UNLESS: ClassVar[dict[str, Any]] = {}

    def refused_field(self) -> APIError | None:
        """The 400 for the first field set to something this server does not do (its default is accepted)."""
        for name, accepted in self.REFUSED_UNLESS.items():
            value = getattr(self, name)
            if value is not None and value != accepted:
                fix = "leave it out" if accepted is ANY_VALUE else f"leave it out or set it to {json.dumps(accepted)}"
                return APIError(400, f"{name} is not supported: {fix}", param=name, code="unsupported_parameter")
        return None


class StreamOptions(StrictModel):
    include_usage: bool = False
    include_obfuscation: bool | None = None  # obfuscation pads chunks against a network observer; none here


class JSONSchemaFormat(StrictModel):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None  # the grammar holds the output to the schema either way


class ResponseFormat(StrictModel):
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
    n: int = Field(1, ge=1, le=128)  # at most as many as the model's parallel sequences (checked there)
    n_predict: int | None = Field(None, ge=-1)  # llama-server's max_tokens; -1: no limit
    typical_p: float | None = Field(None, ge=0, le=1)
    repeat_last_n: int | None = Field(None, ge=-1)  # -1: the whole context
    top_n_sigma: float | None = None
    xtc_probability: float | None = Field(None, ge=0, le=1)
    xtc_threshold: float | None = Field(None, ge=0, le=1)
    dynatemp_range: float | None = Field(None, ge=0)
    dynatemp_exponent: float | None = Field(None, ge=0)
    mirostat: Literal[0, 1, 2] | None = None
    mirostat_tau: float | None = Field(None, ge=0)
    mirostat_eta: float | None = Field(None, ge=0)
    dry_multiplier: float | None = Field(None, ge=0)
    dry_base: float | None = Field(None, ge=1)
    dry_allowed_length: int | None = Field(None, ge=0)
    dry_penalty_last_n: int | None = Field(None, ge=-1)  # -1: the whole context
    dry_sequence_breakers: list[str] | None = None

    @field_validator("stop")
    @classmethod
    def _bounded_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings are allowed, not {len(stops)}")
        if any(len(stop) > MAX_STOP_LENGTH for stop in stops):
            raise ValueError(f"a stop string is at most {MAX_STOP_LENGTH} characters long")
        return value

    @field_validator("stream", "n", mode="before")
    @classmethod
    def _null_is_the_default(cls, value: Any, info: ValidationInfo) -> Any:
        """OpenAI's spec lets these be null, meaning their default."""
        return cls.model_fields[str(info.field_name)].default if value is None else value

    # llama-server's, not done here: its default is what this server does.
    cache_prompt: bool | None = None
    n_probs: int | None = None
    samplers: Any = None
    id_slot: int | None = None
    n_keep: int | None = None
    t_max_predict_ms: int | None = None
    return_tokens: bool | None = None
    post_sampling_probs: bool | None = None
    timings_per_token: bool | None = None
    n_indent: int | None = None
    lora: Any = None
    response_fields: Any = None
    REFUSED_UNLESS: ClassVar[dict[str, Any]] = {
        "cache_prompt": True,
        "n_probs": 0,
        "samplers": ANY_VALUE,  # any value is refused
        "id_slot": -1,
        "n_keep": 0,
        "t_max_predict_ms": 0,
        "return_tokens": False,
        "post_sampling_probs": False,
        "timings_per_token": False,
        "n_indent": 0,
        "lora": ANY_VALUE,
        "response_fields": ANY_VALUE,
    }
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
    def logprob_alternatives(self) -> int | None:
        """None when no logprobs are asked for, else the alternatives reported per token."""
        return None

    @field_validator("n_predict")
    @classmethod
    def _some_tokens(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("must be -1 (no limit) or at least 1")
        return value

    @property
    def token_limit(self) -> int | None:
        """The most tokens to generate; None: until the context is full."""
        limit = self.max_completion_tokens or self.max_tokens or self.n_predict
        return limit if limit and limit > 0 else None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ToolFunction(StrictModel):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema; the calls are held to it
    strict: bool | None = None  # held to it either way


class Tool(StrictModel):
    type: Literal["function"]
    function: ToolFunction


class NamedFunction(StrictModel):
    name: str


class NamedToolChoice(StrictModel):
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
    # OpenAI's, not done by a text-only engine (or deprecated): their defaults are accepted.
    reasoning_effort: str | None = None
    modalities: list[str] | None = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None
    verbosity: str | None = None
    functions: Any = None
    function_call: Any = None
    moderation: Any = None
    REFUSED_UNLESS: ClassVar[dict[str, Any]] = {
        **GenerationBody.REFUSED_UNLESS,
        "reasoning_effort": ANY_VALUE,
        "modalities": ["text"],
        "audio": ANY_VALUE,
        "prediction": ANY_VALUE,
        "web_search_options": ANY_VALUE,
        "verbosity": ANY_VALUE,
        "functions": ANY_VALUE,
        "function_call": ANY_VALUE,
        "moderation": ANY_VALUE,
    }

    @field_validator("top_logprobs")
    @classmethod
    def _top_needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value and not info.data.get("logprobs"):
            raise ValueError("needs logprobs set to true")
        return value

    @property
    def logprob_alternatives(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    @property
    def tool_choice_name(self) -> str:
        """ "none", "auto", "required", or the name of the one function to call."""
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            return choice.function.name
        return choice or ("auto" if self.tools else "none")


DOCUMENT_SEPARATOR = "<|endoftext|>"  # OpenAI's prompt when none is given


class CompletionBody(GenerationBody):
    prompt: str | list[str] | list[int]
    logprobs: int | None = Field(None, ge=0, le=5)  # each token's, with this many alternatives
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None
    REFUSED_UNLESS: ClassVar[dict[str, Any]] = {
        **GenerationBody.REFUSED_UNLESS,
        "echo": False,
        "suffix": ANY_VALUE,
        "best_of": 1,
    }

    @property
    def logprob_alternatives(self) -> int | None:
        return self.logprobs

    @field_validator("prompt", mode="before")
    @classmethod
    def _a_prompt(cls, value: Any) -> Any:
        """Null is OpenAI's default prompt, its document separator; a list of one list of token ids is
        those ids."""
        if value is None:
            return DOCUMENT_SEPARATOR
        if isinstance(value, list) and value and isinstance(value[0], list):
            if len(value) != 1:
                raise ValueError("only one prompt per request is supported")
            return value[0]
        return value

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
    dimensions: int | None = None
    REFUSED_UNLESS: ClassVar[dict[str, Any]] = {"dimensions": ANY_VALUE}  # the model's own size only

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


Body = TypeVar("Body", bound=BaseModel)


def parse_body(model: type[Body], raw: bytes) -> Body:
    """Validate a JSON body, turning any problem into a 400 APIError naming the field."""
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid(exc) from None
    refused = body.refused_field() if isinstance(body, _Body) else None
    if refused is not None:
        raise refused
    return body


UNION_BRANCHES = re.compile(r"str|int|float|bool|list|dict|none|[A-Z]\w*|.*[\[(].*")


def is_union_branch(part: str) -> bool:
    """Whether a part of pydantic's error location names a branch of a union (`str`, `list[int]`,
    `literal['auto']`, `NamedToolChoice`) or a dict key (`[key]`) rather than a field."""
    return UNION_BRANCHES.fullmatch(part) is not None


def invalid(exc: ValidationError, rename: Callable[[str], str] = str) -> APIError:
    """The 400 for the first problem pydantic found, naming its field (as `rename` gives it)."""
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    if first.get("type") in PLAIN_NUMBER_ERRORS:  # raised for the model, about one of its fields
        loc.append(str(first["ctx"]["at"]))
    named = loc[-1:] if first.get("type") == "extra_forbidden" else []  # an unknown key is named as sent
    fields = [part for part in loc[: len(loc) - len(named)] if not is_union_branch(part)]
    where = rename(".".join(fields + named).rstrip("."))
    if first.get("type") == "json_invalid":
        return APIError(400, f"the request body is not valid JSON: {first['msg']}")
    if first.get("type") == "extra_forbidden":
        return APIError(
            400,
            f"unknown field {where}: this server does not know it; check its spelling or leave it out",
            param=where,
            code="unknown_parameter",
        )
    problem = first["msg"].removeprefix("Value error, ")
    return APIError(400, f"{where}: {problem}" if where else problem, param=where or None)
