"""Usage metering off the request path: ``record`` only queues; a background task writes batches.

A request must not wait for a database write (the gateway's budget is ~2 ms), so events wait in
memory and are inserted in batches, one transaction each, once a second or as soon as a batch is
full: a write costs the event loop about the same whatever its size, so rarer, larger batches cost
each request less. When the database fails, the batch is kept and retried with backoff; only a
full queue loses events (the oldest first), and each loss is counted (``dropped``, exported as a
metric) and logged. Delivery is at least once: a batch whose commit failed on the way back may be
written twice; ``request_id`` tells the copies apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ceruleum.store import Database
from ceruleum.store.usage import insert_usage

logger = logging.getLogger(__name__)

_DROP_LOG_INTERVAL_S = 60.0  # a full queue drops on every request: log it once a minute


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One request, also a failed or disconnected one (with the tokens produced so far)."""

    request_id: str
    project_id: str
    key_id: str | None
    deployment: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    status: int
    created_at: datetime  # timezone-aware, UTC

    def as_row(self) -> dict[str, Any]:
        # Not dataclasses.asdict, which deep-copies every field: this runs for every request.
        return {field: getattr(self, field) for field in _FIELDS}


_FIELDS = tuple(field.name for field in dataclasses.fields(UsageEvent))


class UsageRecorder:
    """Queue usage events and write them in batches. Call ``record`` from the event loop."""

    def __init__(
        self,
        database: Database,
        *,
        flush_interval_s: float = 1.0,
        max_batch: int = 200,
        max_queue: int = 100_000,
        max_backoff_s: float = 30.0,
        close_timeout_s: float = 10.0,
    ) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        self._database = database
        self._flush_interval_s = flush_interval_s
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._max_backoff_s = max_backoff_s
        self._close_timeout_s = close_timeout_s
        self._queue: deque[UsageEvent] = deque()
        self._retry: list[UsageEvent] = []  # the batch being written, or the one refused last
        self._wake = asyncio.Event()  # a full batch is waiting
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()  # one writer at a time: the background task or flush()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._failures = 0  # consecutive failed writes; sets the backoff
        self._dropped = 0
        self._last_drop_log = -math.inf

    @property
    def dropped(self) -> int:
        """Events lost since start: to a full queue, or recorded after close."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Events not yet written."""
        return len(self._queue) + len(self._retry)

    async def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="usage-recorder")

    def record(self, event: UsageEvent) -> None:
        """Queue an event. Never blocks and never raises: metering must not fail a request."""
        try:
            if self._closed:
                self._drop(1, "the recorder is closed")
                return
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self._drop(1, "the queue is full")
            self._queue.append(event)
            if len(self._queue) >= self._max_batch:
                self._wake.set()
        except Exception:
            logger.exception("usage: an event could not be queued")

    async def flush(self) -> None:
        """Write every queued event now. A database error propagates; the events stay queued."""
        error = await self._write_pending()
        if error is not None:
            raise error

    async def close(self) -> None:
        """Stop the background task and write everything left, retrying for a bounded time."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._close_timeout_s
        if self._task is not None:
            await self._stop_task(deadline)
        delay = 0.1
        while self.pending and loop.time() < deadline:
            try:
                error = await asyncio.wait_for(self._write_pending(), deadline - loop.time())
            except TimeoutError:
                break  # a write that hangs keeps its batch in _retry; shutdown must go on
            if error is not None:
                await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
                delay = min(delay * 2, 2.0)
        if self.pending:
            logger.error(
                "usage: %d events could not be written before shutdown and are lost", self.pending
            )
        self._closed = True

    async def _stop_task(self, deadline: float) -> None:
        # A stop signal, not a cancellation: on Python 3.11, asyncio.wait_for may swallow a
        # cancellation that arrives as its awaitable completes, and the task would run on.
        assert self._task is not None
        task, self._task = self._task, None
        self._stop.set()
        self._wake.set()
        loop = asyncio.get_running_loop()
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
        if not done:  # a write hangs: cancel it; its batch stays in _retry
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    # --- the writer -----------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stop.is_set():
            # After a failure, wait out the backoff: a full batch must not shorten it.
            event, timeout = (
                (self._stop, self._backoff_s())
                if self._failures
                else (self._wake, self._flush_interval_s)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
            self._wake.clear()
            if self._stop.is_set():
                return  # close() writes what is left
            await self._write_pending()

    def _backoff_s(self) -> float:
        doublings = min(self._failures, 16)  # capped: a long outage must not overflow a float
        base = min(self._max_backoff_s, self._flush_interval_s * 2.0**doublings)
        return base * random.uniform(0.8, 1.2)  # replicas should not retry in step

    async def _write_pending(self) -> Exception | None:
        """Write batches until the queue is empty; stop at the first failure and return it."""
        async with self._lock:
            # Bounded, so that a steady stream of new events cannot keep one call going forever.
            rounds = math.ceil(self.pending / self._max_batch) + 1
            for _ in range(rounds):
                if not self.pending:
                    break
                error = await self._write_batch()
                if error is not None:
                    return error
            return None

    async def _write_batch(self) -> Exception | None:
        if not self._retry:
            take = min(self._max_batch, len(self._queue))
            self._retry = [self._queue.popleft() for _ in range(take)]
        batch = self._retry
        try:
            async with self._database.session() as session:
                await insert_usage(session, records=[event.as_row() for event in batch])
        except Exception as exc:
            self._failures += 1
            # The type only: driver messages can carry statements, parameters or host names.
            logger.warning(
                "usage: writing %d events failed (%s, attempt %d); %d events wait for a retry",
                len(batch),
                type(exc).__name__,
                self._failures,
                self.pending,
            )
            return exc
        self._retry = []
        if self._failures:
            logger.info("usage: writing works again after %d failed attempts", self._failures)
            self._failures = 0
        return None

    def _drop(self, count: int, reason: str) -> None:
        self._dropped += count
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            logger.warning(
                "usage: events dropped because %s (%d dropped so far)", reason, self._dropped
            )
