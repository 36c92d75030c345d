"""The usage recorder: batches, background writes, retries after failures, no silent loss."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import ceruleum.gateway.usage as usage_module
from ceruleum.gateway.usage import UsageEvent, UsageRecorder
from ceruleum.store import Database, UsageRecord, database_url
from ceruleum.store.usage import insert_usage


def event(n: int, *, status: int = 200) -> UsageEvent:
    return UsageEvent(
        request_id=f"chatcmpl-{n}",
        project_id="proj_a",
        key_id="key_a",
        deployment="chat",
        model="smol",
        prompt_tokens=n,
        completion_tokens=2 * n,
        latency_ms=10 + n,
        status=status,
        created_at=datetime.now(UTC),
    )


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(database_url(None, tmp_path))
    await db.migrate()
    yield db
    await db.close()


async def stored_ids(database: Database) -> list[str]:
    async with database.session() as session:
        query = select(UsageRecord.request_id).order_by(UsageRecord.id)
        return list((await session.execute(query)).scalars())


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class InsertSpy:
    """Wraps the real insert: records batch sizes and fails the first `failures` calls."""

    def __init__(self, failures: int = 0, message: str = "database is down") -> None:
        self.batches: list[int] = []
        self.failures = failures
        self.message = message

    async def __call__(self, session: AsyncSession, *, records: Sequence[dict[str, Any]]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError(self.message)
        self.batches.append(len(records))
        await insert_usage(session, records=records)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> InsertSpy:
    spy = InsertSpy()
    monkeypatch.setattr(usage_module, "insert_usage", spy)
    return spy


async def test_flush_writes_in_batches_of_max_batch(database: Database, spy: InsertSpy) -> None:
    recorder = UsageRecorder(database, max_batch=3)
    for n in range(7):
        recorder.record(event(n))
    assert recorder.pending == 7
    await recorder.flush()
    assert spy.batches == [3, 3, 1]
    assert await stored_ids(database) == [f"chatcmpl-{n}" for n in range(7)]
    async with database.session() as session:
        row = (await session.execute(select(UsageRecord).limit(1))).scalar_one()
    assert (row.project_id, row.key_id, row.deployment, row.model, row.status) == (
        "proj_a",
        "key_a",
        "chat",
        "smol",
        200,
    )
    assert (row.prompt_tokens, row.completion_tokens, row.latency_ms) == (0, 0, 10)
    assert recorder.pending == 0


async def test_background_task_writes_on_its_interval(database: Database) -> None:
    recorder = UsageRecorder(database, flush_interval_s=0.05)
    await recorder.start()
    try:
        recorder.record(event(1))
        recorder.record(event(2, status=499))
        await eventually(lambda: _count_is(database, 2))
    finally:
        await recorder.close()


async def test_a_full_batch_is_written_without_waiting_for_the_interval(
    database: Database, spy: InsertSpy
) -> None:
    recorder = UsageRecorder(database, flush_interval_s=60, max_batch=4)
    await recorder.start()
    try:
        for n in range(4):
            recorder.record(event(n))
        await eventually(lambda: _count_is(database, 4), timeout_s=3)
        assert spy.batches == [4]
    finally:
        await recorder.close()


async def test_close_writes_everything_still_queued(database: Database) -> None:
    recorder = UsageRecorder(database, flush_interval_s=60, max_batch=200)
    await recorder.start()
    for n in range(450):
        recorder.record(event(n))
    await recorder.close()
    assert len(await stored_ids(database)) == 450
    assert recorder.pending == 0 and recorder.dropped == 0


async def test_transient_failure_is_retried_without_loss_or_duplicates(
    database: Database, spy: InsertSpy, caplog: pytest.LogCaptureFixture
) -> None:
    spy.failures = 2
    spy.message = "could not connect to postgresql://ceruleum:hunter2@db"
    recorder = UsageRecorder(database, flush_interval_s=0.01, max_batch=3)
    await recorder.start()
    try:
        with caplog.at_level(logging.INFO, logger="ceruleum.gateway.usage"):
            for n in range(5):
                recorder.record(event(n))
            await eventually(lambda: _count_is(database, 5))
    finally:
        await recorder.close()
    assert await stored_ids(database) == [f"chatcmpl-{n}" for n in range(5)]
    assert recorder.dropped == 0
    assert "writing 3 events failed (ConnectionError, attempt 1)" in caplog.text
    assert "writing works again after 2 failed attempts" in caplog.text
    assert "hunter2" not in caplog.text  # the driver's message is never logged


async def test_flush_raises_while_the_database_fails_and_keeps_the_events(
    database: Database, spy: InsertSpy
) -> None:
    spy.failures = 1
    recorder = UsageRecorder(database)
    recorder.record(event(1))
    with pytest.raises(ConnectionError):
        await recorder.flush()
    assert recorder.pending == 1
    recorder.record(event(2))
    await recorder.flush()
    assert await stored_ids(database) == ["chatcmpl-1", "chatcmpl-2"]


async def test_a_real_database_error_then_recovery(tmp_path: Path) -> None:
    """No tables yet (as if the database were unreachable): events wait, then all arrive."""
    db = Database(database_url(None, tmp_path))
    recorder = UsageRecorder(db, flush_interval_s=0.01, max_backoff_s=0.05)
    await recorder.start()
    try:
        for n in range(3):
            recorder.record(event(n))
        await asyncio.sleep(0.2)  # several failed attempts
        assert recorder.pending == 3
        await db.migrate()
        await eventually(lambda: _count_is(db, 3))
        assert recorder.pending == 0
    finally:
        await recorder.close()
        await db.close()


async def test_a_full_queue_drops_the_oldest_and_counts_them(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = UsageRecorder(database, max_queue=3)
    with caplog.at_level(logging.WARNING, logger="ceruleum.gateway.usage"):
        for n in range(5):
            recorder.record(event(n))
    assert recorder.dropped == 2
    assert "dropped because the queue is full" in caplog.text
    await recorder.close()
    assert await stored_ids(database) == ["chatcmpl-2", "chatcmpl-3", "chatcmpl-4"]


async def test_close_gives_up_on_a_dead_database_loudly(
    database: Database, spy: InsertSpy, caplog: pytest.LogCaptureFixture
) -> None:
    spy.failures = 1_000_000
    recorder = UsageRecorder(database, close_timeout_s=0.3)
    recorder.record(event(1))
    with caplog.at_level(logging.ERROR, logger="ceruleum.gateway.usage"):
        await asyncio.wait_for(recorder.close(), timeout=5)
    assert "1 events could not be written before shutdown and are lost" in caplog.text


async def test_record_after_close_never_raises_and_counts_a_drop(database: Database) -> None:
    recorder = UsageRecorder(database)
    await recorder.start()
    await recorder.close()
    recorder.record(event(1))
    assert recorder.dropped == 1
    assert await stored_ids(database) == []


async def test_record_is_cheap(database: Database) -> None:
    """The request path pays for an append, never for a write."""
    recorder = UsageRecorder(database, flush_interval_s=60, max_batch=1_000_000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(10_000):
        recorder.record(event(n))
    assert (loop.time() - started) / 10_000 < 0.0005  # far below the gateway's 2 ms budget
    await recorder.close()


async def _count_is(database: Database, expected: int) -> bool:
    return len(await stored_ids(database)) == expected


async def test_close_does_not_hang_on_a_database_that_never_answers(
    database: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def hang(session: AsyncSession, *, records: Sequence[dict[str, Any]]) -> None:
        await asyncio.sleep(3600)

    monkeypatch.setattr(usage_module, "insert_usage", hang)
    recorder = UsageRecorder(database, flush_interval_s=0.01, close_timeout_s=0.3)
    await recorder.start()
    recorder.record(event(1))
    await asyncio.sleep(0.1)  # the background task is now inside the hanging write
    with caplog.at_level(logging.ERROR, logger="ceruleum.gateway.usage"):
        await asyncio.wait_for(recorder.close(), timeout=3)
    assert recorder.pending == 1
    assert "1 events could not be written before shutdown and are lost" in caplog.text
