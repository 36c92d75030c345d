"""Server-sent events in OpenAI's framing: ``data: {json}`` frames, then ``data: [DONE]``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from ceruleum.api.errors import error_body, to_api_error

DONE = b"data: [DONE]\n\n"


def event(payload: dict[str, Any]) -> bytes:
    return (
        b"data: "
        + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        + b"\n\n"
    )


def error_event(exc: Exception) -> bytes:
    """A failure after the 200 header went out can only be reported inside the stream."""
    return event(error_body(to_api_error(exc)))


def sse_response(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
