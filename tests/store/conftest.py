"""Databases for store tests: SQLite in a temp dir, and a fresh Postgres database per session."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from ceruleum.store import Database, database_url

POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _create_postgres_database() -> str | None:
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    name = "ceruleum_test_" + secrets.token_hex(4)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def _drop_postgres_database(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        db = Database(database_url(None, tmp_path))
        await db.migrate()
        yield db
        await db.close()
        return
    name = await _create_postgres_database()
    if name is None:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    db = Database(database_url(f"postgresql://postgres@127.0.0.1:5432/{name}", tmp_path))
    try:
        await db.migrate()
        yield db
    finally:
        await db.close()
        await _drop_postgres_database(name)
