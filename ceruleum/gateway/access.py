"""May this principal see or manage a project? Lookups that answer 404 and 403 the right way.

Another project's objects do not exist for a key: they raise the very same not-found error as
an id that exists nowhere, and the existence check comes before the role check, so a key
cannot probe for other projects' ids through 403s.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.gateway.errors import PermissionDeniedError
from ceruleum.gateway.principal import Principal
from ceruleum.store.api_keys import get_key
from ceruleum.store.errors import ApiKeyNotFoundError, ProjectNotFoundError
from ceruleum.store.projects import get_project
from ceruleum.store.tables import ApiKey, Project


async def visible_project(
    session: AsyncSession, *, principal: Principal, project_id: str
) -> Project:
    """The project if it exists and the principal may see it; else ProjectNotFoundError."""
    project = None
    if principal.sees_project(project_id):
        project = await get_project(session, project_id=project_id)
    if project is None:
        raise ProjectNotFoundError(project_id)
    return project


async def managed_project(
    session: AsyncSession, *, principal: Principal, project_id: str
) -> Project:
    """The project if the principal may manage its keys and deployments: 404, then 403."""
    project = await visible_project(session, principal=principal, project_id=project_id)
    if not principal.can_manage(project.id):
        raise PermissionDeniedError(
            f"A key with the role '{principal.role}' cannot manage this project's keys or "
            "deployments; an owner key or the platform admin can."
        )
    return project


def require_admin(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise PermissionDeniedError(f"Only the platform admin can {action}.")


async def project_key(session: AsyncSession, *, project_id: str, key_id: str) -> ApiKey:
    """The key if it belongs to this project; another project's key reads as missing."""
    key = await get_key(session, key_id=key_id)
    if key is None or key.project_id != project_id:
        raise ApiKeyNotFoundError(key_id)
    return key
