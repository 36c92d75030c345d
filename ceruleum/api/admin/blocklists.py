"""/admin/projects/{project_id}/blocklists: a project's custom blocklists (terms and regular
expressions that a deployment's content filter blocks), managed by its owners and the admin.

A blocklist is addressed by its name, unique in the project; deployments attach it by that name
in their ``content_filter`` policy. Every change clears this process's compiled-blocklist cache.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictBool, StrictStr

from ceruleum.api.admin.common import STRICT, created, deleted, listing
from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.deps import DatabaseDep, SettingsDep
from ceruleum.gateway import admin_blocklists as actions
from ceruleum.gateway.access import managed_project
from ceruleum.gateway.auth import CurrentPrincipal
from ceruleum.store.blocklists import (
    NewItem,
    blocklist_dict,
    item_dict,
    list_blocklists,
    list_items,
)

router = APIRouter(prefix="/admin/projects/{project_id}/blocklists", tags=["admin"])


class ItemBody(BaseModel):
    model_config = STRICT

    pattern: StrictStr
    is_regex: StrictBool = False

    def new(self) -> NewItem:
        return NewItem(self.pattern, self.is_regex)


class CreateBlocklistBody(BaseModel):
    model_config = STRICT

    name: StrictStr
    description: StrictStr | None = None
    items: list[ItemBody] | None = None


class UpdateBlocklistBody(BaseModel):
    """The name is the blocklist's id and never changes."""

    model_config = STRICT

    description: StrictStr | None = None


class AddItemsBody(BaseModel):
    model_config = STRICT

    items: list[ItemBody]


def _forget(request: Request) -> None:
    request.app.state.blocklist_lookup.forget()


@router.get("")
async def list_all(project_id: str, principal: CurrentPrincipal, db: DatabaseDep) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        found = await list_blocklists(session, project_id=project.id)
    return listing(blocklist_dict(blocklist, count) for blocklist, count in found)


@router.post("")
async def create_one(
    project_id: str,
    request: Request,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    settings: SettingsDep,
) -> JSONResponse:
    # Read before the transaction; parsed after the permission check (as the keys routes do).
    data = await read_json_object(request, settings.max_body_bytes)
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        body = parse_as(CreateBlocklistBody, data)
        blocklist, items = await actions.create_blocklist(
            session,
            actor=principal.actor,
            project_id=project.id,
            name=body.name,
            description=body.description,
            items=[item.new() for item in body.items or ()],
        )
        shown = {
            **blocklist_dict(blocklist, len(items)),
            "items": [item_dict(item) for item in items],
        }
    _forget(request)
    return created(shown, f"/admin/projects/{project.id}/blocklists/{blocklist.name}")


@router.get("/{name}")
async def get_one(
    project_id: str, name: str, principal: CurrentPrincipal, db: DatabaseDep
) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        shown = await actions.show_blocklist(session, project_id=project.id, name=name)
    return JSONResponse(shown)


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
        body = parse_as(UpdateBlocklistBody, data)
        if "description" not in body.model_fields_set:
            shown = await actions.show_blocklist(session, project_id=project.id, name=name)
            del shown["items"]  # nothing to change: the same object a change would return
            return JSONResponse(shown)
        shown = await actions.update_blocklist(
            session,
            actor=principal.actor,
            project_id=project.id,
            name=name,
            description=body.description,
        )
    _forget(request)
    return JSONResponse(shown)


@router.delete("/{name}")
async def delete_one(
    project_id: str, name: str, request: Request, principal: CurrentPrincipal, db: DatabaseDep
) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        await actions.delete_blocklist(
            session, actor=principal.actor, project_id=project.id, name=name
        )
    _forget(request)
    return deleted(name, "blocklist")


@router.get("/{name}/items")
async def list_all_items(
    project_id: str, name: str, principal: CurrentPrincipal, db: DatabaseDep
) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        blocklist = await actions.require_blocklist(session, project_id=project.id, name=name)
        items = await list_items(session, blocklist_id=blocklist.id)
    return listing(item_dict(item) for item in items)


@router.post("/{name}/items")
async def add_items(
    project_id: str,
    name: str,
    request: Request,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Adds the items; the reply lists them with their new ids."""
    data = await read_json_object(request, settings.max_body_bytes)
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        body = parse_as(AddItemsBody, data)
        added = await actions.add_items(
            session,
            actor=principal.actor,
            project_id=project.id,
            name=name,
            items=[item.new() for item in body.items],
        )
        shown = {"object": "list", "data": [item_dict(item) for item in added]}
    _forget(request)
    return created(shown, f"/admin/projects/{project.id}/blocklists/{name}/items")


@router.delete("/{name}/items/{item_id}")
async def remove_item(
    project_id: str,
    name: str,
    item_id: str,
    request: Request,
    principal: CurrentPrincipal,
    db: DatabaseDep,
) -> JSONResponse:
    async with db.session() as session:
        project = await managed_project(session, principal=principal, project_id=project_id)
        await actions.remove_item(
            session, actor=principal.actor, project_id=project.id, name=name, item_id=item_id
        )
    _forget(request)
    return deleted(item_id, "blocklist_item")
