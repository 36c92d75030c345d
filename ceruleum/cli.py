"""The ``ceruleum`` command line (typer)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from ceruleum.deployments import (
    Deployment,
    DeploymentError,
    DeploymentStore,
    SamplingDefaults,
    check_name_free,
    offline_model_id,
    validate_name,
)
from ceruleum.engine.registry import builtin_names, resolve_chat_model, resolve_embedding_model
from ceruleum.settings import load_settings

app = typer.Typer(help="Ceruleum: an Azure OpenAI-style AI platform on your own machines.")
models_app = typer.Typer(help="Models this installation can serve.")
app.add_typer(models_app, name="models")
deployments_app = typer.Typer(help="Deployments: named bindings of a model with its settings.")
app.add_typer(deployments_app, name="deployments")


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
) -> None:
    """Start the OpenAI-compatible server."""
    import uvicorn

    from ceruleum.server import build_app

    settings = load_settings(
        host=host, port=port, models=model or None, embedding_model=embedding_model
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        build_app(settings),
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


def _deployment_store() -> DeploymentStore:
    return DeploymentStore.in_data_dir(load_settings().data_dir)


@contextmanager
def _exit_on_error() -> Iterator[None]:
    """A deployment or file error ends the command with its message and status 1."""
    try:
        yield
    except (DeploymentError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@deployments_app.command("create")
def create_deployment(
    name: Annotated[str, typer.Argument(help="The name clients call, as 'model' or in the path.")],
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
    force: Annotated[
        bool, typer.Option("--force", help="Bind any model id, unchecked (the server may differ).")
    ] = False,
) -> None:
    """Create a deployment. The server need not run; a running one sees it at once."""
    with _exit_on_error():
        validate_name(name)
        model_id = offline_model_id(model, force=force)
        check_name_free(name, {*builtin_names(), model_id})
        deployment = Deployment.new(
            name,
            model_id,
            defaults=SamplingDefaults(temperature, top_p, max_tokens),
            max_tokens_limit=max_tokens_limit,
        )
        created = _deployment_store().create(deployment)
    typer.echo(f"created deployment {created.name} -> {created.model}")


@deployments_app.command("list")
def list_deployments() -> None:
    """One line per deployment: name, model, and the settings that are set."""
    with _exit_on_error():
        deployments = _deployment_store().list()
    if not deployments:
        typer.echo("no deployments", err=True)
    for deployment in deployments:
        fields = {**deployment.defaults.to_dict(), "max_tokens_limit": deployment.max_tokens_limit}
        settings = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
        typer.echo(f"{deployment.name}\t{deployment.model}\t{settings or '-'}")


@deployments_app.command("show")
def show_deployment(name: str) -> None:
    """Print a deployment as the REST API returns it (JSON)."""
    with _exit_on_error():
        deployment = _deployment_store().get(name)
    typer.echo(json.dumps(deployment.to_dict(), indent=2))


@deployments_app.command("delete")
def delete_deployment(name: str) -> None:
    """Delete a deployment."""
    with _exit_on_error():
        _deployment_store().delete(name)
    typer.echo(f"deleted deployment {name}")
