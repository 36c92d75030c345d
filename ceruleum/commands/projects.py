"""`ceruleum projects create|list|delete`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.commands.database import in_transaction
from ceruleum.gateway import admin
from ceruleum.store.api_keys import aware
from ceruleum.store.projects import list_projects
from ceruleum.store.tables import Project

app = typer.Typer(help="Projects: the tenants that own keys and deployments.")


@app.command("create")
def create(name: Annotated[str, typer.Argument(help="A unique project name.")]) -> None:
    """Create a project and print its id."""

    async def action(session: AsyncSession) -> Project:
        return await admin.create_project(session, actor=admin.CLI_ACTOR, name=name)

    project = in_transaction(action)
    typer.echo(f"created project {project.name} with id {project.id}")


@app.command("list")
def list_all() -> None:
    """One line per project: id, name, creation time (UTC)."""

    async def action(session: AsyncSession) -> list[Project]:
        return await list_projects(session)

    found = in_transaction(action)
    if not found:
        typer.echo("no projects", err=True)
    for project in found:
        typer.echo(f"{project.id}\t{project.name}\t{_iso(project.created_at)}")


@app.command("delete")
def delete(project_id: Annotated[str, typer.Argument(help="The project's id (proj_...).")]) -> None:
    """Delete a project with all its keys and deployments."""

    async def action(session: AsyncSession) -> Project:
        return await admin.delete_project(session, actor=admin.CLI_ACTOR, project_id=project_id)

    project = in_transaction(action)
    typer.echo(f"deleted project {project.name} ({project.id}) with its keys and deployments")


def _iso(moment: datetime) -> str:
    return aware(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
