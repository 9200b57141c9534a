"""Constrained output: the GBNF grammar a request asks for, from `response_format`, `json_schema` or
`grammar`, checked before the request reaches the engine.

JSON Schemas are converted with the converter llama-cpp-python ships (the one llama-server uses, in
Python). It skips keywords it does not implement, so every keyword is checked against what it honours
first: a schema whose output the grammar could not guarantee is refused by name, never half-applied.
"""

from __future__ import annotations

import json
from typing import Any

from docker_model.runner.shared.error_body import APIError

from .bindings import lc
from .llama import LlamaModel
from .sampling import grammar_sampler
from .schemas import GenerationBody

# Keywords the converter turns into grammar rules, and keywords that constrain nothing (annotations).
CONSTRAINING = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
        "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "pattern", "minLength", "maxLength",
        "format",
    }
)  # fmt: skip
ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
        "readOnly", "writeOnly", "$defs", "definitions",
    }
)  # fmt: skip
STRING_FORMATS = frozenset({"date", "time", "date-time", "uuid"})
LOOSE_STRING_CHAR = r'char ::= [^"\\]'
STRICT_STRING_CHAR = r'char ::= [^"\\\x7F\x00-\x1F]'
# Keywords whose value is a schema, or a list or a map of schemas.
SUBSCHEMA = frozenset({"items", "additionalProperties"})
SUBSCHEMA_LISTS = frozenset({"prefixItems", "anyOf", "oneOf", "allOf"})
SUBSCHEMA_MAPS = frozenset({"properties", "$defs", "definitions"})


def unsupported_keyword(schema: Any, where: str = "") -> str | None:
    """The path of the first keyword in `schema` whose meaning the grammar cannot guarantee, else None."""
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return where or "schema"
    for key, value in schema.items():
        path = f"{where}.{key}" if where else key
        if key not in CONSTRAINING and key not in ANNOTATIONS:
            return path
        if key == "format" and value not in STRING_FORMATS:
            return f"{path} ({value})"
        if key in SUBSCHEMA and isinstance(value, dict):
            found = unsupported_keyword(value, path)
        elif key in SUBSCHEMA_LISTS and isinstance(value, list):
            found = next((f for i, s in enumerate(value) if (f := unsupported_keyword(s, f"{path}[{i}]"))), None)
        elif key in SUBSCHEMA_MAPS and isinstance(value, dict):
            found = next((f for k, s in value.items() if (f := unsupported_keyword(s, f"{path}.{k}"))), None)
        else:
            found = None
        if found:
            return found
    return None


def schema_grammar(schema: dict[str, Any], param: str) -> str:
    """GBNF for JSON text valid against `schema`; a 400 naming what cannot be honoured."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    keyword = unsupported_keyword(schema)
    if keyword is not None:
        raise APIError(
            400,
            f"{param}: the JSON Schema keyword {keyword} is not supported in constrained output; "
            "leave it out or check the value yourself",
            param=param,
            code="unsupported_schema",
        )
    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except (ValueError, KeyError, TypeError, AssertionError, RecursionError) as error:
        raise APIError(400, f"{param}: the JSON Schema cannot be used: {error}", param=param) from None
    # The converter lets control characters into strings, which JSON forbids unescaped.
    return grammar.replace(LOOSE_STRING_CHAR, STRICT_STRING_CHAR)


def check_grammar(model: LlamaModel, grammar: str, param: str, trigger: str | None = None) -> None:
    """A 400 naming `param` when llama.cpp cannot parse `grammar` (GBNF with a `root` rule): the request's
    own GBNF, or the grammar made from its schema."""
    sampler = grammar_sampler(model, grammar, trigger)
    if not sampler:
        what = "not a valid GBNF grammar with a root rule" if param == "grammar" else "its grammar does not parse"
        raise APIError(400, f"{param}: {what}", param=param)
    lc.llama_sampler_free(sampler)


def requested_grammar(body: GenerationBody) -> tuple[str, str] | None:
    """The grammar the request's output must match and the field that asked for it, None for free text;
    a 400 for a bad request."""
    fmt = body.response_format
    asked = [
        name
        for name, given in (
            ("response_format", fmt is not None and fmt.type != "text"),
            ("json_schema", body.json_schema is not None),
            ("grammar", body.grammar is not None),
        )
        if given
    ]
    if len(asked) > 1:
        raise APIError(400, f"{' and '.join(asked)} each constrain the output: send one of them", param=asked[1])
    if asked and body.ignore_eos:
        raise APIError(
            400,
            f"ignore_eos cannot be combined with {asked[0]}: the answer ends where it is complete",
            param="ignore_eos",
        )
    if body.grammar is not None:
        return body.grammar, "grammar"
    if body.json_schema is not None:
        return schema_grammar(body.json_schema, "json_schema"), "json_schema"
    if fmt is None or fmt.type == "text":
        return None
    if fmt.json_schema is not None and fmt.json_schema.schema_ is not None:
        param = "response_format.json_schema.schema"
        return schema_grammar(fmt.json_schema.schema_, param), param
    return schema_grammar({"type": "object"}, "response_format"), "response_format"
