"""JSON-schema constraints as llama.cpp GBNF grammars, refusing what cannot be enforced.

The conversion itself is llama-cpp-python's port of llama.cpp's json_schema_to_grammar. It
silently ignores keywords it does not understand, so we check the schema first: a constraint
that is not enforced must be a 400, never a silent promise.
"""

from __future__ import annotations

import json
from typing import Any

from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

# Keywords the converter enforces, and annotations that constrain nothing.
_ENFORCED = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "$defs",
    "definitions",
    "pattern",
    "minLength",
    "maxLength",
    "format",
}
_ANNOTATIONS = {
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "strict",
    "name",
}
_FORMATS = {"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"}
_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}

# JSON forbids raw control characters inside strings; the converter's `char` rule allows them.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'

JSON_OBJECT_GRAMMAR = JSON_GBNF


class UnsupportedSchemaError(ValueError):
    """The schema uses features the grammar cannot enforce (names them)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def schema_grammar(schema: dict[str, Any]) -> str:
    """GBNF text whose every accepted string is JSON that validates against the schema."""
    problems: list[str] = []
    _check(schema, "#", problems)
    if problems:
        raise UnsupportedSchemaError(problems)
    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except (AssertionError, KeyError, ValueError, TypeError, RecursionError) as exc:
        raise UnsupportedSchemaError([f"the schema could not be compiled: {exc}"]) from exc
    return str(grammar).replace(_LOOSE_CHAR, _STRICT_CHAR)


def _check(node: Any, path: str, problems: list[str]) -> None:
    if isinstance(node, bool):
        if node is False:
            problems.append(f"{path}: the schema 'false' matches nothing")
        return
    if not isinstance(node, dict):
        problems.append(f"{path}: a schema must be an object")
        return
    for key, value in node.items():
        where = f"{path}/{key}"
        if key in _ANNOTATIONS:
            continue
        if key not in _ENFORCED:
            problems.append(f"{where}: keyword '{key}' is not supported")
            continue
        if key == "type":
            types = value if isinstance(value, list) else [value]
            for t in types:
                if t not in _TYPES:
                    problems.append(f"{where}: unknown type {t!r}")
        elif key == "format" and value not in _FORMATS:
            problems.append(f"{where}: format {value!r} is not supported")
        elif key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
            problems.append(f"{where}: only local references ('#/...') are supported")
        elif key == "additionalProperties" and isinstance(value, dict):
            _check(value, where, problems)
        elif key in ("properties", "$defs", "definitions"):
            if not isinstance(value, dict):
                problems.append(f"{where}: must be an object")
                continue
            for name, sub in value.items():
                _check(sub, f"{where}/{name}", problems)
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            if not isinstance(value, list) or not value:
                problems.append(f"{where}: must be a non-empty array")
                continue
            for i, sub in enumerate(value):
                _check(sub, f"{where}/{i}", problems)
        elif key == "items":
            subs = value if isinstance(value, list) else [value]
            for i, sub in enumerate(subs):
                _check(sub, f"{where}/{i}" if isinstance(value, list) else where, problems)
    if "allOf" in node and node.get("type", "object") != "object":
        problems.append(f"{path}/allOf: only supported for objects")
