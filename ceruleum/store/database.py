"""Engine and session setup: SQLite (WAL) in the data directory by default, Postgres by URL.

Also how a server learns that API keys changed, so that it may cache them (gateway/key_cache.py):
a transaction that changes keys calls ``announce_key_change``; when it commits, this process's
listeners run (``Database.on_key_change``), and on Postgres a NOTIFY reaches every other server
listening (``Database.listen``). On SQLite, ``Database.data_version`` tells any commit by another
connection, whatever process made it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, Row, create_engine, event, func, select
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from ceruleum.store.migrate import upgrade_to_head
from ceruleum.store.notifications import Listener

KEY_CHANGES_CHANNEL = "ceruleum_api_keys"  # Postgres NOTIFY channel of committed key changes
_KEYS_CHANGED = "ceruleum.keys_changed"  # session.info flag: this transaction changed keys


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


async def announce_key_change(session: AsyncSession) -> None:
    """Mark the session's transaction as one that changes API keys (a revocation, an update, a
    project's deletion). When it commits, this process's key listeners run, and on Postgres
    every server listening on ``KEY_CHANGES_CHANNEL`` is notified (NOTIFY is sent at commit)."""
    session.info[_KEYS_CHANGED] = True
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(KEY_CHANGES_CHANNEL, "")))


class Database:
    def __init__(self, url: str) -> None:
        self.url: URL = make_url(url)
        if self.is_sqlite and self.url.database:
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        # Postgres: room for a burst of concurrent reads (many requests finding a cached entry
        # expired at once) without opening and closing overflow connections every time.
        pool: dict[str, Any] = {} if self.is_sqlite else {"pool_size": 20}
        self.engine: AsyncEngine = create_async_engine(
            self.url, pool_pre_ping=not self.is_sqlite, **pool
        )
        # One-statement reads need no transaction: no BEGIN and ROLLBACK round trips around them.
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # A Session class of this database's own, so that its commit events are this database's.
        session_class = type("DatabaseSession", (Session,), {})
        event.listen(session_class, "after_commit", self._after_commit)
        event.listen(session_class, "after_rollback", self._after_rollback)
        self._sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=session_class
        )
        self._key_listeners: list[Callable[[], None]] = []
        self._listeners: list[Listener] = []
        self._version_connection: sqlite3.Connection | None = None
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
        async with self._reader.connect() as connection:
            return (await connection.execute(statement)).first()

    async def fetch_all(self, statement: Executable) -> list[Row[Any]]:
        """Every row of a read-only query, by the same cheap path as ``fetch_one``."""
        if self._sync_reader is not None:
            with self._sync_reader.connect() as connection:
                return list(connection.execute(statement).all())
        async with self._reader.connect() as connection:
            return list((await connection.execute(statement)).all())

    # --- noticing changes -------------------------------------------------------------------
    def on_key_change(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (on the event loop) after every commit of this process that
        announced a key change (``announce_key_change``)."""
        self._key_listeners.append(callback)

    def _after_commit(self, session: Session) -> None:
        # A savepoint's commit is not the end: only the outermost commit makes changes visible.
        if session.in_nested_transaction() or not session.info.pop(_KEYS_CHANGED, False):
            return
        for callback in self._key_listeners:
            callback()

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(_KEYS_CHANGED, None)

    def data_version(self) -> int:
        """SQLite only: a number that changes whenever another connection (of this process or
        any other) commits to the database file. Costs a few microseconds, no I/O: SQLite reads
        it from the WAL index in shared memory."""
        if not self.is_sqlite:
            raise RuntimeError("data_version is SQLite's")
        if self._version_connection is None:
            self._version_connection = sqlite3.connect(
                self.url.database or ":memory:", isolation_level=None, check_same_thread=False
            )
        row = self._version_connection.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    async def listen(
        self,
        channel: str,
        on_notify: Callable[[], None],
        on_state: Callable[[bool], None],
    ) -> Listener:
        """Postgres only: LISTEN on ``channel`` over a connection of its own, reconnecting when
        it is lost. ``on_state(True)`` runs once listening (again), ``on_state(False)`` when the
        connection is lost; notifications in between are lost. Closed with the database."""
        if self.url.get_backend_name() != "postgresql":
            raise RuntimeError("LISTEN is Postgres's")
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        listener = Listener(dsn, channel, on_notify=on_notify, on_state=on_state)
        self._listeners.append(listener)
        await listener.start()
        return listener

    async def close(self) -> None:
        for listener in self._listeners:
            await listener.close()
        self._listeners.clear()
        if self._version_connection is not None:
            self._version_connection.close()
            self._version_connection = None
        if self._sync_reader is not None:
            self._sync_reader.dispose()
        await self.engine.dispose()
