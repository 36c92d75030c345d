"""Projects: the tenants."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.store.api_keys import aware
from ceruleum.store.errors import ProjectExistsError, ProjectNameError
from ceruleum.store.tables import Project

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# What an id can look like; anything else (a NUL byte, 10 kB) is not looked up at all.
_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


def new_project_id() -> str:
    return "proj_" + secrets.token_hex(12)


async def create_project(session: AsyncSession, *, name: str) -> Project:
    """Raises ProjectNameError for a bad name, ProjectExistsError for a taken one."""
    # fullmatch, not match with "$", which would also accept a trailing newline.
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProjectNameError()
    if await _find_by_name(session, name=name) is not None:
        raise ProjectExistsError(name)
    project = Project(id=new_project_id(), name=name, created_at=datetime.now(UTC))
    try:
        # A savepoint, so that losing a race to the same name leaves the transaction usable.
        async with session.begin_nested():
            session.add(project)
            await session.flush()
    except IntegrityError:
        raise ProjectExistsError(name) from None
    return project


async def _find_by_name(session: AsyncSession, *, name: str) -> Project | None:
    query = select(Project).where(Project.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def get_project(session: AsyncSession, *, project_id: str) -> Project | None:
    if not _PLAUSIBLE_ID.fullmatch(project_id):
        return None
    return await session.get(Project, project_id)


async def list_projects(session: AsyncSession, *, only: str | None = None) -> list[Project]:
    query = select(Project).order_by(Project.created_at)
    if only is not None:
        query = query.where(Project.id == only)
    return list((await session.execute(query)).scalars())


async def delete_project(session: AsyncSession, *, project: Project) -> None:
    await session.delete(project)
    await session.flush()


def project_dict(project: Project) -> dict[str, object]:
    return {
        "id": project.id,
        "object": "project",
        "name": project.name,
        # aware(): SQLite hands back naive UTC, which timestamp() would read as local time.
        "created_at": int(aware(project.created_at).timestamp()),
    }
