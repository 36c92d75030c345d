"""GET /admin/usage: usage totals per project, key, deployment, model or day.

The admin sees every project; a project's key (any role) sees its own project only, and another
project's id does not exist for it (404).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ceruleum.api.errors import InvalidRequestError, NotFoundError
from ceruleum.gateway.auth import CurrentPrincipal
from ceruleum.gateway.usage_window import InvalidTimeError, parse_bound
from ceruleum.store import Database
from ceruleum.store.usage import GroupBy, as_group_by, summarize_usage

router = APIRouter(prefix="/admin/usage", tags=["admin"])


def _group_by(value: str) -> GroupBy:
    try:
        return as_group_by(value)
    except ValueError as exc:
        raise InvalidRequestError(str(exc), param="group_by", code="invalid_value") from None


def _bound(value: str | None, param: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_bound(value, upper=param == "until")
    except InvalidTimeError as exc:
        raise InvalidRequestError(str(exc), param=param, code="invalid_value") from None


@router.get("")
async def usage_summary(
    request: Request,
    principal: CurrentPrincipal,
    group_by: str = "day",
    project_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> JSONResponse:
    grouping = _group_by(group_by)
    start, end = _bound(since, "since"), _bound(until, "until")
    project = project_id or None
    if not principal.is_admin:
        if project is not None and not principal.sees_project(project):
            raise NotFoundError(
                f"The project '{project}' does not exist.", param="project_id", code="not_found"
            )
        project = principal.project_id
    database: Database = request.app.state.db
    async with database.session() as session:
        rows = await summarize_usage(
            session, group_by=grouping, project_id=project, since=start, until=end
        )
    return JSONResponse({"object": "list", "data": rows})
