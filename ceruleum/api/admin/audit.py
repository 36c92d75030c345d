"""/admin/audit: the audit log, read-only and for the platform admin alone.

Only GET routes exist, so PUT, PATCH and DELETE answer 405: the API cannot change the log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from ceruleum.api.admin.common import listing
from ceruleum.api.deps import DatabaseDep
from ceruleum.api.errors import NotFoundError
from ceruleum.gateway.access import require_admin
from ceruleum.gateway.auth import CurrentPrincipal
from ceruleum.store.audit import (
    MAX_EVENT_ID,
    MAX_LIST_LIMIT,
    audit_dict,
    get_audit,
    list_audit,
)

router = APIRouter(prefix="/admin/audit", tags=["admin"])


@router.get("")
async def list_events(
    principal: CurrentPrincipal,
    db: DatabaseDep,
    project_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_EVENT_ID)] = None,
) -> JSONResponse:
    """Newest first; the next page is ``before_id=<last_id>`` while ``has_more`` is true."""
    require_admin(principal, "read the audit log")
    async with db.session() as session:
        # One more than asked tells whether another page exists.
        events = await list_audit(
            session, project_id=project_id, limit=limit + 1, before_id=before_id
        )
    page = [audit_dict(event) for event in events[:limit]]
    return listing(
        page,
        has_more=len(events) > limit,
        first_id=page[0]["id"] if page else None,
        last_id=page[-1]["id"] if page else None,
    )


@router.get("/{event_id}")
async def get_event(
    event_id: Annotated[int, Path(ge=1, le=MAX_EVENT_ID)],
    principal: CurrentPrincipal,
    db: DatabaseDep,
) -> JSONResponse:
    require_admin(principal, "read the audit log")
    async with db.session() as session:
        event = await get_audit(session, event_id=event_id)
    if event is None:
        raise NotFoundError(f"The audit event {event_id} does not exist.", code="not_found")
    return JSONResponse(audit_dict(event))
