from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.completions.protocol import CompletionRequest
from ceruleum.api.completions.serving import create_completion
from ceruleum.api.deps import DeploymentsDep, PoolDep, SettingsDep

router = APIRouter()


@router.post("/completions", tags=["inference"])
async def completions(
    request: Request, pool: PoolDep, deployments: DeploymentsDep, settings: SettingsDep
) -> Response:
    body = parse_as(CompletionRequest, await read_json_object(request, settings.max_body_bytes))
    return await create_completion(request, body, pool, deployments, settings)
