"""Constrained output with the official openai SDK: JSON Schemas, JSON objects and GBNF grammars are held
to by llama.cpp's grammar sampler; what cannot be honoured is refused by name."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from .conftest import Worker

pytestmark = pytest.mark.integration

SUBJECTS = (
    "a lighthouse", "a red bicycle", "Paris", "a cat named Tom", "the moon", "an old map", "a chess club",
    "a bakery", "a volcano", "a night train", "honeybees", "a rainy city", "a violin", "a river", "a robot",
    "a garden", "a castle", "a teacher", "a comet", "a market",
)  # fmt: skip


def schema(n: int) -> dict[str, Any]:
    """Twenty different schemas: nested objects, arrays, enums, numbers, booleans, optional fields."""
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 24},
            "kind": {"enum": ["place", "thing", "person", "animal", "event"]},
            f"score_{n}": {"type": "integer"},
            "facts": {"type": "array", "items": {"type": "string", "maxLength": 30}, "minItems": 1, "maxItems": 2},
            "details": {
                "type": "object",
                "properties": {"real": {"type": "boolean"}, "size": {"type": "number"}},
                "required": ["real"] if n % 2 else ["real", "size"],
                "additionalProperties": False,
            },
        },
        "required": ["name", "kind", f"score_{n}", "facts", "details"],
        "additionalProperties": False,
    }


def ask(worker: Worker, n: int) -> str:
    reply = worker.client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": f"Describe {SUBJECTS[n]} as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": f"item{n}", "schema": schema(n), "strict": True},
        },
        temperature=0.7,
        max_tokens=300,
    )
    return reply.choices[0].message.content or ""


def test_twenty_schemas_give_output_valid_against_each(worker: Worker) -> None:
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda n: ask(worker, n), range(len(SUBJECTS))))
    for n, answer in enumerate(answers):
        jsonschema.validate(json.loads(answer), schema(n))


class Capital(BaseModel):
    country: str = Field(max_length=40)
    city: str = Field(max_length=40)
    population_millions: float


def test_the_sdks_parse_helper_gets_a_pydantic_object(worker: Worker) -> None:
    completion = worker.client.chat.completions.parse(
        model="m",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        response_format=Capital,
        temperature=0,
        max_tokens=100,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Capital) and parsed.city


def test_json_object_mode_gives_a_json_object_streamed_or_not(worker: Worker) -> None:
    messages = [{"role": "user", "content": 'Reply with a JSON object with the keys "name" and "age" of a dog.'}]
    reply = worker.client.chat.completions.create(
        model="m", messages=messages, response_format={"type": "json_object"}, temperature=0, max_tokens=300
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
    stream = worker.client.chat.completions.create(
        model="m",
        messages=messages,
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=200,
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert isinstance(json.loads(text), dict)


def test_a_gbnf_grammar_and_a_schema_on_text_completions(worker: Worker) -> None:
    yes_no = worker.client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Is the sky blue?"}],
        extra_body={"grammar": 'root ::= "yes" | "no"'},
        max_tokens=10,
    )
    assert yes_no.choices[0].message.content in ("yes", "no")
    completion = worker.client.completions.create(
        model="m",
        prompt="A JSON list of three colours:",
        extra_body={"json_schema": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3}},
        max_tokens=60,
    )
    assert set(json.loads(completion.choices[0].text)) <= {"red", "green", "blue"}


AT_LEAST_3 = {"type": "integer", "minimum": 3}


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "n", "schema": {"type": "integer", "minimum": 3}},
                }
            },
            "response_format.json_schema.schema",
            "minimum",
        ),
        ({"json_schema": {"type": "string", "format": "email"}}, "json_schema", "format (email)"),
        ({"grammar": "root ::= oops"}, "grammar", "not a valid GBNF grammar"),
        ({"grammar": 'root ::= "a"', "json_schema": {"type": "string"}}, "grammar", "send one of them"),
        ({"grammar": 'root ::= "a"', "ignore_eos": True}, "ignore_eos", "cannot be combined with grammar"),
        ({"response_format": {"type": "json_schema"}}, "response_format", "needs a json_schema object"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(worker: Worker, extra: dict, param: str, words: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        worker.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=5, extra_body=extra
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == param and words in error["message"]
