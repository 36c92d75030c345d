"""`ceruleum keys create|list|revoke`. The secret of a new key is printed once, on stdout alone,
so that `KEY=$(ceruleum keys create ...)` captures exactly it; everything else goes to stderr."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.commands.database import fail, in_transaction
from ceruleum.gateway import admin
from ceruleum.gateway.keys import NewKey
from ceruleum.store.api_keys import aware, get_key, list_keys
from ceruleum.store.errors import ApiKeyNotFoundError
from ceruleum.store.tables import ApiKey

app = typer.Typer(help="API keys of projects: created with a secret shown once, revoked in place.")

MAX_DAYS = 36_500


@app.command("create")
def create(
    project: Annotated[str, typer.Option("--project", help="The project's id (proj_...).")],
    name: Annotated[str, typer.Option("--name", help="A name to recognise the key by.")],
    role: Annotated[str, typer.Option("--role", help="owner, member or reader.")],
    expires_in_days: Annotated[
        int | None, typer.Option("--expires-in-days", help="Expire the key after this many days.")
    ] = None,
    allow_deployment: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-deployment", help="Only this deployment (repeatable); default: all of them."
        ),
    ] = None,
    tpm: Annotated[
        int | None, typer.Option("--tpm", help="Tokens per minute for this key.")
    ] = None,
    rpm: Annotated[
        int | None, typer.Option("--rpm", help="Requests per minute for this key.")
    ] = None,
) -> None:
    """Create a key and print its secret, once: it is stored only as a hash."""
    expires_at = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_DAYS:
            fail(f"--expires-in-days must be from 1 to {MAX_DAYS}.")
        expires_at = datetime.now(UTC) + timedelta(days=expires_in_days)

    async def action(session: AsyncSession) -> tuple[ApiKey, NewKey]:
        return await admin.create_key(
            session,
            actor=admin.CLI_ACTOR,
            project_id=project,
            name=name,
            role=role,
            expires_at=expires_at,
            allowed_deployments=allow_deployment or None,
            tokens_per_minute=tpm,
            requests_per_minute=rpm,
        )

    key, new = in_transaction(action)
    typer.echo(
        f"created key {key.id} ({key.name}, role {key.role}) in project {key.project_id}.\n"
        "Its secret follows. It is shown only this once and cannot be shown again: "
        "store it now.",
        err=True,
    )
    typer.echo(new.secret)


@app.command("list")
def list_all(
    project: Annotated[str, typer.Option("--project", help="The project's id (proj_...).")],
) -> None:
    """One line per key: id, name, role, prefix, status, expiry (never the secret)."""

    async def action(session: AsyncSession) -> list[ApiKey]:
        await admin.require_project(session, project_id=project)
        return await list_keys(session, project_id=project)

    keys = in_transaction(action)
    if not keys:
        typer.echo("no keys", err=True)
    now = datetime.now(UTC)
    for key in keys:
        expires = aware(key.expires_at)
        typer.echo(
            "\t".join(
                (
                    key.id,
                    key.name,
                    key.role,
                    key.prefix,
                    _status(key, now),
                    "expires " + _iso(expires) if expires is not None else "no expiry",
                )
            )
        )


@app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke a key: its next request fails. Revoking a revoked key changes nothing."""

    async def action(session: AsyncSession) -> tuple[ApiKey, bool]:
        key = await get_key(session, key_id=key_id)
        if key is None:
            raise ApiKeyNotFoundError(key_id)
        already = key.revoked_at is not None
        await admin.revoke_key(session, actor=admin.CLI_ACTOR, key=key)
        return key, already

    key, already = in_transaction(action)
    revoked_at = aware(key.revoked_at)
    when = _iso(revoked_at) if revoked_at is not None else "?"
    if already:
        typer.echo(f"key {key.id} was already revoked at {when}")
    else:
        typer.echo(f"revoked key {key.id} ({key.name}) of project {key.project_id}")


def _status(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    expires = aware(key.expires_at)
    return "expired" if expires is not None and expires <= now else "active"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
