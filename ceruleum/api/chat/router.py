from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.chat.protocol import ChatCompletionRequest
from ceruleum.api.chat.serving import create_chat_completion
from ceruleum.api.deps import DeploymentsDep, PoolDep, SettingsDep

router = APIRouter()


@router.post("/chat/completions", tags=["inference"])
async def chat_completions(
    request: Request, pool: PoolDep, deployments: DeploymentsDep, settings: SettingsDep
) -> Response:
    body = parse_as(ChatCompletionRequest, await read_json_object(request, settings.max_body_bytes))
    return await create_chat_completion(request, body, pool, deployments, settings)
