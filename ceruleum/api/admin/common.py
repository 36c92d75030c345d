"""What the admin routes share: strict bodies, list and creation replies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field

# Strict, not lenient like the inference schemas: a misspelt admin field must not be ignored,
# and a field the caller may not set (project_id, secret_hash, api_base, ...) must not slip in.
STRICT = ConfigDict(extra="forbid")
# Ranges are checked by the domain objects themselves, the same for the API and the CLI.
Number = Annotated[float, Field(strict=True)]
Count = Annotated[int, Field(strict=True)]
# Unix seconds up to the last second of year 9999, the most a datetime holds.
UnixTime = Annotated[int, Field(strict=True, ge=0, le=253_402_300_799)]


def listing(items: Iterable[dict[str, Any]], **extra: Any) -> JSONResponse:
    return JSONResponse({"object": "list", "data": list(items), **extra})


def created(item: dict[str, Any], location: str) -> JSONResponse:
    return JSONResponse(item, status_code=201, headers={"Location": location})


def deleted(item_id: str, kind: str) -> JSONResponse:
    return JSONResponse({"id": item_id, "object": f"{kind}.deleted", "deleted": True})
