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
async def blank_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database of each kind, not migrated yet."""
    if request.param == "sqlite":
        db = Database(database_url(None, tmp_path))
        yield db
        await db.close()
        return
    name = await _create_postgres_database()
    if name is None:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    db = Database(database_url(f"postgresql://postgres@127.0.0.1:5432/{name}", tmp_path))
    try:
        yield db
    finally:
        await db.close()
        await _drop_postgres_database(name)


@pytest.fixture
async def database(blank_database: Database) -> Database:
    """A migrated, empty database of each kind."""
    await blank_database.migrate()
    return blank_database
