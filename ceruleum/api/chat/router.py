from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.chat.protocol import ChatCompletionRequest
from ceruleum.api.chat.serving import create_chat_completion
from ceruleum.api.deps import DeploymentLookupDep, PoolDep, SettingsDep
from ceruleum.api.gating import gated, new_gate

router = APIRouter()


@router.post("/chat/completions", tags=["inference"])
async def chat_completions(
    request: Request, pool: PoolDep, deployments: DeploymentLookupDep, settings: SettingsDep
) -> Response:
    gate = new_gate(request, route="chat.completions", operation="ChatCompletions_Create")

    async def handle() -> Response:
        data = await read_json_object(request, settings.max_body_bytes)
        body = parse_as(ChatCompletionRequest, data)
        return await create_chat_completion(request, body, pool, deployments, settings, gate)

    return await gated(request, gate, handle())
