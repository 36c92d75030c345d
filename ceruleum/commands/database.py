"""Running one CLI command against the control-plane database, and its errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.deployments import DeploymentError
from ceruleum.settings import InvalidSettingsError, Settings, load_settings
from ceruleum.store import Database, database_url
from ceruleum.store.errors import StoreError

T = TypeVar("T")


def in_transaction(action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Bring the schema up to date, then run ``action`` in one transaction (all or nothing).

    A known failure ends the command with one line on stderr and status 1.
    """
    settings = settings_or_fail()

    async def main() -> T:
        database = Database(database_url(settings.database_url, settings.data_dir))
        try:
            await database.migrate()
            async with database.session() as session:
                return await action(session)
        finally:
            await database.close()

    try:
        return asyncio.run(main())
    except (DeploymentError, StoreError, OSError) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        # The first line names the driver's error; the rest (the SQL, a link) is noise here.
        fail(f"database error: {str(exc).splitlines()[0]}")


def settings_or_fail() -> Settings:
    try:
        return load_settings()
    except InvalidSettingsError as exc:
        fail(str(exc))


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
