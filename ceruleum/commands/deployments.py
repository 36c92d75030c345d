"""`ceruleum deployments create|list|show|delete --project ID`: a project's deployments.

The server need not run; a running one sees a change on its next request (same database).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.commands.database import in_transaction
from ceruleum.deployments import (
    Deployment,
    DeploymentNotFoundError,
    SamplingDefaults,
    check_name_free,
    offline_model_id,
    validate_name,
)
from ceruleum.deployments.repository import get_deployment, list_deployments
from ceruleum.engine.registry import builtin_names
from ceruleum.gateway import admin
from ceruleum.settings import load_settings

app = typer.Typer(help="Deployments: named bindings of a model with its settings, per project.")

Project = Annotated[str, typer.Option("--project", help="The project's id (proj_...).")]
Name = Annotated[str, typer.Argument(help="The name clients call, as 'model' or in the path.")]


@app.command("create")
def create(
    name: Name,
    project: Project,
    model: Annotated[
        str, typer.Option("--model", help="Built-in model name or path to a .gguf file.")
    ],
    temperature: Annotated[
        float | None, typer.Option(help="Temperature when a request gives none.")
    ] = None,
    top_p: Annotated[float | None, typer.Option(help="top_p when a request gives none.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="max_tokens when a request gives none.")
    ] = None,
    max_tokens_limit: Annotated[
        int | None, typer.Option(help="Refuse requests asking for more output tokens.")
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option("--tpm", help="Tokens per minute (default: the server's default quota)."),
    ] = None,
    rpm: Annotated[
        int | None,
        typer.Option("--rpm", help="Requests per minute (default: 6 per 1,000 tokens per minute)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Bind any model id, unchecked (the server may differ).")
    ] = False,
) -> None:
    """Create a deployment in a project."""
    default_tpm = load_settings().default_tokens_per_minute

    async def action(session: AsyncSession) -> Deployment:
        validate_name(name)
        model_id = offline_model_id(model, force=force)
        check_name_free(name, {*builtin_names(), model_id})
        deployment = Deployment.new(
            name,
            model_id,
            project_id=project,
            defaults=SamplingDefaults(temperature, top_p, max_tokens),
            max_tokens_limit=max_tokens_limit,
            tokens_per_minute=default_tpm if tpm is None else tpm,
            requests_per_minute=rpm,
        )
        return await admin.create_deployment(session, actor=admin.CLI_ACTOR, deployment=deployment)

    created = in_transaction(action)
    typer.echo(f"created deployment {created.name} -> {created.model} in project {project}")


@app.command("list")
def list_all(project: Project) -> None:
    """One line per deployment: name, model, and the settings that are set."""

    async def action(session: AsyncSession) -> list[Deployment]:
        await admin.require_project(session, project_id=project)
        return await list_deployments(session, project_id=project)

    deployments = in_transaction(action)
    if not deployments:
        typer.echo("no deployments", err=True)
    for deployment in deployments:
        fields = {
            **deployment.defaults.to_dict(),
            "max_tokens_limit": deployment.max_tokens_limit,
            "tpm": deployment.tokens_per_minute,
            "rpm": deployment.requests_per_minute,
        }
        settings = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
        typer.echo(f"{deployment.name}\t{deployment.model}\t{settings or '-'}")


@app.command("show")
def show(name: Name, project: Project) -> None:
    """Print a deployment as the REST API returns it (JSON)."""

    async def action(session: AsyncSession) -> Deployment:
        await admin.require_project(session, project_id=project)
        found = await get_deployment(session, project_id=project, name=name)
        if found is None:
            raise DeploymentNotFoundError(name)
        return found

    typer.echo(json.dumps(in_transaction(action).to_dict(), indent=2))


@app.command("delete")
def delete(name: Name, project: Project) -> None:
    """Delete a deployment."""

    async def action(session: AsyncSession) -> Deployment:
        await admin.require_project(session, project_id=project)
        return await admin.delete_deployment(
            session, actor=admin.CLI_ACTOR, project_id=project, name=name
        )

    in_transaction(action)
    typer.echo(f"deleted deployment {name}")
