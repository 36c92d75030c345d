"""The ``ceruleum`` command line (typer)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ceruleum.commands import blocklists, deployments, keys, projects, usage
from ceruleum.engine.registry import builtin_names, resolve_chat_model, resolve_embedding_model
from ceruleum.settings import InvalidSettingsError, load_settings

app = typer.Typer(help="Ceruleum: an Azure OpenAI-style AI platform on your own machines.")
models_app = typer.Typer(help="Models this installation can serve.")
app.add_typer(models_app, name="models")
app.add_typer(projects.app, name="projects")
app.add_typer(keys.app, name="keys")
app.add_typer(deployments.app, name="deployments")
app.add_typer(blocklists.app, name="blocklists")
app.command("usage")(usage.show)


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
    from ceruleum.safety.service import ContentFilterRefusedError, UnknownAnalyzerError
    from ceruleum.server import build_app

    try:
        settings = load_settings(
            host=host,
            port=port,
            models=model or None,
            embedding_model=embedding_model,
            dev_mode=True if dev else None,
        )
    except InvalidSettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app_ = build_app(settings)
    except (AdminKeyRefusedError, ContentFilterRefusedError, UnknownAnalyzerError) as exc:
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
