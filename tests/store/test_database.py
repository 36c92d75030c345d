"""The store on SQLite and on a real PostgreSQL: migrations, constraints, WAL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from ceruleum.store import ApiKey, AuditEvent, Database, DeploymentRow, Project, database_url


def _now() -> datetime:
    return datetime.now(UTC)


def _project(pid: str, name: str) -> Project:
    return Project(id=pid, name=name, created_at=_now())


def _key(kid: str, project_id: str, prefix: str) -> ApiKey:
    return ApiKey(
        id=kid,
        project_id=project_id,
        name="ci",
        role="member",
        prefix=prefix,
        secret_hash="0" * 64,
        created_at=_now(),
        allowed_deployments=["chat"],
    )


async def test_migration_creates_every_table(database: Database) -> None:
    async with database.engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        version = (
            await connection.execute(text("SELECT version_num FROM alembic_version"))
        ).scalar()
    assert {
        "projects",
        "api_keys",
        "deployments",
        "usage_records",
        "audit_events",
        "blocklists",
        "blocklist_items",
    } <= names
    assert version == "0002"


async def test_migrating_twice_is_a_no_op(database: Database) -> None:
    await database.migrate()
    async with database.session() as session:
        assert (await session.execute(select(func.count()).select_from(Project))).scalar() == 0


async def test_rows_round_trip_with_json_and_timestamps(database: Database) -> None:
    async with database.session() as session:
        session.add(_project("proj_a", "alpha"))
        await session.flush()
        session.add(_key("key_a", "proj_a", "cer_abc"))
        session.add(
            DeploymentRow(
                id="dep_a",
                project_id="proj_a",
                name="chat",
                model="smollm2-135m-instruct",
                created_at=_now(),
                updated_at=_now(),
                defaults={"temperature": 0.2},
                tokens_per_minute=1000,
            )
        )
    async with database.session() as session:
        key = (await session.execute(select(ApiKey).where(ApiKey.prefix == "cer_abc"))).scalar_one()
        deployment = (await session.execute(select(DeploymentRow))).scalar_one()
    assert key.allowed_deployments == ["chat"]
    assert key.created_at.tzinfo is not None or database.is_sqlite
    assert deployment.defaults == {"temperature": 0.2}


async def test_unique_constraints_hold(database: Database) -> None:
    async with database.session() as session:
        session.add(_project("proj_a", "alpha"))
        await session.flush()
        session.add(_key("key_a", "proj_a", "cer_same"))
    with pytest.raises(IntegrityError):
        async with database.session() as session:
            session.add(_key("key_b", "proj_a", "cer_same"))
    with pytest.raises(IntegrityError):
        async with database.session() as session:
            session.add(_project("proj_b", "alpha"))


async def test_a_key_must_belong_to_an_existing_project(database: Database) -> None:
    with pytest.raises(IntegrityError):
        async with database.session() as session:
            session.add(_key("key_x", "proj_missing", "cer_x"))


async def test_deployment_names_are_unique_per_project_only(database: Database) -> None:
    def deployment(did: str, project_id: str) -> DeploymentRow:
        return DeploymentRow(
            id=did,
            project_id=project_id,
            name="chat",
            model="m",
            created_at=_now(),
            updated_at=_now(),
            defaults={},
        )

    async with database.session() as session:
        session.add_all([_project("proj_a", "alpha"), _project("proj_b", "beta")])
        await session.flush()
        session.add_all([deployment("dep_a", "proj_a"), deployment("dep_b", "proj_b")])
    with pytest.raises(IntegrityError):
        async with database.session() as session:
            session.add(deployment("dep_c", "proj_a"))


async def test_failed_transaction_leaves_nothing_behind(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.session() as session:
            session.add(
                AuditEvent(
                    at=_now(),
                    actor="admin",
                    action="project.create",
                    target_type="project",
                    target_id="proj_a",
                )
            )
            await session.flush()
            raise RuntimeError("boom")
    async with database.session() as session:
        assert (await session.execute(select(func.count()).select_from(AuditEvent))).scalar() == 0


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = Database(database_url(None, tmp_path))
    await db.migrate()
    async with db.engine.connect() as connection:
        mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
    await db.close()
    assert mode == "wal"
    assert (tmp_path / "ceruleum.db").exists()


def test_database_url_picks_async_drivers(tmp_path: Path) -> None:
    assert database_url(None, tmp_path) == f"sqlite+aiosqlite:///{tmp_path / 'ceruleum.db'}"
    assert (
        database_url("postgresql://u:p@h:5432/d", tmp_path) == "postgresql+asyncpg://u:p@h:5432/d"
    )
    assert database_url("sqlite:////x/y.db", tmp_path) == "sqlite+aiosqlite:////x/y.db"
