"""schema_grammar: JSON Schema -> GBNF, refusing what it cannot enforce.

Besides the grammar text, these tests run each grammar through llama.cpp's own grammar sampler
over the real model's vocabulary (no inference, only the tokenizer): `accepts(grammar, text)` says
whether a model constrained by the grammar could write exactly `text` and then stop. That is the
promise the module makes: every string the grammar accepts is JSON that validates against the
schema, and a constraint that cannot be enforced is refused, never silently dropped.
"""

from __future__ import annotations

import ctypes
import json
import math
from collections.abc import Iterator
from typing import Any

import jsonschema
import llama_cpp as llama
import pytest

from ceruleum.engine.grammar import (
    JSON_OBJECT_GRAMMAR,
    UnsupportedSchemaError,
    schema_grammar,
)
from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.registry import resolve_chat_model


class GrammarOracle:
    """Whether a GBNF grammar accepts a whole string, checked with llama.cpp's grammar sampler."""

    def __init__(self, model: LlamaModel) -> None:
        self.model = model

    def accepts(self, grammar: str, text: str) -> bool:
        sampler = llama.llama_sampler_init_grammar(self.model.vocab, grammar.encode(), b"root")
        assert sampler, f"llama.cpp could not parse the grammar:\n{grammar}"
        try:
            tokens = self.model.tokenize(text, add_special=False, parse_special=False)
            for token in tokens:
                if not self._allows(sampler, token):
                    return False
                # Accepting a token the grammar refuses would abort the process: checked above.
                llama.llama_sampler_accept(sampler, token)
            return self._allows(sampler, self.model.eos_id)  # ...and may it stop here?
        finally:
            llama.llama_sampler_free(sampler)

    @staticmethod
    def _allows(sampler: Any, token: int) -> bool:
        data = (llama.llama_token_data * 1)()
        data[0].id = token
        data[0].logit = 0.0
        data[0].p = 0.0
        array = llama.llama_token_data_array(data=data, size=1, selected=-1, sorted=False)
        llama.llama_sampler_apply(sampler, ctypes.byref(array))
        return math.isfinite(data[0].logit)


@pytest.fixture(scope="module")
def oracle() -> Iterator[GrammarOracle]:
    model = LlamaModel(resolve_chat_model("smollm2-135m-instruct").path)
    yield GrammarOracle(model)
    model.close()


NESTED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "color": {"type": "string", "enum": ["red", "green", "blue"]},
        "pets": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {"kind": {"type": "string"}, "legs": {"type": "integer"}},
                "required": ["kind", "legs"],
                "additionalProperties": False,
            },
        },
        "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name", "age", "score", "active", "color", "pets", "nickname"],
    "additionalProperties": False,
}

SUPPORTED: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
    {"type": "null"},
    {"type": "object"},
    {"type": "array", "items": {"type": "integer"}},
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
    {"enum": ["a", "b", 3, None]},
    {"type": "number", "enum": [1, 2.5]},  # an integer is a number
    {"type": "number", "const": 0},
    {"const": "fixed"},
    {"type": ["string", "null"]},
    {"type": "string", "minLength": 2, "maxLength": 5},
    {"type": "string", "pattern": "^[a-z]+$"},
    {"type": "string", "format": "date"},
    {"type": "string", "format": "uuid"},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
    {"oneOf": [{"type": "integer"}, {"type": "boolean"}]},
    {
        "type": "object",
        "allOf": [
            {"properties": {"a": {"type": "integer"}}},
            {"properties": {"b": {"type": "string"}}},
        ],
    },
    {
        "type": "object",
        "properties": {"x": {"type": "integer"}},
        "additionalProperties": {"type": "string"},
    },
    {
        "title": "T",
        "description": "annotations are fine",
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"a": {"type": "integer", "default": 1, "examples": [1]}},
    },
    NESTED,
]


@pytest.mark.parametrize("schema", SUPPORTED, ids=lambda s: json.dumps(s)[:60])
def test_supported_schemas_compile(schema: dict[str, Any]) -> None:
    grammar = schema_grammar(schema)
    assert "root ::=" in grammar


