"""`ceruleum deployments create|list|show|update|delete --project ID`: a project's deployments.

The server need not run; a running one sees a change on its next request (same database).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.commands.database import in_transaction, settings_or_fail
from ceruleum.deployments import (
    Deployment,
    DeploymentChanges,
    DeploymentNotFoundError,
    InvalidDeploymentError,
    SamplingDefaults,
    check_name_free,
    offline_model_id,
    parse_policy,
    validate_name,
)
from ceruleum.deployments.repository import get_deployment, list_deployments
from ceruleum.engine.registry import builtin_names
from ceruleum.gateway import admin

app = typer.Typer(help="Deployments: named bindings of a model with its settings, per project.")

Project = Annotated[str, typer.Option("--project", help="The project's id (proj_...).")]
Name = Annotated[str, typer.Argument(help="The name clients call, as 'model' or in the path.")]
ContentFilter = Annotated[
    str | None,
    typer.Option(
        "--content-filter",
        help="The content-filter policy as JSON, as the REST API takes it, e.g. "
        '\'{"prompt": {"hate": "low", "blocklists": ["competitors"]}}\'; omitted fields take '
        "the defaults, 'null' is the default policy.",
    ),
]


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
    content_filter: ContentFilter = None,
) -> None:
    """Create a deployment in a project."""
    default_tpm = settings_or_fail().default_tokens_per_minute

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
            content_filter=parse_policy(_json_option(content_filter)),
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


@app.command("update")
def update(
    name: Name,
    project: Project,
    content_filter: ContentFilter = None,
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
    tpm: Annotated[int | None, typer.Option("--tpm", help="Tokens per minute.")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")] = None,
) -> None:
    """Change a deployment: only the options given change (--content-filter replaces the whole
    policy)."""

    async def action(session: AsyncSession) -> Deployment:
        await admin.require_project(session, project_id=project)
        current = await get_deployment(session, project_id=project, name=name)
        if current is None:
            raise DeploymentNotFoundError(name)
        changes: DeploymentChanges = {}
        if content_filter is not None:
            changes["content_filter"] = parse_policy(_json_option(content_filter))
        if (temperature, top_p, max_tokens) != (None, None, None):
            now = current.defaults
            changes["defaults"] = SamplingDefaults(
                now.temperature if temperature is None else temperature,
                now.top_p if top_p is None else top_p,
                now.max_tokens if max_tokens is None else max_tokens,
            )
        if max_tokens_limit is not None:
            changes["max_tokens_limit"] = max_tokens_limit
        if tpm is not None:
            changes["tokens_per_minute"] = tpm
        if rpm is not None:
            changes["requests_per_minute"] = rpm
        return await admin.update_deployment(
            session, actor=admin.CLI_ACTOR, project_id=project, name=name, **changes
        )

    in_transaction(action)
    typer.echo(f"updated deployment {name}")


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


def _json_option(value: str | None) -> Any:
    """The --content-filter option's JSON (None when the option is not given)."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidDeploymentError(
            f"--content-filter is not valid JSON: {exc.msg} (column {exc.colno}).",
            param="content_filter",
        ) from None
