"""Azure OpenAI's dated routes: /openai/deployments/{deployment}/... and /openai/models.

The deployment in the path picks the model; the handlers are the same as the /v1 ones, and
errors come back in Azure's shape (see api/errors.py). Authentication (`api-key` or
`Authorization: Bearer`) arrives with the gateway.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ceruleum.api.azure.versions import require_api_version
from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.chat.protocol import ChatCompletionRequest
from ceruleum.api.chat.serving import create_chat_completion
from ceruleum.api.completions.protocol import CompletionRequest
from ceruleum.api.completions.serving import create_completion
from ceruleum.api.deps import DatabaseDep, DeploymentLookupDep, PoolDep, SettingsDep
from ceruleum.api.embeddings import EmbeddingRequest, create_embeddings
from ceruleum.api.errors import NotFoundError
from ceruleum.api.gating import gated, new_gate
from ceruleum.api.models import model_cards
from ceruleum.deployments.repository import list_deployments as list_deployments_of
from ceruleum.engine.pool import ModelPool
from ceruleum.gateway.auth import CurrentPrincipal
from ceruleum.gateway.principal import Principal
from ceruleum.store import Database

router = APIRouter(prefix="/openai", tags=["azure"])

_FAR_FUTURE = 4102444800  # 2100-01-01: the bundled models are never retired


async def _body_for(request: Request, deployment: str, max_bytes: int) -> dict[str, Any]:
    require_api_version(request)
    data = await read_json_object(request, max_bytes)
    data["model"] = deployment  # the path, not the body, picks the deployment
    return data


@router.post("/deployments/{deployment}/chat/completions")
async def chat_completions(
    deployment: str,
    request: Request,
    pool: PoolDep,
    deployments: DeploymentLookupDep,
    settings: SettingsDep,
) -> Response:
    gate = new_gate(request, route="chat.completions", operation="ChatCompletions_Create")

    async def handle() -> Response:
        data = await _body_for(request, deployment, settings.max_body_bytes)
        body = parse_as(ChatCompletionRequest, data)
        return await create_chat_completion(request, body, pool, deployments, settings, gate)

    return await gated(request, gate, handle())


@router.post("/deployments/{deployment}/completions")
async def completions(
    deployment: str,
    request: Request,
    pool: PoolDep,
    deployments: DeploymentLookupDep,
    settings: SettingsDep,
) -> Response:
    gate = new_gate(request, route="completions", operation="Completions_Create")

    async def handle() -> Response:
        data = await _body_for(request, deployment, settings.max_body_bytes)
        body = parse_as(CompletionRequest, data)
        return await create_completion(request, body, pool, deployments, settings, gate)

    return await gated(request, gate, handle())


@router.post("/deployments/{deployment}/embeddings")
async def embeddings(
    deployment: str,
    request: Request,
    pool: PoolDep,
    deployments: DeploymentLookupDep,
    settings: SettingsDep,
) -> Response:
    gate = new_gate(request, route="embeddings", operation="Embeddings_Create")

    async def handle() -> Response:
        data = await _body_for(request, deployment, settings.max_body_bytes)
        body = parse_as(EmbeddingRequest, data)
        return await create_embeddings(body, pool, deployments, settings, gate)

    return await gated(request, gate, handle())


async def _deployment_objects(
    pool: ModelPool, database: Database, principal: Principal
) -> list[dict[str, Any]]:
    """The caller's project's deployments, then each served model as an implicit deployment."""
    async with database.session() as session:
        explicit = await list_deployments_of(session, project_id=principal.project_id)
    objects = [_deployment_object(d.name, d.model, d.created_at, d.updated_at) for d in explicit]
    taken = {o["id"] for o in objects}
    for card in model_cards(pool):
        if card["id"] not in taken:
            objects.append(
                _deployment_object(card["id"], card["id"], card["created"], card["created"])
            )
    return objects


def _deployment_object(name: str, model: str, created: int, updated: int) -> dict[str, Any]:
    return {
        "id": name,
        "object": "deployment",
        "model": model,
        "owner": "organization-owner",
        "status": "succeeded",
        "created_at": created,
        "updated_at": updated,
        "scale_settings": {"scale_type": "standard"},
    }


@router.get("/deployments")
async def list_deployments(
    request: Request, pool: PoolDep, database: DatabaseDep, principal: CurrentPrincipal
) -> JSONResponse:
    require_api_version(request)
    data = await _deployment_objects(pool, database, principal)
    return JSONResponse({"object": "list", "data": data})


@router.get("/deployments/{deployment}")
async def get_deployment(
    deployment: str,
    request: Request,
    pool: PoolDep,
    database: DatabaseDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    require_api_version(request)
    for item in await _deployment_objects(pool, database, principal):
        if item["id"] == deployment:
            return JSONResponse(item)
    raise NotFoundError(f"The deployment '{deployment}' does not exist.", code="DeploymentNotFound")


def _azure_model(card: dict[str, Any]) -> dict[str, Any]:
    capabilities = card["capabilities"]
    return {
        "id": card["id"],
        "object": "model",
        "status": "succeeded",
        "created_at": card["created"],
        "lifecycle_status": "generally-available",
        "capabilities": {
            "fine_tune": False,
            "inference": True,
            "completion": capabilities.get("completion", False),
            "chat_completion": capabilities.get("chat_completion", False),
            "embeddings": capabilities.get("embeddings", False),
        },
        "deprecation": {"inference": _FAR_FUTURE},
    }


@router.get("/models")
async def list_models(request: Request, pool: PoolDep) -> JSONResponse:
    require_api_version(request)
    return JSONResponse({"object": "list", "data": [_azure_model(c) for c in model_cards(pool)]})


@router.get("/models/{model_id}")
async def get_model(model_id: str, request: Request, pool: PoolDep) -> JSONResponse:
    require_api_version(request)
    for card in model_cards(pool):
        if card["id"] == model_id:
            return JSONResponse(_azure_model(card))
    raise NotFoundError(f"The model '{model_id}' does not exist.", code="ModelNotFound")
