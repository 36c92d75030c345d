"""Projects: the tenants."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.store.tables import Project

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ProjectNameError(ValueError):
    pass


def new_project_id() -> str:
    return "proj_" + secrets.token_hex(12)


async def create_project(session: AsyncSession, *, name: str) -> Project:
    if not _NAME.match(name):
        raise ProjectNameError(
            "A project name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit."
        )
    project = Project(id=new_project_id(), name=name, created_at=datetime.now(UTC))
    session.add(project)
    await session.flush()
    return project


async def get_project(session: AsyncSession, *, project_id: str) -> Project | None:
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
        "created_at": int(project.created_at.timestamp()),
    }