def test_nested_schema_accepts_a_valid_instance_and_rejects_invalid_ones(
    oracle: GrammarOracle,
) -> None:
    grammar = schema_grammar(NESTED)
    valid = (
        '{"name": "Al", "age": 3, "score": 1.5, "active": true, "color": "red", '
        '"pets": [{"kind": "dog", "legs": 4}], "nickname": null}'
    )
    jsonschema.validate(json.loads(valid), NESTED)
    assert oracle.accepts(grammar, valid)
    invalid = [
        valid.replace('"red"', '"pink"'),  # not in the enum
        valid.replace('"age": 3', '"age": 3.5'),  # not an integer
        valid.replace('"pets": [{"kind": "dog", "legs": 4}]', '"pets": []'),  # minItems 1
        valid.replace('"Al"', '"' + "x" * 21 + '"'),  # maxLength 20
        valid.replace(', "nickname": null', ""),  # required
        valid.replace('"active": true', '"active": "yes"'),
        valid[:-1],  # truncated
    ]
    for text in invalid:
        with pytest.raises(jsonschema.ValidationError if _is_json(text) else ValueError):
            jsonschema.validate(json.loads(text), NESTED)
        assert not oracle.accepts(grammar, text), text


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_ref_and_defs(oracle: GrammarOracle) -> None:
    schema = {
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/Place"}, "work": {"$ref": "#/$defs/Place"}},
        "required": ["home", "work"],
        "$defs": {
            "Place": {
                "type": "object",
                "properties": {"city": {"type": "string", "enum": ["Oslo", "Rome"]}},
                "required": ["city"],
            }
        },
    }
    grammar = schema_grammar(schema)
    assert "root ::=" in grammar
    good = '{"home": {"city": "Oslo"}, "work": {"city": "Rome"}}'
    jsonschema.validate(json.loads(good), schema)
    assert oracle.accepts(grammar, good)
    assert not oracle.accepts(grammar, '{"home": {"city": "Oslo"}, "work": {"city": "Paris"}}')
    assert not oracle.accepts(grammar, '{"home": {"city": "Oslo"}, "work": {}}')


def test_definitions_keyword_is_resolved_too(oracle: GrammarOracle) -> None:
    schema = {
        "type": "array",
        "items": {"$ref": "#/definitions/N"},
        "definitions": {"N": {"type": "integer"}},
    }
    grammar = schema_grammar(schema)
    assert oracle.accepts(grammar, "[1, 2]")
    assert not oracle.accepts(grammar, '[1, "2"]')


@pytest.mark.parametrize(
    ("schema", "paths"),
    [
        ({"type": "integer", "minimum": 0}, ["#/minimum"]),
        ({"type": "integer", "maximum": 9, "multipleOf": 3}, ["#/maximum", "#/multipleOf"]),
        ({"not": {"type": "string"}}, ["#/not"]),
        ({"type": "string", "format": "email"}, ["#/format"]),
        ({"type": "object", "patternProperties": {"^a": {}}}, ["#/patternProperties"]),
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, ["#/uniqueItems"]),
        ({"if": {}, "then": {}, "else": {}}, ["#/if", "#/then", "#/else"]),
        ({"$ref": "https://example.com/schema.json"}, ["#/$ref"]),
        ({"type": "decimal"}, ["#/type"]),
        (
            {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "exclusiveMinimum": 0},
                    "b": {
                        "type": "array",
                        "items": {"type": "string", "format": "email"},
                    },
                    "c": {"anyOf": [{"type": "string"}, {"not": {"type": "null"}}]},
                },
                "additionalProperties": {"type": "number", "maximum": 3},
                "$defs": {"D": {"type": "string", "contentEncoding": "base64"}},
            },
            [
                "#/properties/a/exclusiveMinimum",
                "#/properties/b/items/format",
                "#/properties/c/anyOf/1/not",
                "#/additionalProperties/maximum",
                "#/$defs/D/contentEncoding",
            ],
        ),
    ],
)
def test_unsupported_keywords_are_refused_with_every_path(
    schema: dict[str, Any], paths: list[str]
) -> None:
    with pytest.raises(UnsupportedSchemaError) as caught:
        schema_grammar(schema)
    message = str(caught.value)
    for path in paths:
        assert any(problem.startswith(path) for problem in caught.value.problems), (path, message)
        assert path in message
    assert len(caught.value.problems) == len(paths), caught.value.problems
    assert isinstance(caught.value, ValueError)


