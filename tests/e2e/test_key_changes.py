"""A key change made by another process reaches a server on its next request, although servers
keep authenticated keys in memory (gateway/key_cache.py): the CLI writing to a server's SQLite
file, the CLI on a shared Postgres, and one server's admin API seen by another server on the same
Postgres.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import SMALL_ENGINE, ServerProcess, start_server, stop_server
from tests.e2e.gateway_helpers import AdminApi, assert_openai_error, bearer, chat_body, warm_up

pytestmark = pytest.mark.slow

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def chat(server: ServerProcess, secret: str) -> httpx.Response:
    return httpx.post(
        server.v1 + "/chat/completions", json=chat_body(), headers=bearer(secret), timeout=60
    )


def assert_works(server: ServerProcess, secret: str) -> None:
    response = chat(server, secret)
    assert response.status_code == 200, response.text


def cli(env: dict[str, str], *args: str) -> str:
    """Run ``ceruleum ...`` as a process of its own; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "ceruleum", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_key(server: ServerProcess, role: str = "member") -> dict[str, Any]:
    api = AdminApi(server.base_url, server.admin_key)
    try:
        return api.key(api.project("keys"), role)
    finally:
        api.close()


# --- SQLite: the CLI writes to the server's database file -----------------------------------------


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path_factory.mktemp("keys-sqlite"), env=SMALL_ENGINE)
    warm_up(proc)
    yield proc
    stop_server(proc)


def test_a_cli_revocation_fails_the_next_request_on_sqlite(sqlite_server: ServerProcess) -> None:
    key = new_key(sqlite_server)
    for _ in range(2):  # the second one is served from the key cache
        assert_works(sqlite_server, key["secret"])
    cli({"CERULEUM_DATA_DIR": str(sqlite_server.data_dir)}, "keys", "revoke", key["id"])
    assert_openai_error(chat(sqlite_server, key["secret"]), 401, "invalid_api_key")


# --- Postgres: two servers and the CLI on one database --------------------------------------------


async def _postgres(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    name = "ceruleum_keys_" + uuid.uuid4().hex[:12]
    try:
        asyncio.run(_postgres(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError) as exc:
        pytest.skip(f"Postgres is unreachable at {POSTGRES_DSN}: {exc!r}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def postgres_servers(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    env = {
        **SMALL_ENGINE,
        "CERULEUM_DATABASE_URL": postgres_url,
        "CERULEUM_ADMIN_KEY": "test-admin-" + secrets.token_hex(16),
    }
    # The first one migrates the new database; the second finds it at the newest revision.
    servers = [start_server(tmp_path_factory.mktemp("keys-pg-0"), env=env)]
    try:
        servers.append(start_server(tmp_path_factory.mktemp("keys-pg-1"), env=env))
        for proc in servers:
            warm_up(proc)
        yield servers
    finally:
        for proc in servers:
            stop_server(proc)


def test_a_cli_revocation_fails_the_next_request_on_postgres(
    postgres_servers: list[ServerProcess], postgres_url: str
) -> None:
    key = new_key(postgres_servers[0])
    for proc in postgres_servers:
        for _ in range(2):
            assert_works(proc, key["secret"])
    cli({"CERULEUM_DATABASE_URL": postgres_url}, "keys", "revoke", key["id"])
    for proc in postgres_servers:
        assert_openai_error(chat(proc, key["secret"]), 401, "invalid_api_key")


def test_one_servers_key_changes_reach_the_other_on_its_next_request(
    postgres_servers: list[ServerProcess],
) -> None:
    first, second = postgres_servers
    key = new_key(first)
    for proc in postgres_servers:
        assert_works(proc, key["secret"])
    admin = AdminApi(first.base_url, first.admin_key)
    try:
        keys = f"/admin/projects/{key['project_id']}/keys/{key['id']}"
        lowered = admin.client.patch(keys, json={"role": "reader"})
        assert lowered.status_code == 200, lowered.text
        assert_openai_error(chat(second, key["secret"]), 403, "permission_denied")

        raised = admin.client.patch(keys, json={"role": "member"})
        assert raised.status_code == 200, raised.text
        assert_works(second, key["secret"])

        revoked = admin.client.post(keys + "/revoke")
        assert revoked.status_code == 200, revoked.text
        for proc in (second, first):
            assert_openai_error(chat(proc, key["secret"]), 401, "invalid_api_key")
    finally:
        admin.close()
