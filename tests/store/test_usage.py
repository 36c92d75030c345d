"""Usage summaries on SQLite and PostgreSQL: groupings, UTC days, filters, error counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text

from ceruleum.store import Database
from ceruleum.store.usage import insert_usage, summarize_usage


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, tzinfo=UTC)


def _record(
    request_id: str,
    *,
    project: str = "proj_a",
    key: str | None = "key_a",
    deployment: str | None = "chat",
    model: str | None = "smol",
    prompt: int = 10,
    completion: int = 5,
    latency: int = 100,
    status: int = 200,
    at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "project_id": project,
        "key_id": key,
        "deployment": deployment,
        "model": model,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "latency_ms": latency,
        "status": status,
        "created_at": at or _at(1, 12),
    }


RECORDS = [
    # proj_a, 1 May (late evening UTC) and 2 May (just after midnight UTC)
    _record("r1", at=_at(1, 23, 30), latency=100),
    _record("r2", at=_at(1, 23, 59), status=500, prompt=7, completion=0, latency=300),
    _record("r3", at=_at(2, 0, 30), key="key_b", deployment="other", model="big", completion=9),
    _record("r4", at=_at(2, 1), key=None, deployment=None, status=499, completion=2),
    # proj_b
    _record("r5", project="proj_b", key="key_c", at=_at(2, 12), prompt=100, completion=50),
]


async def _summary(database: Database, **kwargs: Any) -> list[dict[str, Any]]:
    arguments: dict[str, Any] = {"project_id": None, "since": None, "until": None, **kwargs}
    async with database.session() as session:
        if not database.is_sqlite:
            # A server in another time zone must still cut days at UTC midnight.
            await session.execute(text("SET LOCAL TIME ZONE 'Asia/Tokyo'"))
        return await summarize_usage(session, **arguments)


@pytest.fixture
async def usage_db(database: Database) -> Database:
    async with database.session() as session:
        await insert_usage(session, records=RECORDS)
    return database


async def test_insert_nothing_is_a_no_op(database: Database) -> None:
    async with database.session() as session:
        await insert_usage(session, records=[])
    assert await _summary(database, group_by="project") == []


async def test_by_project_sums_tokens_errors_and_latency(usage_db: Database) -> None:
    rows = await _summary(usage_db, group_by="project")
    assert rows == [
        {
            "project_id": "proj_a",
            "requests": 4,
            "prompt_tokens": 37,
            "completion_tokens": 16,
            "total_tokens": 53,
            "errors": 2,  # 500 and 499 (a client that went away)
            "latency_ms_avg": 150.0,
        },
        {
            "project_id": "proj_b",
            "requests": 1,
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "total_tokens": 150,
            "errors": 0,
            "latency_ms_avg": 100.0,
        },
    ]


async def test_by_day_cuts_at_utc_midnight(usage_db: Database) -> None:
    rows = await _summary(usage_db, group_by="day")
    assert [(r["project_id"], r["day"], r["requests"], r["errors"]) for r in rows] == [
        ("proj_a", "2024-05-01", 2, 1),
        ("proj_a", "2024-05-02", 2, 1),
        ("proj_b", "2024-05-02", 1, 0),
    ]
    assert rows[0]["latency_ms_avg"] == 200.0


async def test_by_key_deployment_and_model(usage_db: Database) -> None:
    by_key = await _summary(usage_db, group_by="key", project_id="proj_a")
    assert {r["key_id"]: r["requests"] for r in by_key} == {"key_a": 2, "key_b": 1, None: 1}
    by_deployment = await _summary(usage_db, group_by="deployment", project_id="proj_a")
    assert {r["deployment"]: r["completion_tokens"] for r in by_deployment} == {
        "chat": 5,
        "other": 9,
        None: 2,
    }
    by_model = await _summary(usage_db, group_by="model")
    assert {(r["project_id"], r["model"]): r["total_tokens"] for r in by_model} == {
        ("proj_a", "smol"): 15 + 7 + 12,
        ("proj_a", "big"): 19,
        ("proj_b", "smol"): 150,
    }
    assert all(set(r) >= {"project_id", "requests", "errors", "latency_ms_avg"} for r in by_model)


async def test_since_is_inclusive_and_until_exclusive(usage_db: Database) -> None:
    rows = await _summary(usage_db, group_by="project", since=_at(1, 23, 59), until=_at(2, 1))
    assert [(r["project_id"], r["requests"]) for r in rows] == [("proj_a", 2)]  # r2 and r3


async def test_bounds_in_another_zone_mean_the_same_instant(usage_db: Database) -> None:
    tokyo = timezone(timedelta(hours=9))
    since = datetime(2024, 5, 2, 9, 0, tzinfo=tokyo)  # 2 May 00:00 UTC
    rows = await _summary(usage_db, group_by="project", since=since, project_id="proj_a")
    assert [r["requests"] for r in rows] == [2]


async def test_project_filter_and_empty_result(usage_db: Database) -> None:
    rows = await _summary(usage_db, group_by="day", project_id="proj_b")
    assert [(r["project_id"], r["day"]) for r in rows] == [("proj_b", "2024-05-02")]
    assert await _summary(usage_db, group_by="day", project_id="proj_none") == []


async def test_unknown_grouping_is_refused(usage_db: Database) -> None:
    with pytest.raises(ValueError, match="group_by"):
        await _summary(usage_db, group_by="week")