def test_false_schema_and_non_object_schema_are_refused() -> None:
    with pytest.raises(UnsupportedSchemaError, match="false"):
        schema_grammar({"type": "object", "properties": {"a": False}})
    with pytest.raises(UnsupportedSchemaError, match="must be an object"):
        schema_grammar({"type": "object", "properties": {"a": 3}})  # type: ignore[dict-item]


def test_unresolvable_local_ref_is_refused() -> None:
    with pytest.raises(UnsupportedSchemaError, match="could not be compiled"):
        schema_grammar({"$ref": "#/$defs/Missing"})


def test_bad_pattern_is_refused() -> None:
    # The converter only understands anchored patterns; it must not be a silent promise.
    with pytest.raises(UnsupportedSchemaError):
        schema_grammar({"type": "string", "pattern": "[a-z]+"})


def test_strict_char_rule_excludes_control_characters(oracle: GrammarOracle) -> None:
    grammar = schema_grammar({"type": "object", "properties": {"s": {"type": "string"}}})
    assert "\\x00-\\x1F" in grammar
    char_rules = [line for line in grammar.splitlines() if line.startswith("char ::=")]
    assert char_rules and all("\\x00-\\x1F" in line for line in char_rules)
    assert oracle.accepts(grammar, '{"s": "tab\\tescaped"}')
    assert not oracle.accepts(grammar, '{"s": "raw\ttab"}')
    assert not oracle.accepts(grammar, '{"s": "raw\x01ctl"}')
    assert not oracle.accepts(grammar, '{"s": "raw\nnewline"}')


def test_strict_char_rule_also_in_bounded_strings(oracle: GrammarOracle) -> None:
    grammar = schema_grammar({"type": "string", "maxLength": 4})
    assert "\\x00-\\x1F" in grammar
    assert oracle.accepts(grammar, '"ab"')
    assert not oracle.accepts(grammar, '"a\x02"')
    assert not oracle.accepts(grammar, '"abcde"')


def test_json_object_grammar(oracle: GrammarOracle) -> None:
    assert oracle.accepts(JSON_OBJECT_GRAMMAR, '{"a": [1, {"b": null}], "c": "d"}')
    assert not oracle.accepts(JSON_OBJECT_GRAMMAR, "[1, 2]")  # an object, not any JSON
    assert not oracle.accepts(JSON_OBJECT_GRAMMAR, '"text"')
    assert not oracle.accepts(JSON_OBJECT_GRAMMAR, '{"a": "x\x01"}')


# --- no silent promises ----------------------------------------------------------------------
# Each schema below is accepted by the keyword check, so it must be enforced: the grammar must
# refuse an instance that the schema refuses. (A 400 for the schema would be fine too.)

