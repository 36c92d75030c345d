"""LISTEN on a Postgres channel over a connection of its own, reconnecting when it is lost.

Whoever relies on the notifications (a cache) must trust them only while ``live``: a lost
connection loses the notifications sent meanwhile, so ``on_state(False)`` comes first and
``on_state(True)`` only once listening again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)


class Listener:
    def __init__(
        self,
        dsn: str,
        channel: str,
        *,
        on_notify: Callable[[], None],
        on_state: Callable[[bool], None],
        health_check_s: float = 15.0,
        timeout_s: float = 5.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._on_notify = on_notify
        self._on_state = on_state
        self._health_check_s = health_check_s
        self._timeout_s = timeout_s
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None  # asyncpg.Connection while connected
        self._attempted = asyncio.Event()  # the first connection attempt has ended
        self.live = False

    async def start(self) -> None:
        """Start listening; returns once the first attempt succeeded or failed (it goes on
        retrying in the background)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"listen-{self._channel}")
        await self._attempted.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._disconnect()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._listen_until_lost()
                logger.warning("LISTEN %s: the connection was lost; reconnecting", self._channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the type only: messages can carry host names
                logger.warning(
                    "LISTEN %s: %s; retrying in %.1f s", self._channel, type(exc).__name__, delay
                )
            finally:
                self._set_live(False)
                self._attempted.set()
            await self._disconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff_s)

    async def _listen_until_lost(self) -> None:
        lost = asyncio.Event()
        connection = await asyncpg.connect(self._dsn, timeout=self._timeout_s)
        self._connection = connection
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(self._channel, self._notified)
        self._set_live(True)
        self._attempted.set()
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), self._health_check_s)
            except TimeoutError:
                # A connection can die without a word (a network partition): ask it.
                await connection.fetchval("SELECT 1", timeout=self._timeout_s)

    def _notified(self, *_args: object) -> None:
        self._on_notify()

    def _set_live(self, live: bool) -> None:
        if live != self.live:
            self.live = live
            self._on_state(live)

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=self._timeout_s)
            except Exception:
                connection.terminate()
