"""CLI tests: typer's runner on a fresh SQLite database in a temporary data directory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ceruleum.cli import app
from ceruleum.store import Database, database_url
from ceruleum.store.audit import audit_dict, list_audit


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("CERULEUM_DATA_DIR", str(directory))
    monkeypatch.delenv("CERULEUM_DATABASE_URL", raising=False)
    return directory


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


def assert_fails(result: Result, message: str) -> None:
    """Status 1 and one clear line on stderr, never a traceback."""
    assert result.exit_code == 1, result.output
    assert message in result.stderr, result.stderr
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def new_project(name: str = "alpha") -> str:
    result = ok("projects", "create", name)
    return result.stdout.strip().rsplit(" ", 1)[-1]


def audit_events(data_dir: Path) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        database = Database(database_url(None, data_dir))
        try:
            async with database.session() as session:
                return [audit_dict(event) for event in reversed(await list_audit(session))]
        finally:
            await database.close()

    return asyncio.run(read())
