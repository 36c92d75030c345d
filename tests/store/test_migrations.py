"""Migration 0002 on SQLite and PostgreSQL: a database made by 0001, with data in it, upgrades
(every deployment keeping the default content-filter policy) and downgrades again."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Connection

from ceruleum.deployments.repository import get_deployment
from ceruleum.gateway import admin
from ceruleum.gateway import admin_blocklists as actions
from ceruleum.safety.policy import DEFAULT_POLICY
from ceruleum.store import Database, DeploymentRow, Project
from ceruleum.store.blocklists import NewItem
from ceruleum.store.migrate import alembic_config

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _to(revision: str, *, down: bool = False) -> object:
    def run(connection: Connection) -> None:
        config = alembic_config(connection)
        (command.downgrade if down else command.upgrade)(config, revision)

    return run


async def _schema(database: Database) -> tuple[str | None, set[str], set[str]]:
    """(version, tables, columns of deployments)."""

    def read(connection: Connection) -> tuple[str | None, set[str], set[str]]:
        inspector = inspect(connection)
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        columns = {column["name"] for column in inspector.get_columns("deployments")}
        return version, set(inspector.get_table_names()), columns

    async with database.engine.connect() as connection:
        return await connection.run_sync(read)


async def test_0002_upgrades_a_0001_database_with_data(blank_database: Database) -> None:
    database = blank_database
    async with database.engine.begin() as connection:
        await connection.run_sync(_to("0001"))
        await connection.execute(
            insert(Project.__table__).values(id="proj_a", name="alpha", created_at=NOW)
        )
        # Only 0001's columns: content_filter does not exist yet.
        await connection.execute(
            insert(DeploymentRow.__table__).values(
                id="dep_a",
                project_id="proj_a",
                name="chat",
                model="smollm2-135m-instruct",
                created_at=NOW,
                updated_at=NOW,
                defaults={"temperature": 0.3},
                tokens_per_minute=1000,
            )
        )
    version, tables, columns = await _schema(database)
    assert (version, "content_filter" in columns, "blocklists" in tables) == ("0001", False, False)

    await database.migrate()
    version, tables, columns = await _schema(database)
    assert version == "0002"
    assert {"blocklists", "blocklist_items"} <= tables and "content_filter" in columns
    async with database.session() as session:
        found = await get_deployment(session, project_id="proj_a", name="chat")
        assert found is not None
        assert found.content_filter is DEFAULT_POLICY
        assert (found.defaults.temperature, found.tokens_per_minute) == (0.3, 1000)
        await actions.create_blocklist(
            session, actor="cli", project_id="proj_a", name="words", items=[NewItem("x")]
        )
        await admin.update_deployment(
            session,
            actor="cli",
            project_id="proj_a",
            name="chat",
            content_filter=DEFAULT_POLICY,
        )

    async with database.engine.begin() as connection:
        await connection.run_sync(_to("0001", down=True))
    version, tables, columns = await _schema(database)
    assert version == "0001" and "content_filter" not in columns
    assert not {"blocklists", "blocklist_items"} & tables
    async with database.engine.connect() as connection:
        names = (await connection.execute(select(DeploymentRow.__table__.c.name))).scalars()
        assert list(names) == ["chat"]  # the downgrade keeps the deployments themselves
