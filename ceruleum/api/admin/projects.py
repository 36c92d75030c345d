"""/admin/projects: the tenants. Only the platform admin creates or deletes them; a key sees
its own project and no other."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictStr

from ceruleum.api.admin.common import STRICT, created, deleted, listing
from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.deps import DatabaseDep, SettingsDep
from ceruleum.gateway import admin
from ceruleum.gateway.access import require_admin, visible_project
from ceruleum.gateway.auth import CurrentPrincipal
from ceruleum.store.projects import list_projects, project_dict

router = APIRouter(prefix="/admin/projects", tags=["admin"])


class CreateProjectBody(BaseModel):
    model_config = STRICT

    name: StrictStr


@router.post("")
async def create_project(
    request: Request, principal: CurrentPrincipal, db: DatabaseDep, settings: SettingsDep
) -> JSONResponse:
    data = await read_json_object(request, settings.max_body_bytes)
    require_admin(principal, "create projects")
    body = parse_as(CreateProjectBody, data)
    async with db.session() as session:
        project = await admin.create_project(session, actor=principal.actor, name=body.name)
    return created(project_dict(project), f"/admin/projects/{project.id}")


@router.get("")
async def list_all(principal: CurrentPrincipal, db: DatabaseDep) -> JSONResponse:
    only = None if principal.is_admin else principal.project_id
    async with db.session() as session:
        found = await list_projects(session, only=only)
    return listing(project_dict(project) for project in found)


@router.get("/{project_id}")
async def get_one(project_id: str, principal: CurrentPrincipal, db: DatabaseDep) -> JSONResponse:
    async with db.session() as session:
        project = await visible_project(session, principal=principal, project_id=project_id)
    return JSONResponse(project_dict(project))


@router.delete("/{project_id}")
async def delete_one(project_id: str, principal: CurrentPrincipal, db: DatabaseDep) -> JSONResponse:
    async with db.session() as session:
        # 404 before 403: another project's id must read exactly like one that does not exist.
        await visible_project(session, principal=principal, project_id=project_id)
        require_admin(principal, "delete projects")
        await admin.delete_project(session, actor=principal.actor, project_id=project_id)
    return deleted(project_id, "project")
