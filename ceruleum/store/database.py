"""Engine and session setup: SQLite (WAL) in the data directory by default, Postgres by URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, Row, create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ceruleum.store.migrate import upgrade_to_head


def database_url(configured: str | None, data_dir: Path) -> str:
    """The async driver URL for a configured URL, or SQLite in the data directory."""
    if not configured:
        return f"sqlite+aiosqlite:///{data_dir / 'ceruleum.db'}"
    url = make_url(configured)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+asyncpg")
    elif url.drivername == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    return url.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; NORMAL sync is durable across process crashes in WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    def __init__(self, url: str) -> None:
        self.url: URL = make_url(url)
        if self.is_sqlite and self.url.database:
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(self.url, pool_pre_ping=not self.is_sqlite)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Hot-path reads on SQLite (a key by prefix, a deployment by name) go through the stdlib
        # driver on the calling thread: an indexed read in WAL mode takes microseconds and never
        # waits for a writer, while a hop through aiosqlite's thread costs far more under load.
        self._sync_reader: Engine | None = None
        if self.is_sqlite:
            self._sync_reader = create_engine(self.url.set(drivername="sqlite"))
            event.listen(self._sync_reader, "connect", _sqlite_pragmas)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        async with self.engine.begin() as connection:
            await connection.run_sync(upgrade_to_head)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    async def fetch_one(self, statement: Executable) -> Row[Any] | None:
        """One row of a read-only query, by the cheapest path for this database."""
        if self._sync_reader is not None:
            with self._sync_reader.connect() as connection:
                return connection.execute(statement).first()
        async with self.engine.connect() as connection:
            return (await connection.execute(statement)).first()

    async def fetch_all(self, statement: Executable) -> list[Row[Any]]:
        """Every row of a read-only query, by the same cheap path as ``fetch_one``."""
        if self._sync_reader is not None:
            with self._sync_reader.connect() as connection:
                return list(connection.execute(statement).all())
        async with self.engine.connect() as connection:
            return list((await connection.execute(statement)).all())

    async def close(self) -> None:
        if self._sync_reader is not None:
            self._sync_reader.dispose()
        await self.engine.dispose()
