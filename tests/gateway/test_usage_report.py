"""`ceruleum usage`: reads the database directly, prints a table or the API's JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ceruleum.cli import app
from ceruleum.gateway.usage import UsageRecorder
from ceruleum.store import Database, database_url
from tests.api.test_admin_usage import usage_event


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CERULEUM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CERULEUM_DATABASE_URL", raising=False)

    async def seed() -> None:
        database = Database(database_url(None, tmp_path))
        await database.migrate()
        recorder = UsageRecorder(database)
        for n in range(3):
            recorder.record(usage_event(n, "proj_a", status=500 if n == 0 else 200))
        recorder.record(usage_event(7, "proj_b", day=2))
        await recorder.close()
        await database.close()

    asyncio.run(seed())
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["usage", *args])
    return result.exit_code, result.stdout, result.stderr


def test_table_by_day(data_dir: Path) -> None:
    code, out, _ = run()
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "project_id",
        "day",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "errors",
        "latency_ms_avg",
    ]
    assert lines[1].split() == ["proj_a", "2024-05-01", "3", "30", "15", "45", "1", "20.0"]
    assert lines[2].split() == ["proj_b", "2024-05-02", "1", "10", "5", "15", "0", "20.0"]


def test_json_by_key_for_one_project_and_period(data_dir: Path) -> None:
    code, out, _ = run("--json", "--by", "key", "--project", "proj_a", "--since", "2024-05-01")
    assert code == 0
    body = json.loads(out)
    assert body["object"] == "list"
    assert body["data"] == [
        {
            "project_id": "proj_a",
            "key_id": None,
            "requests": 3,
            "prompt_tokens": 30,
            "completion_tokens": 15,
            "total_tokens": 45,
            "errors": 1,
            "latency_ms_avg": 20.0,
        }
    ]


def test_until_a_date_includes_that_day(data_dir: Path) -> None:
    code, out, _ = run("--by", "project", "--until", "2024-05-01")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["proj_a"]


def test_an_empty_period_says_so(data_dir: Path) -> None:
    code, out, err = run("--since", "2030-01-01")
    assert (code, out) == (0, "")
    assert "no usage" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--by", "week"), "group_by must be one of"), (("--since", "soon"), "is not a time")],
)
def test_bad_options_exit_2(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert message in err
