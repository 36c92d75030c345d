"""JSON-schema constraints as llama.cpp GBNF grammars, refusing what cannot be enforced.

The conversion itself is llama-cpp-python's port of llama.cpp's json_schema_to_grammar. It
silently ignores keywords it does not understand, so we check the schema first: a constraint
that is not enforced must be a 400, never a silent promise.
"""

from __future__ import annotations

import json
import re
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
    if isinstance(node.get("pattern"), str):
        node["pattern"] = prepare_pattern(node["pattern"]) or node["pattern"]
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


def _type_allows(allowed: list[Any], value: Any) -> bool:
    kind = _json_type(value)
    return kind in allowed or (kind == "integer" and "number" in allowed)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _branch_keywords(node: dict[str, Any]) -> set[str]:
    """The keywords llama-cpp-python's converter honours for this node (its visit() order)."""
    kind = node.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if "$ref" in node:
        return {"$ref"}
    if "anyOf" in node or "oneOf" in node:
        return {"anyOf", "oneOf"}
    if isinstance(kind, list):  # split into anyOf branches before conversion
        return set(node)
    if "const" in node:
        return {"const", "type"}
    if "enum" in node:
        return {"enum", "type"}
    object_rule = "properties" in node or node.get("additionalProperties", True) is not True
    if kinds <= {None, "object"} and "allOf" in node and not object_rule:
        return {"type", "allOf"}
    if kinds <= {None, "object"} and object_rule:
        return {"type", "properties", "required", "additionalProperties"}
    if kinds <= {None, "array"} and "prefixItems" in node:
        return {"type", "prefixItems"}  # an exact tuple: item counts are not applied
    if kinds <= {None, "array"} and "items" in node:
        return {"type", "items", "minItems", "maxItems"}
    if kinds <= {None, "string"} and "pattern" in node:
        return {"type", "pattern"}
    if kinds <= {None, "string"} and node.get("format") in _FORMATS:
        return {"type", "format"}
    if kind == "string" and ("minLength" in node or "maxLength" in node):
        return {"type", "minLength", "maxLength"}
    return {"type"}


def _check_all_of(components: Any, path: str, problems: list[str]) -> None:
    """The converter merges allOf components' properties and makes them all required, without
    extra properties: valid only for components that say no more than that."""
    if not isinstance(components, list):
        return
    for i, component in enumerate(components):
        extra = (
            set(component) - {"properties", "required"} - _ANNOTATIONS
            if isinstance(component, dict)
            else {"(not an object)"}
        )
        if extra:
            problems.append(
                f"{path}/allOf/{i}: only 'properties' and 'required' are supported inside allOf "
                f"(found {', '.join(sorted(extra))})"
            )


_CLASS_SHORTHANDS = {"d": "0-9", "w": "A-Za-z0-9_"}
_LITERAL_ESCAPES = set(".-()[]{}*+?|^$/")
_UNSAFE = {'"', "\\"}  # JSON needs these escaped inside strings; the grammar writes them raw


def prepare_pattern(pattern: str) -> str | None:
    """The pattern rewritten for the converter (\\d and \\w as classes), or None when its
    grammar could produce something that is not a JSON string body (a raw quote, backslash or
    control character: from '.', negated classes, ranges that span them, other escapes)."""
    out: list[str] = []
    in_class = False
    class_chars: list[str] = []  # literal characters of the current class, ranges kept as "a-b"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ord(ch) < 0x20 or (ch in _UNSAFE and ch != "\\"):
            return None
        if ch == "\\":
            if i + 1 >= len(pattern):
                return None
            nxt = pattern[i + 1]
            i += 2
            if nxt in _CLASS_SHORTHANDS:
                out.append(_CLASS_SHORTHANDS[nxt] if in_class else f"[{_CLASS_SHORTHANDS[nxt]}]")
                continue
            if nxt not in _LITERAL_ESCAPES:
                return None
            out.append("\\" + nxt)
            if in_class:
                class_chars.append(nxt)
            continue
        if in_class:
            if ch == "]":
                in_class = False
                if not _class_is_safe("".join(class_chars)):
                    return None
            else:
                class_chars.append(ch)
            out.append(ch)
            i += 1
            continue
        if ch == ".":
            return None
        if ch == "[":
            if pattern[i + 1 : i + 2] == "^":
                return None
            in_class, class_chars = True, []
        out.append(ch)
        i += 1
    return None if in_class else "".join(out)


def _class_is_safe(members: str) -> bool:
    for match in re.finditer(r"(.)-(.)", members, re.DOTALL):
        low, high = ord(match.group(1)), ord(match.group(2))
        if low <= 0x1F or any(low <= ord(c) <= high for c in _UNSAFE):
            return False
    return True


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
    for key in ("const", "enum"):
        if key not in node:
            continue
        values = [node[key]] if key == "const" else node[key]
        if isinstance(values, list) and "type" in node:
            allowed = node["type"] if isinstance(node["type"], list) else [node["type"]]
            if not all(_type_allows(allowed, v) for v in values):
                problems.append(f"{path}/{key}: a value does not have the declared type")
    if "allOf" in node:
        _check_all_of(node["allOf"], path, problems)
    if isinstance(node.get("pattern"), str) and prepare_pattern(node["pattern"]) is None:
        problems.append(
            f"{path}/pattern: only patterns without '.', negated classes, quotes, backslashes, "
            r"whitespace classes or ranges spanning them can be enforced (\d and \w are fine)"
        )
    # The converter follows one branch per schema and ignores keywords outside it.
    constraining = (set(node) & _ENFORCED) - {"$defs", "definitions"}
    if node.get("format") not in _FORMATS:
        constraining.discard("format")  # reported above
    ignored = constraining - _branch_keywords(node)
    if ignored:
        problems.append(
            f"{path}: {', '.join(sorted(ignored))} cannot be enforced together with "
            f"{', '.join(sorted(constraining - ignored)) or 'the rest of this schema'}"
        )
