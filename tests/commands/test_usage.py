"""`ceruleum usage`: reads the database directly, prints a table or the API's JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ceruleum.gateway.usage import UsageRecorder
from ceruleum.store import Database, database_url
from tests.api.test_admin_usage import usage_event
from tests.commands.conftest import assert_fails, cli, ok


@pytest.fixture
def metered(data_dir: Path) -> Path:
    async def seed() -> None:
        database = Database(database_url(None, data_dir))
        await database.migrate()
        recorder = UsageRecorder(database)
        for n in range(3):
            recorder.record(usage_event(n, "proj_a", status=500 if n == 0 else 200))
        recorder.record(usage_event(7, "proj_b", day=2))
        await recorder.close()
        await database.close()

    asyncio.run(seed())
    return data_dir


def test_table_by_day(metered: Path) -> None:
    lines = ok("usage").stdout.splitlines()
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
    assert len(lines) == 3


def test_json_by_key_for_one_project_and_period(metered: Path) -> None:
    out = ok("usage", "--json", "--by", "key", "--project", "proj_a", "--since", "2024-05-01")
    body = json.loads(out.stdout)
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


def test_a_missing_key_shows_as_a_dash(metered: Path) -> None:
    lines = ok("usage", "--by", "key", "--project", "proj_b").stdout.splitlines()
    assert lines[1].split()[:3] == ["proj_b", "-", "1"]


def test_until_a_date_includes_that_day(metered: Path) -> None:
    out = ok("usage", "--by", "project", "--until", "2024-05-01").stdout
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["proj_a"]


def test_an_empty_database_says_so(data_dir: Path) -> None:
    result = ok("usage", "--since", "2030-01-01")
    assert result.stdout == ""
    assert "no usage" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--by", "week"), "group_by must be one of"),
        (("--since", "soon"), "is not a time"),
        (("--until", "2024-02-30"), "is not a time"),
    ],
)
def test_bad_options_fail_with_one_line(
    data_dir: Path, args: tuple[str, ...], message: str
) -> None:
    assert_fails(cli("usage", *args), message)


def test_an_unreachable_database_fails_with_one_line(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERULEUM_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert_fails(cli("usage"), "")
