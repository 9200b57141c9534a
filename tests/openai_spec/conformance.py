"""The vendored OpenAI spec, ready for the tests: one place for where it is wrong about what OpenAI sends,
a validator of any of its schemas, and the corrected spec the fuzzer is driven by.

The spec is OpenAPI 3.1, but it still marks many fields with 3.0's `nullable: true`, which a JSON Schema
validator ignores: `validate` reads it as OpenAPI does (the value may also be null). That is reading the
spec right, not weakening it. Corrections are different: each changes what the spec says, and carries the
evidence that OpenAI sends otherwise.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).with_name("openai-openapi.pruned.json")
SPEC_URI = "urn:openai-openapi"


@dataclass(frozen=True)
class Correction:
    schema: str  # a name under components/schemas
    path: tuple[str, ...]  # keys from that schema to the part corrected
    corrected: Callable[[dict[str, Any]], dict[str, Any]]  # the spec's part -> what OpenAI sends
    evidence: str
    based_on: str | None = None  # a new schema, first copied from this one


def _or_null(part: dict[str, Any]) -> dict[str, Any]:
    return {**part, "nullable": True}


STREAMED_COMPLETION = (
    "The spec describes no chunk of a streamed completion (its 200 answer is `application/json` only), but "
    "its own streaming example for createCompletion shows chunks of this object with "
    '`"finish_reason": null` until the last, and `stream_options.include_usage` (which createCompletion '
    "accepts) says: 'All other chunks will also include a `usage` field, but with a null value.'"
)
CORRECTIONS = (
    Correction(
        schema="Embedding",
        path=("properties", "embedding"),
        corrected=lambda part: {
            "description": part["description"],
            "anyOf": [
                {"type": "array", "items": {"type": "number"}},
                {"type": "string", "contentEncoding": "base64"},
            ],
        },
        evidence=(
            "The spec gives `embedding` as an array of floats only, yet its own request schema offers "
            "`encoding_format: base64`, described as 'The format to return the embeddings in. Can be either "
            "`float` or `base64`.' With base64 the vector arrives as a base64 string of little-endian float32s: "
            "the official Python SDK, which asks for base64 by default, decodes it with "
            "`np.frombuffer(base64.b64decode(data), dtype='float32')` (openai-python, "
            "src/openai/resources/embeddings.py)."
        ),
    ),
    Correction(
        schema="CreateCompletionStreamResponse",
        based_on="CreateCompletionResponse",
        path=("properties", "choices", "items", "properties", "finish_reason"),
        corrected=_or_null,
        evidence=STREAMED_COMPLETION,
    ),
    Correction(
        schema="CreateCompletionStreamResponse",
        path=("properties", "usage"),
        corrected=_or_null,
        evidence=STREAMED_COMPLETION,
    ),
)


@functools.cache
def vendored_spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


def corrected_spec() -> dict[str, Any]:
    """A fresh copy of the spec with CORRECTIONS applied (callers may change it: schemathesis does)."""
    spec = copy.deepcopy(vendored_spec())
    schemas = spec["components"]["schemas"]
    for correction in CORRECTIONS:
        if correction.based_on is not None:
            schemas[correction.schema] = copy.deepcopy(schemas[correction.based_on])
        *parents, last = correction.path
        node = schemas[correction.schema]
        for key in parents:
            node = node[key]
        node[last] = correction.corrected(node[last])
    return spec


def _read_nullable(node: Any) -> Any:
    """OpenAPI's `nullable: true` as JSON Schema says it: the schema, or null."""
    if isinstance(node, list):
        return [_read_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _read_nullable(value) for key, value in node.items()}
    if node.pop("nullable", False) is True:
        return {"anyOf": [node, {"type": "null"}]}
    return node


@functools.cache
def _registry() -> Registry:
    contents = _read_nullable(corrected_spec())
    return Registry().with_resource(SPEC_URI, Resource.from_contents(contents, default_specification=DRAFT202012))


def errors(schema: str, instance: Any) -> list[str]:
    """Where `instance` breaks the spec's schema `schema` (a components/schemas name), one line each."""
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{SPEC_URI}#/components/schemas/{schema}"}, registry=_registry()
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def validate(schema: str, instance: Any) -> None:
    """Fails the test, naming every violation, when `instance` breaks `schema`."""
    found = errors(schema, instance)
    assert not found, f"{schema} violated:\n" + "\n".join(found) + f"\nin {json.dumps(instance)[:2000]}"