SILENTLY_DROPPED: list[tuple[str, dict[str, Any], str]] = [
    (
        "type-list-drops-maxLength",
        {"type": ["string", "null"], "maxLength": 3},
        '"abcdef"',
    ),
    (
        "type-list-drops-properties",
        {
            "type": ["object", "null"],
            "properties": {"a": {"type": "integer"}},
            "required": ["a"],
            "additionalProperties": False,
        },
        '{"b": "x"}',
    ),
    ("minItems-without-items", {"type": "array", "minItems": 2}, "[]"),
    ("required-without-properties", {"type": "object", "required": ["x"]}, "{}"),
    (
        "required-name-missing-from-properties",
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]},
        '{"a": "x"}',
    ),
    (
        "pattern-drops-maxLength",
        {"type": "string", "pattern": "^[a-z]+$", "maxLength": 3},
        '"abcdef"',
    ),
    (
        "items-drops-prefixItems",
        {"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "string"}},
        '["x"]',
    ),
    (
        "oneOf-is-not-exclusive",
        {"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]},
        '"ab"',
    ),
    (
        "properties-drop-allOf",
        {
            "type": "object",
            "properties": {"x": {"type": "string"}},
            "required": ["x"],
            "allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}],
        },
        '{"x": "s"}',
    ),
    (
        "allOf-merge-drops-additionalProperties-false",
        {
            "type": "object",
            "allOf": [
                {"properties": {"a": {"type": "integer"}}, "additionalProperties": False},
                {"properties": {"b": {"type": "string"}}},
            ],
        },
        '{"a": 1, "b": "x"}',
    ),
    ("enum-drops-maxLength", {"type": "string", "enum": ["a", "bb"], "maxLength": 1}, '"bb"'),
    ("const-drops-maxLength", {"type": "string", "const": "xyz", "maxLength": 2}, '"xyz"'),
    (
        "format-drops-maxLength",
        {"type": "string", "format": "date", "maxLength": 5},
        '"2024-01-01"',
    ),
    (
        "prefixItems-drops-minItems",
        {"type": "array", "prefixItems": [{"type": "integer"}], "minItems": 2},
        "[1]",
    ),
]


@pytest.mark.parametrize(
    ("schema", "invalid"),
    [(schema, invalid) for _, schema, invalid in SILENTLY_DROPPED],
    ids=[case_id for case_id, _, _ in SILENTLY_DROPPED],
)
def test_accepted_schemas_are_enforced(
    oracle: GrammarOracle, schema: dict[str, Any], invalid: str
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(invalid), schema)
    try:
        grammar = schema_grammar(schema)
    except UnsupportedSchemaError:
        return  # refusing is an honest answer
    assert not oracle.accepts(grammar, invalid), (
        f"schema_grammar accepted {schema} but its grammar lets the model write {invalid}, "
        f"which does not validate:\n{grammar}"
    )


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("^.+$", '"a"b"'),  # a raw quote ends the JSON string early
        ("^.+$", '"ab\\"'),  # a lone backslash escapes the closing quote
        ("^.+$", '"x\x01y"'),  # a raw control character
        ("^.+$", '"x\ty"'),  # a raw tab
        ("^[^@]+@[^@]+$", '"a"@b"'),
        ('^a"b$', '"a"b"'),  # a quote in the pattern itself
        ("^[ -~]+$", '"a"b"'),  # a range that spans the quote
        ("^[A-z]+$", '"a\\"'),  # a range that spans the backslash
    ],
)
def test_pattern_strings_are_json_strings(oracle: GrammarOracle, pattern: str, text: str) -> None:
    """What a `pattern` grammar accepts must still be a JSON string: quotes, backslashes and
    control characters have to be escaped (or refused), never written raw."""
    with pytest.raises(ValueError):
        json.loads(text)
    try:
        grammar = schema_grammar({"type": "string", "pattern": pattern})
    except UnsupportedSchemaError:
        return
    assert not oracle.accepts(grammar, text), (
        f"the grammar for pattern {pattern!r} accepts {text!r}, which is not JSON:\n{grammar}"
    )


def test_pattern_grammar_accepts_plain_matches(oracle: GrammarOracle) -> None:
    grammar = schema_grammar({"type": "string", "pattern": "^[a-z]+-[0-9]{2}$"})
    assert oracle.accepts(grammar, '"abc-42"')
    assert not oracle.accepts(grammar, '"abc-4"')
    assert not oracle.accepts(grammar, '"ABC-42"')


@pytest.mark.parametrize(
    ("pattern", "matching", "other"),
    [
        ("^\\d+$", '"123"', '"12a"'),
        ("^\\w+$", '"ab_1"', '"a-b"'),
        ("^[A-Z]{2}\\d{3}$", '"AB123"', '"AB12"'),
    ],
)
def test_pattern_classes_are_enforced_or_refused(
    oracle: GrammarOracle, pattern: str, matching: str, other: str
) -> None:
    """A pattern the check lets through must become a grammar llama.cpp can parse (at run time
    an unparseable grammar fails the request with a 503) that enforces the pattern."""
    try:
        grammar = schema_grammar({"type": "string", "pattern": pattern})
    except UnsupportedSchemaError:
        return
    sampler = llama.llama_sampler_init_grammar(oracle.model.vocab, grammar.encode(), b"root")
    assert sampler, f"llama.cpp cannot parse the grammar for {pattern!r}:\n{grammar}"
    llama.llama_sampler_free(sampler)
    assert oracle.accepts(grammar, matching)
    assert not oracle.accepts(grammar, other)


@pytest.mark.parametrize("schema", SUPPORTED, ids=lambda s: json.dumps(s)[:60])
def test_supported_grammars_parse_in_llama_cpp(
    oracle: GrammarOracle, schema: dict[str, Any]
) -> None:
    try:
        grammar = schema_grammar(schema)
    except UnsupportedSchemaError:
        pytest.fail(f"refused a supported schema: {schema}")
    sampler = llama.llama_sampler_init_grammar(oracle.model.vocab, grammar.encode(), b"root")
    assert sampler, f"llama.cpp cannot parse:\n{grammar}"
    llama.llama_sampler_free(sampler)
