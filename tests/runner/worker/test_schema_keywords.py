"""Which JSON Schema keywords constrained output honours; the first one it cannot is named by its path."""

from __future__ import annotations

from docker_model.runner.worker.grammars import (
    LOOSE_STRING_CHAR,
    STRICT_STRING_CHAR,
    schema_grammar,
    unsupported_keyword,
)


def test_what_the_converter_honours_passes() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Order",
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "when": {"type": "string", "format": "date-time"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1},
            "note": {"anyOf": [{"type": "string", "maxLength": 80}, {"type": "null"}], "default": None},
        },
        "required": ["id", "items"],
        "additionalProperties": False,
        "$defs": {"item": {"type": "object", "properties": {"sku": {"pattern": "^[A-Z]{3}$"}}}},
    }
    assert unsupported_keyword(schema) is None
    assert unsupported_keyword(True) is None


def test_the_first_keyword_it_cannot_honour_is_named_with_its_path() -> None:
    assert unsupported_keyword({"type": "integer", "minimum": 0}) == "minimum"
    nested = {"properties": {"tags": {"type": "array", "uniqueItems": True}}}
    assert unsupported_keyword(nested) == "properties.tags.uniqueItems"
    assert unsupported_keyword({"anyOf": [{"type": "string"}, {"not": {"type": "null"}}]}) == "anyOf[1].not"
    assert unsupported_keyword({"$defs": {"x": {"type": "number", "multipleOf": 2}}}) == "$defs.x.multipleOf"
    assert unsupported_keyword({"type": "string", "format": "email"}) == "format (email)"
    assert unsupported_keyword({"items": {"if": {}}}) == "items.if"


def test_strings_in_constrained_json_never_hold_raw_control_characters() -> None:
    """JSON forbids them unescaped; the converter's own string rule lets them in."""
    grammar = schema_grammar({"type": "object", "properties": {"a": {"type": "string"}}}, "json_schema")
    assert STRICT_STRING_CHAR in grammar and LOOSE_STRING_CHAR not in grammar
