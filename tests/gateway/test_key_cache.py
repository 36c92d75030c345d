"""The key cache: no database read for a known key, yet every key change is seen by the next
request, whether it was made by this process, by another connection (the CLI, another server),
or behind the gateway's back; and expiry is still checked on every request.

Each test runs on SQLite and on Postgres (skipped when Postgres is not reachable).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ceruleum.gateway import admin
from ceruleum.gateway.auth import Authenticator
from ceruleum.gateway.errors import AuthenticationError
from ceruleum.gateway.key_cache import CachedKey, KeyCache
from ceruleum.gateway.principal import Principal
from ceruleum.store import Database, api_keys, database_url
from ceruleum.store.database import announce_key_change
from tests.store.conftest import _create_postgres_database, _drop_postgres_database

ADMIN_KEY = "test-admin-key-for-the-key-cache"


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        database = Database(database_url(None, tmp_path))
        name = None
    else:
        name = await _create_postgres_database()
        if name is None:
            pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
        database = Database(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
    try:
        await database.migrate()
        yield database
    finally:
        await database.close()
        if name is not None:
            await _drop_postgres_database(name)


@dataclass
class Key:
    project_id: str
    key_id: str
    secret: str


class ReadCounter:
    """Counts the database reads authentication makes."""

    def __init__(self, database: Database) -> None:
        self.reads = 0
        self._fetch_one = database.fetch_one

    async def __call__(self, statement: Any) -> Any:
        self.reads += 1
        return await self._fetch_one(statement)


@pytest.fixture
async def auth(db: Database) -> AsyncIterator[Authenticator]:
    authenticator = Authenticator(db, ADMIN_KEY, cache_max_age_s=60)
    await authenticator.start()
    yield authenticator


@pytest.fixture
def reads(db: Database, monkeypatch: pytest.MonkeyPatch) -> ReadCounter:
    counter = ReadCounter(db)
    monkeypatch.setattr(db, "fetch_one", counter)
    return counter


async def new_key(database: Database, *, role: str = "member", **extra: Any) -> Key:
    async with database.session() as session:
        project = await admin.create_project(session, actor="test", name="p" + str(time.time_ns()))
        key, new = await admin.create_key(
            session, actor="test", project_id=project.id, name="k", role=role, **extra
        )
    return Key(project.id, key.id, new.secret)


async def rejected(auth: Authenticator, secret: str) -> bool:
    try:
        await auth.principal_for(secret)
    except AuthenticationError:
        return True
    return False


def another_process(database: Database) -> Database:
    """A second Database on the same store: what the CLI or another server holds."""
    return Database(database.url.render_as_string(hide_password=False))


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# --- the hot path -----------------------------------------------------------------------------


async def test_a_known_key_costs_no_database_read(
    db: Database,
    auth: Authenticator,
    reads: ReadCounter,
) -> None:
    key = await new_key(db)
    first = await auth.principal_for(key.secret)
    assert (first.key_id, first.project_id, first.role) == (key.key_id, key.project_id, "member")
    assert reads.reads == 1
    for _ in range(5):
        assert await auth.principal_for(key.secret) == first
    assert reads.reads == 1


async def test_unknown_keys_and_the_admin_key_are_not_cached(
    db: Database,
    auth: Authenticator,
    reads: ReadCounter,
) -> None:
    key = await new_key(db)
    wrong = key.secret[:-1] + ("A" if key.secret[-1] != "A" else "B")  # same prefix, wrong secret
    for _ in range(2):
        assert await rejected(auth, wrong)
    assert reads.reads == 2
    assert (await auth.principal_for(ADMIN_KEY)).is_admin
    assert reads.reads == 2  # the admin key is compared, never read
    assert auth.cache is not None and len(auth.cache) == 0


async def test_without_a_cache_every_request_reads(
    db: Database,
    reads: ReadCounter,
) -> None:
    key = await new_key(db)
    uncached = Authenticator(db, ADMIN_KEY, cache_max_age_s=0)
    await uncached.start()
    for _ in range(3):
        await uncached.principal_for(key.secret)
    assert uncached.cache is None and reads.reads == 3


async def test_expiry_is_checked_on_every_request_without_a_read(
    db: Database,
    auth: Authenticator,
    reads: ReadCounter,
) -> None:
    key = await new_key(db, expires_at=datetime.now(UTC) + timedelta(seconds=1.5))
    assert (await auth.principal_for(key.secret)).key_id == key.key_id
    await asyncio.sleep(1.6)
    assert await rejected(auth, key.secret)
    assert reads.reads == 1  # the cached expiry said no


# --- changes made through this process --------------------------------------------------------


async def test_a_revocation_here_fails_the_next_request(
    db: Database,
    auth: Authenticator,
) -> None:
    key = await new_key(db)
    await auth.principal_for(key.secret)
    async with db.session() as session:
        row = await api_keys.get_key(session, key_id=key.key_id)
        assert row is not None
        await admin.revoke_key(session, actor="test", key=row)
    assert await rejected(auth, key.secret)


async def test_an_update_here_is_seen_by_the_next_request(
    db: Database,
    auth: Authenticator,
) -> None:
    key = await new_key(db)
    assert (await auth.principal_for(key.secret)).role == "member"
    async with db.session() as session:
        row = await api_keys.get_key(session, key_id=key.key_id)
        assert row is not None
        await admin.update_key(
            session, actor="test", key=row, role="reader", allowed_deployments=["only"]
        )
    principal = await auth.principal_for(key.secret)
    assert (principal.role, principal.allowed_deployments) == ("reader", ("only",))


async def test_deleting_the_project_fails_its_keys_next_request(
    db: Database,
    auth: Authenticator,
) -> None:
    key = await new_key(db)
    await auth.principal_for(key.secret)
    async with db.session() as session:
        await admin.delete_project(session, actor="test", project_id=key.project_id)
    assert await rejected(auth, key.secret)


async def test_listeners_run_after_the_commit_only(db: Database) -> None:
    key = await new_key(db)
    calls: list[str] = []
    db.on_key_change(lambda: calls.append("changed"))

    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await announce_key_change(session)
            raise RuntimeError("rolled back")
    assert calls == []

    async with db.session() as session:
        async with session.begin_nested():
            await announce_key_change(session)
        assert calls == []  # a savepoint's commit changes nothing for others yet
    assert calls == ["changed"]

    async with db.session() as session:  # a commit that changed no key
        await api_keys.list_keys(session, project_id=key.project_id)
    assert calls == ["changed"]


# --- changes made elsewhere -------------------------------------------------------------------


async def test_a_revocation_by_another_process_fails_the_next_request(
    db: Database,
    auth: Authenticator,
) -> None:
    key = await new_key(db)
    await auth.principal_for(key.secret)
    other = another_process(db)
    try:
        async with other.session() as session:
            row = await api_keys.get_key(session, key_id=key.key_id)
            assert row is not None
            await admin.revoke_key(session, actor="cli", key=row)
    finally:
        await other.close()
    if not db.is_sqlite:
        # NOTIFY travels through the server to our listening connection.
        cache = auth.cache
        assert cache is not None
        await eventually(lambda: len(cache) == 0)
    assert await rejected(auth, key.secret)


async def test_sqlite_sees_even_an_unannounced_change_at_once(
    db: Database,
    auth: Authenticator,
) -> None:
    if not db.is_sqlite:
        pytest.skip("Postgres learns of changes through NOTIFY, which hand-written SQL skips")
    key = await new_key(db)
    await auth.principal_for(key.secret)
    assert db.url.database is not None
    with closing(sqlite3.connect(db.url.database)) as connection:  # by hand, behind our back
        connection.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ?",
            (datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), key.key_id),
        )
        connection.commit()
    assert await rejected(auth, key.secret)


async def test_postgres_keeps_no_entry_across_a_lost_listening_connection(
    db: Database,
    auth: Authenticator,
) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite needs no listening connection")
    assert auth.cache is not None
    cache = auth.cache
    key = await new_key(db)
    await auth.principal_for(key.secret)
    assert len(cache) == 1

    dsn = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        listening = (
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        old_pid = await connection.fetchval(listening)
        assert old_pid is not None
        await connection.execute("SELECT pg_terminate_backend($1)", old_pid)
        # Revoked without any NOTIFY while the listener is gone.
        await connection.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", key.key_id)

        async def listening_again() -> bool:
            pid = await connection.fetchval(listening)
            return cache.live and pid is not None and pid != old_pid

        await eventually(listening_again)
    finally:
        await connection.close()
    assert await rejected(auth, key.secret)


async def test_the_cache_is_not_used_while_postgres_is_not_listening(
    db: Database,
    reads: ReadCounter,
) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite needs no listening connection")
    key = await new_key(db)
    never_started = Authenticator(db, ADMIN_KEY, cache_max_age_s=60)
    assert never_started.cache is not None and not never_started.cache.live
    for _ in range(2):
        await never_started.principal_for(key.secret)
    assert reads.reads == 2 and len(never_started.cache) == 0


# --- the cache itself ---------------------------------------------------------------------------


def cached_key() -> CachedKey:
    principal = Principal(key_id="key_a", project_id="proj_a", role="member")
    return CachedKey(principal=principal, revoked=False, expires_at=None)


async def test_entries_expire_after_max_age(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await database.migrate()
    now = [1000.0]
    cache = KeyCache(database, max_age_s=60, clock=lambda: now[0])
    try:
        assert cache.get(b"digest") is None
        cache.put(b"digest", cached_key(), generation=cache.generation)
        now[0] += 59
        assert cache.get(b"digest") == cached_key()
        now[0] += 1
        assert cache.get(b"digest") is None
    finally:
        await database.close()


async def test_a_read_begun_before_a_change_is_not_kept(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await database.migrate()
    cache = KeyCache(database, max_age_s=60)
    try:
        assert cache.get(b"digest") is None
        generation = cache.generation  # a database read begins here...
        cache.clear()  # ...a key changes meanwhile...
        cache.put(b"digest", cached_key(), generation=generation)  # ...its stale result
        assert cache.get(b"digest") is None and len(cache) == 0
    finally:
        await database.close()


async def test_sqlite_data_version_moves_with_other_connections_commits(
    tmp_path: Path,
) -> None:
    """Also a raw connection's commit after a WAL checkpoint with restart moves it."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await database.migrate()
    try:
        before = database.data_version()
        assert database.data_version() == before
        async with database.session() as session:  # this process's writer: another connection
            await admin.create_project(session, actor="test", name="versioned")
        after = database.data_version()
        assert after != before
        assert database.url.database is not None
        with closing(sqlite3.connect(database.url.database)) as connection:
            connection.execute("PRAGMA wal_checkpoint(RESTART)")
            connection.execute("UPDATE projects SET name = 'renamed'")
            connection.commit()
        assert database.data_version() != after
    finally:
        await database.close()


async def test_sqlite_data_version_without_a_wal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rollback-journal.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.commit()
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        before = database.data_version()  # nothing has switched this file to WAL
        with closing(sqlite3.connect(path)) as connection:
            connection.execute("INSERT INTO t VALUES (1)")
            connection.commit()
        assert database.data_version() != before
    finally:
        await database.close()
