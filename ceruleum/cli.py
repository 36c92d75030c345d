"""The ``ceruleum`` command line (typer)."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer

from ceruleum.commands import deployments, keys, projects
from ceruleum.engine.registry import builtin_names, resolve_chat_model, resolve_embedding_model
from ceruleum.settings import load_settings

app = typer.Typer(help="Ceruleum: an Azure OpenAI-style AI platform on your own machines.")
models_app = typer.Typer(help="Models this installation can serve.")
app.add_typer(models_app, name="models")
app.add_typer(projects.app, name="projects")
app.add_typer(keys.app, name="keys")
app.add_typer(deployments.app, name="deployments")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Built-in model name or path to a GGUF file; repeatable."),
    ] = None,
    embedding_model: Annotated[
        str | None, typer.Option(help="Embedding model name or directory; '' disables it.")
    ] = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Development mode: allows the well-known development admin key. Never on a "
            "network others reach.",
        ),
    ] = False,
) -> None:
    """Start the OpenAI-compatible server."""
    import uvicorn

    from ceruleum.gateway.auth import AdminKeyRefusedError
    from ceruleum.server import build_app

    settings = load_settings(
        host=host,
        port=port,
        models=model or None,
        embedding_model=embedding_model,
        dev_mode=True if dev else None,
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app_ = build_app(settings)
    except AdminKeyRefusedError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    uvicorn.run(
        app_,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )


@models_app.command("list")
def list_models() -> None:
    """List the built-in models and where their files are."""
    for name in builtin_names():
        try:
            spec = resolve_chat_model(name)
        except Exception:
            spec = resolve_embedding_model(name)
        present = "ok" if spec.path.exists() else "missing"
        typer.echo(f"{spec.id}\t{spec.kind}\t{present}\t{spec.path}")


@app.command("usage")
def usage(
    project: Annotated[
        str | None, typer.Option("--project", help="Only this project (its id).")
    ] = None,
    by: Annotated[
        str, typer.Option("--by", help="Group by day, project, key, deployment or model.")
    ] = "day",
    since: Annotated[
        str | None, typer.Option(help="From this time: a date, an ISO time or unix seconds.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Up to this time (exclusive); a date includes its day.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, as the API does.")] = False,
) -> None:
    """Usage totals read from the database (the server need not run)."""
    import asyncio

    from ceruleum.gateway.usage_report import format_table, read_usage
    from ceruleum.gateway.usage_window import parse_bound
    from ceruleum.store.usage import as_group_by

    try:
        group_by = as_group_by(by)
        start = parse_bound(since) if since else None
        end = parse_bound(until, upper=True) if until else None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    rows = asyncio.run(
        read_usage(load_settings(), group_by=group_by, project_id=project, since=start, until=end)
    )
    if as_json:
        typer.echo(json.dumps({"object": "list", "data": rows}, indent=2))
    elif rows:
        typer.echo(format_table(rows, group_by))
    else:
        typer.echo("no usage recorded in this period", err=True)
