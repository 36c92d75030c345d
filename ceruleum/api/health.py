"""GET /health: 200 while every engine runs, 503 once one has died."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ceruleum.api.deps import PoolDep

router = APIRouter()


@router.get("/health", tags=["operations"])
async def health(pool: PoolDep) -> JSONResponse:
    engines = {model_id: asdict(chat.engine.stats()) for model_id, chat in pool.chat_models.items()}
    healthy = pool.healthy
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "engines": engines},
        status_code=200 if healthy else 503,
    )
