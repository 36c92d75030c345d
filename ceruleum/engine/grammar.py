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
        grammar = json_schema_to_gbnf(json.dumps(_split_type_lists(schema)))
    except (AssertionError, KeyError, ValueError, TypeError, RecursionError) as exc:
        raise UnsupportedSchemaError([f"the schema could not be compiled: {exc}"]) from exc
    return str(grammar).replace(_LOOSE_CHAR, _STRICT_CHAR)


def _split_type_lists(node: Any) -> Any:
    """Rewrite what the converter would silently weaken: {"type": [A, B], ...} becomes
    {"anyOf": [{"type": A, ...}, {"type": B, ...}]} (it drops keywords beside a type list)."""
    if isinstance(node, list):
        return [_split_type_lists(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _split_type_lists(value) for key, value in node.items()}
    if (
        ("minItems" in node or "maxItems" in node)
        and "items" not in node
        and "prefixItems" not in node
    ):
        node["items"] = {}  # the converter applies item counts only when items are described
    types = node.get("type")
    if isinstance(types, list):
        rest = {k: v for k, v in node.items() if k != "type"}
        if len(types) == 1:
            return {**rest, "type": types[0]}
        return {"anyOf": [{**rest, "type": t} for t in types]}
    return node


def _disjoint(branches: Any) -> bool:
    """Whether no value can match two branches, so generating any one satisfies oneOf."""
    if not isinstance(branches, list) or not all(isinstance(b, dict) for b in branches):
        return False
    types = [b.get("type") for b in branches]
    if all(isinstance(t, str) for t in types) and len(set(types)) == len(types):
        return not {"integer", "number"} <= set(types)
    for name in branches[0].get("properties", {}):
        tags = [
            b.get("properties", {}).get(name, {}).get("const", _MISSING)
            for b in branches
            if name in b.get("required", [])
        ]
        complete = len(tags) == len(branches) and _MISSING not in tags
        if complete and len({json.dumps(t, sort_keys=True) for t in tags}) == len(tags):
            return True
    return False


_MISSING = object()


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
    if "oneOf" in node and not _disjoint(node["oneOf"]):
        problems.append(
            f"{path}/oneOf: only enforceable when the alternatives are disjoint (distinct types, "
            "or a required property with a distinct 'const' in each); use anyOf"
        )
    required = node.get("required", [])
    declared = node.get("properties", {})
    if isinstance(required, list) and isinstance(declared, dict):
        missing = [name for name in required if name not in declared]
        if missing:
            problems.append(f"{path}/required: {missing} must also be defined in 'properties'")
    if "pattern" in node and {"minLength", "maxLength", "format"} & set(node):
        problems.append(f"{path}: 'pattern' together with minLength/maxLength/format")
    if "prefixItems" in node and "items" in node:
        problems.append(f"{path}: 'prefixItems' together with 'items'")
    # The converter looks only at these keywords when present, ignoring their siblings.
    constraining = set(node) - _ANNOTATIONS - {"$defs", "definitions"}
    for exclusive in ("$ref", "anyOf"):
        if exclusive in node and constraining - {exclusive}:
            others = ", ".join(sorted(constraining - {exclusive}))
            problems.append(f"{path}: '{exclusive}' together with {others} is not supported")
