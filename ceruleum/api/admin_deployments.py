"""Admin API for deployments: list, create, get, update and delete under /admin/deployments.

No authentication yet: admin keys arrive with the gateway issue. Until then these routes are
open to anyone who can reach the server, so bind it to a trusted interface.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.deps import DeploymentsDep, PoolDep, SettingsDep
from ceruleum.deployments import (
    Deployment,
    DeploymentChanges,
    SamplingDefaults,
    check_model_served,
    check_name_free,
)
from ceruleum.engine.pool import ModelPool

router = APIRouter(prefix="/admin/deployments", tags=["admin"])

# Strict, not lenient like the inference schemas: a misspelt admin field must not be ignored.
_STRICT = ConfigDict(extra="forbid")
# Ranges are checked by the Deployment itself, the same for the API and the CLI.
Number = Annotated[float, Field(strict=True)]


class DefaultsBody(BaseModel):
    model_config = _STRICT

    temperature: Number | None = None
    top_p: Number | None = None
    max_tokens: StrictInt | None = None

    def merged_into(self, current: SamplingDefaults) -> SamplingDefaults:
        """JSON merge patch: the fields given replace the current ones; null clears one."""
        given = {field: getattr(self, field) for field in self.model_fields_set}
        return dataclasses.replace(current, **given)


class CreateDeploymentBody(BaseModel):
    model_config = _STRICT

    name: StrictStr
    model: StrictStr
    defaults: DefaultsBody | None = None
    max_tokens_limit: StrictInt | None = None


class UpdateDeploymentBody(BaseModel):
    model_config = _STRICT

    defaults: DefaultsBody | None = None
    max_tokens_limit: StrictInt | None = None


def served_model_ids(pool: ModelPool) -> list[str]:
    return [*pool.chat_models, *pool.embedding_models]


@router.get("")
async def list_deployments(store: DeploymentsDep) -> JSONResponse:
    return JSONResponse({"object": "list", "data": [d.to_dict() for d in store.list()]})


@router.post("")
async def create_deployment(
    request: Request, store: DeploymentsDep, pool: PoolDep, settings: SettingsDep
) -> JSONResponse:
    body = parse_as(CreateDeploymentBody, await read_json_object(request, settings.max_body_bytes))
    defaults = None if body.defaults is None else body.defaults.merged_into(SamplingDefaults())
    deployment = Deployment.new(
        body.name, body.model, defaults=defaults, max_tokens_limit=body.max_tokens_limit
    )
    served = served_model_ids(pool)
    check_name_free(deployment.name, served)
    check_model_served(deployment.model, served)
    # Writes run in a worker thread: they fsync and may wait for the CLI's file lock.
    created = await run_in_threadpool(store.create, deployment)
    return JSONResponse(
        created.to_dict(),
        status_code=201,
        headers={"Location": f"/admin/deployments/{created.name}"},
    )


@router.get("/{name}")
async def get_deployment(name: str, store: DeploymentsDep) -> JSONResponse:
    return JSONResponse(store.get(name).to_dict())


@router.patch("/{name}")
async def update_deployment(
    name: str, request: Request, store: DeploymentsDep, settings: SettingsDep
) -> JSONResponse:
    body = parse_as(UpdateDeploymentBody, await read_json_object(request, settings.max_body_bytes))
    current = store.get(name)
    changes: DeploymentChanges = {}
    if "defaults" in body.model_fields_set:
        given = body.defaults
        changes["defaults"] = (
            SamplingDefaults() if given is None else given.merged_into(current.defaults)
        )
    if "max_tokens_limit" in body.model_fields_set:
        changes["max_tokens_limit"] = body.max_tokens_limit
    updated = await run_in_threadpool(lambda: store.update(name, **changes))
    return JSONResponse(updated.to_dict())


@router.delete("/{name}")
async def delete_deployment(name: str, store: DeploymentsDep) -> JSONResponse:
    await run_in_threadpool(store.delete, name)
    return JSONResponse({"id": name, "object": "deployment.deleted", "deleted": True})
