"""response_format -> the grammar that enforces it."""

from __future__ import annotations

from ceruleum.api.chat.protocol import ResponseFormat
from ceruleum.api.errors import InvalidRequestError
from ceruleum.engine.grammar import JSON_OBJECT_GRAMMAR, UnsupportedSchemaError, schema_grammar


def response_format_grammar(response_format: ResponseFormat | None) -> str | None:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return JSON_OBJECT_GRAMMAR
    spec = response_format.json_schema
    if spec is None or spec.schema_ is None:
        raise InvalidRequestError(
            "'response_format' of type 'json_schema' needs 'json_schema.schema'.",
            param="response_format.json_schema",
        )
    try:
        return schema_grammar(spec.schema_)
    except UnsupportedSchemaError as exc:
        raise InvalidRequestError(
            f"The schema uses features that cannot be enforced: {exc}",
            param="response_format.json_schema.schema",
            code="unsupported_schema",
        ) from None
