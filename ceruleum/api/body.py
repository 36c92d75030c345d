"""Reading a JSON request body safely: media type, size, UTF-8, nesting, object shape."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ceruleum.api.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeError(
            "Request body must be JSON, sent with 'Content-Type: application/json'.",
            code="unsupported_media_type",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRequestError(
            "Request body is not valid UTF-8.", code="invalid_encoding"
        ) from None
    except RecursionError:
        raise InvalidRequestError(
            "Request JSON is nested too deeply.", code="invalid_json"
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"Request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("Request body must be a JSON object.", code="invalid_json")
    _reject_lone_surrogates(data)
    return data


def parse_as(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Validate a body against a wire schema; the first problem becomes a 400 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        message = first["msg"]
        if param:
            message = f"Invalid value for '{param}': {message}"
        raise InvalidRequestError(message, param=param, code="invalid_value") from None


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"Request body is larger than the limit of {max_bytes} bytes.", code="payload_too_large"
    )


def _reject_lone_surrogates(value: object, path: str = "") -> None:
    """JSON escapes can smuggle in lone UTF-16 surrogates, which no tokenizer can encode."""
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidRequestError(
                    f"Invalid string at '{where or 'body'}': it contains a lone surrogate "
                    "and is not valid Unicode.",
                    param=where or None,
                    code="invalid_encoding",
                ) from None
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append((key, where))
                stack.append((sub, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
