from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.completions.protocol import CompletionRequest
from ceruleum.api.completions.serving import create_completion
from ceruleum.api.deps import DeploymentLookupDep, PoolDep, SettingsDep
from ceruleum.api.gating import gated, new_gate

router = APIRouter()


@router.post("/completions", tags=["inference"])
async def completions(
    request: Request, pool: PoolDep, deployments: DeploymentLookupDep, settings: SettingsDep
) -> Response:
    gate = new_gate(request, route="completions", operation="Completions_Create")

    async def handle() -> Response:
        data = await read_json_object(request, settings.max_body_bytes)
        body = parse_as(CompletionRequest, data)
        return await create_completion(request, body, pool, deployments, settings, gate)

    return await gated(request, gate, handle())
