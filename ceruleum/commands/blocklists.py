"""`ceruleum blocklists create|list|show|update|delete|add-item|remove-item --project ID`.

A project's custom blocklists; a deployment attaches one by name in its content filter
(`ceruleum deployments update NAME --content-filter '{"prompt": {"blocklists": ["x"]}}'`).
A running server sees a change within a second (same database).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.commands.database import in_transaction
from ceruleum.gateway import admin
from ceruleum.gateway import admin_blocklists as actions
from ceruleum.store.blocklists import NewItem, list_blocklists
from ceruleum.store.tables import BlocklistItemRow, BlocklistRow

app = typer.Typer(help="Custom blocklists: terms and regular expressions a content filter blocks.")

Project = Annotated[str, typer.Option("--project", help="The project's id (proj_...).")]
Name = Annotated[str, typer.Argument(help="The blocklist's name, unique in its project.")]
Description = Annotated[
    str | None, typer.Option("--description", help="What the list is for (512 characters).")
]


@app.command("create")
def create(name: Name, project: Project, description: Description = None) -> None:
    """Create an empty blocklist; add items with add-item."""

    async def action(session: AsyncSession) -> BlocklistRow:
        blocklist, _ = await actions.create_blocklist(
            session, actor=admin.CLI_ACTOR, project_id=project, name=name, description=description
        )
        return blocklist

    created = in_transaction(action)
    typer.echo(f"created blocklist {created.name} ({created.id}) in project {project}")


@app.command("list")
def list_all(project: Project) -> None:
    """One line per blocklist: name, number of items, description."""

    async def action(session: AsyncSession) -> list[tuple[BlocklistRow, int]]:
        await admin.require_project(session, project_id=project)
        return await list_blocklists(session, project_id=project)

    found = in_transaction(action)
    if not found:
        typer.echo("no blocklists", err=True)
    for blocklist, count in found:
        typer.echo(f"{blocklist.name}\t{count} items\t{blocklist.description or '-'}")


@app.command("show")
def show(name: Name, project: Project) -> None:
    """Print a blocklist with its items as the REST API returns it (JSON)."""

    async def action(session: AsyncSession) -> dict[str, Any]:
        await admin.require_project(session, project_id=project)
        return await actions.show_blocklist(session, project_id=project, name=name)

    typer.echo(json.dumps(in_transaction(action), indent=2))


@app.command("update")
def update(name: Name, project: Project, description: Description = None) -> None:
    """Set a blocklist's description (without --description: clear it)."""

    async def action(session: AsyncSession) -> dict[str, Any]:
        await admin.require_project(session, project_id=project)
        return await actions.update_blocklist(
            session, actor=admin.CLI_ACTOR, project_id=project, name=name, description=description
        )

    in_transaction(action)
    typer.echo(f"updated blocklist {name}")


@app.command("delete")
def delete(name: Name, project: Project) -> None:
    """Delete a blocklist with its items (refused while a deployment attaches it)."""

    async def action(session: AsyncSession) -> dict[str, Any]:
        await admin.require_project(session, project_id=project)
        return await actions.delete_blocklist(
            session, actor=admin.CLI_ACTOR, project_id=project, name=name
        )

    in_transaction(action)
    typer.echo(f"deleted blocklist {name}")


@app.command("add-item")
def add_item(
    name: Name,
    pattern: Annotated[str, typer.Argument(help="A term, or a regular expression with --regex.")],
    project: Project,
    regex: Annotated[
        bool, typer.Option("--regex", help="A regular expression rather than a term.")
    ] = False,
) -> None:
    """Add a term (a whole word or phrase, any case) or a regular expression; print its id."""

    async def action(session: AsyncSession) -> list[BlocklistItemRow]:
        await admin.require_project(session, project_id=project)
        return await actions.add_items(
            session,
            actor=admin.CLI_ACTOR,
            project_id=project,
            name=name,
            items=[NewItem(pattern, is_regex=regex)],
        )

    [item] = in_transaction(action)
    typer.echo(f"added item {item.id} to blocklist {name}")


@app.command("remove-item")
def remove_item(
    name: Name,
    item_id: Annotated[str, typer.Argument(help="The item's id (bli_...).")],
    project: Project,
) -> None:
    """Remove one item from a blocklist."""

    async def action(session: AsyncSession) -> BlocklistItemRow:
        await admin.require_project(session, project_id=project)
        return await actions.remove_item(
            session, actor=admin.CLI_ACTOR, project_id=project, name=name, item_id=item_id
        )

    in_transaction(action)
    typer.echo(f"removed item {item_id} from blocklist {name}")
