"""/admin/projects/{project_id}/keys: a project's API keys, managed by its owners and the admin.

The secret is in the reply to the POST that creates a key and nowhere else, ever. Revocation
is a state change (POST .../revoke), not a deletion, so the key stays listed with revoked_at.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictStr

from ceruleum.api.admin.common import STRICT, Count, UnixTime, created, listing
from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.deps import DatabaseDep, SettingsDep
from ceruleum.gateway import admin
from ceruleum.gateway.access import managed_project, project_key
from ceruleum.gateway.auth import CurrentPrincipal
from ceruleum.store.api_keys import KeyChanges, key_dict, list_keys

router = APIRouter(prefix="/admin/projects/{project_id}/keys", tags=["admin"])

RoleField = Literal["owner", "member", "reader"]
DeploymentNames = list[StrictStr]


class CreateKeyBody(BaseModel):
    model_config = STRICT

    name: StrictStr
    role: RoleField
    expires_at: UnixTime | None = None
    allowed_deployments: DeploymentNames | None = None
    tokens_per_minute: Count | None = None
    requests_per_minute: Count | None = None


class UpdateKeyBody(BaseModel):
    """JSON merge patch: the fields given replace the key's; null clears an optional one."""

    model_config = STRICT

    name: StrictStr | None = None
    role: RoleField | None = None
    expires_at: UnixTime | None = None
    allowed_deployments: DeploymentNames | None = None
    tokens_per_minute: Count | None = None
    requests_per_minute: Count | None = None

    def changes(self) -> KeyChanges:
        changes: KeyChanges = {}
        given = self.model_fields_set
        # name and role cannot be cleared: a null reaches check_key_fields, which answers 400.
        if "name" in given:
            changes["name"] = self.name  # type: ignore[typeddict-item]
        if "role" in given:
            changes["role"] = self.role  # type: ignore[typeddict-item]
        if "expires_at" in given:
            changes["expires_at"] = _from_unix(self.expires_at)
        if "allowed_deployments" in given:
            changes["allowed_deployments"] = self.allowed_deployments
        if "tokens_per_minute" in given:
            changes["tokens_per_minute"] = self.tokens_per_minute
        if "requests_per_minute" in given:
            changes["requests_per_minute"] = self.requests_per_minute
        return changes


def _from_unix(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@router.post("")
async def create_key(
    project_id: str,
    request: Request,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    settings: SettingsDep,
) -> JSONResponse:
    # The body is read before a transaction starts, so a slow client never holds a connection;
    # its schema is checked after the permission check, so a reader learns nothing from a 400.
    data = await read_json_object(request, settings.max_body_bytes)
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        body = parse_as(CreateKeyBody, data)
        key, new = await admin.create_key(
            session,
            actor=principal.actor,
            project_id=project.id,
            name=body.name,
            role=body.role,
            expires_at=_from_unix(body.expires_at),
            allowed_deployments=body.allowed_deployments,
            tokens_per_minute=body.tokens_per_minute,
            requests_per_minute=body.requests_per_minute,
        )
        shown = {**key_dict(key), "secret": new.secret}  # the one and only time
    return created(shown, f"/admin/projects/{project.id}/keys/{key.id}")


@router.get("")
async def list_all(project_id: str, principal: CurrentPrincipal, db: DatabaseDep) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        keys = await list_keys(session, project_id=project.id)
    return listing(key_dict(key) for key in keys)


@router.get("/{key_id}")
async def get_one(
    project_id: str, key_id: str, principal: CurrentPrincipal, db: DatabaseDep
) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        key = await project_key(session, project_id=project.id, key_id=key_id)
    return JSONResponse(key_dict(key))


@router.patch("/{key_id}")
async def update_one(
    project_id: str,
    key_id: str,
    request: Request,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    settings: SettingsDep,
) -> JSONResponse:
    data = await read_json_object(request, settings.max_body_bytes)
    # managed_project lets only owners and the admin through: a member or reader key cannot
    # raise its own role or limits (403), not even on itself.
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        key = await project_key(session, project_id=project.id, key_id=key_id)
        body = parse_as(UpdateKeyBody, data)
        await admin.update_key(session, actor=principal.actor, key=key, **body.changes())
        shown = key_dict(key)
    return JSONResponse(shown)


@router.post("/{key_id}/revoke")
async def revoke_one(
    project_id: str, key_id: str, principal: CurrentPrincipal, db: DatabaseDep
) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        key = await project_key(session, project_id=project.id, key_id=key_id)
        await admin.revoke_key(session, actor=principal.actor, key=key)
        shown = key_dict(key)
    return JSONResponse(shown)
