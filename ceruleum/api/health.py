"""GET /health: 200 while every engine runs, 503 once one has died."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ceruleum.api.deps import PoolDep

router = APIRouter()


@router.get("/health", tags=["operations"])
async def health(request: Request, pool: PoolDep) -> JSONResponse:
    engines = {model_id: asdict(chat.engine.stats()) for model_id, chat in pool.chat_models.items()}
    healthy = pool.healthy
    content_filter = request.app.state.content_filter
    return JSONResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "engines": engines,
            # "loading": requests are served and wait for the classifier; "off": development.
            "content_filter": "off" if content_filter is None else content_filter.state,
        },
        status_code=200 if healthy else 503,
    )
