"""GET /v1/models and /v1/models/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ceruleum.api.deps import PoolDep
from ceruleum.api.errors import model_not_found
from ceruleum.engine.pool import ModelPool

router = APIRouter()


def model_cards(pool: ModelPool) -> list[dict[str, Any]]:
    cards = [
        {
            "id": model_id,
            "object": "model",
            "created": chat.created,
            "owned_by": chat.spec.owned_by,
            "context_length": chat.context_window,
            "capabilities": {
                "chat_completion": True,
                "completion": True,
                "fill_in_the_middle": chat.fim_tokens is not None,
                "embeddings": False,
            },
        }
        for model_id, chat in pool.chat_models.items()
    ]
    cards.extend(
        {
            "id": model_id,
            "object": "model",
            "created": int(embedder.spec.path.stat().st_mtime),
            "owned_by": embedder.spec.owned_by,
            "capabilities": {"chat_completion": False, "completion": False, "embeddings": True},
        }
        for model_id, embedder in pool.embedding_models.items()
    )
    return cards


@router.get("/models", tags=["models"])
async def list_models(pool: PoolDep) -> JSONResponse:
    return JSONResponse({"object": "list", "data": model_cards(pool)})


@router.get("/models/{model_id:path}", tags=["models"])
async def get_model(model_id: str, pool: PoolDep) -> JSONResponse:
    for card in model_cards(pool):
        if card["id"] == model_id:
            return JSONResponse(card)
    raise model_not_found(model_id)
