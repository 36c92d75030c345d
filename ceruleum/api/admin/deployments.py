"""/admin/projects/{project_id}/deployments: a project's deployments (named model bindings with
sampling defaults, an output limit, a quota and a content-filter policy), managed by its owners
and the admin."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictStr

from ceruleum.api.admin.common import STRICT, Count, Number, created, deleted, listing
from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.deps import DatabaseDep, PoolDep, SettingsDep
from ceruleum.deployments import (
    Deployment,
    DeploymentChanges,
    DeploymentNotFoundError,
    SamplingDefaults,
    check_model_served,
    check_name_free,
    parse_policy,
)
from ceruleum.deployments.repository import get_deployment, list_deployments
from ceruleum.engine.pool import ModelPool
from ceruleum.gateway import admin
from ceruleum.gateway.access import managed_project
from ceruleum.gateway.auth import CurrentPrincipal

router = APIRouter(prefix="/admin/projects/{project_id}/deployments", tags=["admin"])


class DefaultsBody(BaseModel):
    model_config = STRICT

    temperature: Number | None = None
    top_p: Number | None = None
    max_tokens: Count | None = None

    def merged_into(self, current: SamplingDefaults) -> SamplingDefaults:
        """JSON merge patch: the fields given replace the current ones; null clears one."""
        given = {field: getattr(self, field) for field in self.model_fields_set}
        return dataclasses.replace(current, **given)


class CreateDeploymentBody(BaseModel):
    model_config = STRICT

    name: StrictStr
    model: StrictStr
    defaults: DefaultsBody | None = None
    max_tokens_limit: Count | None = None
    tokens_per_minute: Count | None = None  # omitted: the server's default quota, written down
    requests_per_minute: Count | None = None  # omitted: 6 per 1,000 tokens per minute
    # The policy's wire form, checked by parse_policy so that errors name the exact field.
    content_filter: Any = None


class UpdateDeploymentBody(BaseModel):
    """The name and the model are fixed; create another deployment to bind another model."""

    model_config = STRICT

    defaults: DefaultsBody | None = None
    max_tokens_limit: Count | None = None
    tokens_per_minute: Count | None = None
    requests_per_minute: Count | None = None
    content_filter: Any = None  # replaces the whole policy; null resets it to the default

    def changes(self, current: Deployment) -> DeploymentChanges:
        changes: DeploymentChanges = {}
        given = self.model_fields_set
        if "defaults" in given:
            changes["defaults"] = (
                SamplingDefaults()
                if self.defaults is None
                else self.defaults.merged_into(current.defaults)
            )
        if "max_tokens_limit" in given:
            changes["max_tokens_limit"] = self.max_tokens_limit
        if "tokens_per_minute" in given:
            changes["tokens_per_minute"] = self.tokens_per_minute
        if "requests_per_minute" in given:
            changes["requests_per_minute"] = self.requests_per_minute
        if "content_filter" in given:
            changes["content_filter"] = parse_policy(self.content_filter)
        return changes


def served_model_ids(pool: ModelPool) -> list[str]:
    return [*pool.chat_models, *pool.embedding_models]


@router.get("")
async def list_all(project_id: str, principal: CurrentPrincipal, db: DatabaseDep) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        found = await list_deployments(session, project_id=project.id)
    return listing(deployment.to_dict() for deployment in found)


@router.post("")
async def create_one(
    project_id: str,
    request: Request,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    pool: PoolDep,
    settings: SettingsDep,
) -> JSONResponse:
    data = await read_json_object(request, settings.max_body_bytes)
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        body = parse_as(CreateDeploymentBody, data)
        defaults = None if body.defaults is None else body.defaults.merged_into(SamplingDefaults())
        deployment = Deployment.new(
            body.name,
            body.model,
            project_id=project.id,
            defaults=defaults,
            max_tokens_limit=body.max_tokens_limit,
            tokens_per_minute=(
                settings.default_tokens_per_minute
                if body.tokens_per_minute is None
                else body.tokens_per_minute
            ),
            requests_per_minute=body.requests_per_minute,
            content_filter=parse_policy(body.content_filter),
        )
        served = served_model_ids(pool)
        check_name_free(deployment.name, served)
        check_model_served(deployment.model, served)
        made = await admin.create_deployment(session, actor=principal.actor, deployment=deployment)
    request.app.state.deployment_lookup.forget()
    return created(made.to_dict(), f"/admin/projects/{project.id}/deployments/{made.name}")


@router.get("/{name}")
async def get_one(
    project_id: str, name: str, principal: CurrentPrincipal, db: DatabaseDep
) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        deployment = await get_deployment(session, project_id=project.id, name=name)
    if deployment is None:
        raise DeploymentNotFoundError(name)
    return JSONResponse(deployment.to_dict())


@router.patch("/{name}")
async def update_one(
    project_id: str,
    name: str,
    request: Request,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    settings: SettingsDep,
) -> JSONResponse:
    data = await read_json_object(request, settings.max_body_bytes)
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        current = await get_deployment(session, project_id=project.id, name=name)
        if current is None:
            raise DeploymentNotFoundError(name)
        body = parse_as(UpdateDeploymentBody, data)
        updated = await admin.update_deployment(
            session,
            actor=principal.actor,
            project_id=project.id,
            name=name,
            **body.changes(current),
        )
    request.app.state.deployment_lookup.forget()
    return JSONResponse(updated.to_dict())


@router.delete("/{name}")
async def delete_one(
    project_id: str, name: str, request: Request, principal: CurrentPrincipal, db: DatabaseDep
) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        await admin.delete_deployment(
            session, actor=principal.actor, project_id=project.id, name=name
        )
    request.app.state.deployment_lookup.forget()
    return deleted(name, "deployment")
