"""Authenticated API keys kept in memory, so that a request does no database I/O to know who calls.

Entries are found by the SHA-256 of the presented key (never the key itself) and hold what
authentication needs: the principal, whether the key is revoked, and when it expires (checked on
every request by the caller). A revocation or change must still take effect on the next request,
so the cache is emptied:

- at once, when this process commits a key change (``store.database.announce_key_change``);
- on SQLite, when any other connection has committed anything to the database file (the CLI,
  another server, hand-written SQL): ``PRAGMA data_version``, read from shared memory before
  every lookup;
- on Postgres, when a NOTIFY on the key channel arrives from another process (the CLI and other
  servers announce their key changes there). While the listening connection is down the cache is
  not used at all, and it starts empty when listening again.

``max_age_s`` bounds how long an entry lives whatever happens (a writer that changed a key
without announcing it, such as a hand-written SQL update on Postgres).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ceruleum.gateway.principal import Principal
from ceruleum.store import Database
from ceruleum.store.database import KEY_CHANGES_CHANNEL


@dataclass(frozen=True, slots=True)
class CachedKey:
    principal: Principal
    revoked: bool
    expires_at: float | None  # POSIX seconds


class KeyCache:
    def __init__(
        self,
        database: Database,
        *,
        max_age_s: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._max_age_s = max_age_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[bytes, tuple[float, CachedKey]] = {}
        self._generation = 0  # bumped by every clear: a read begun before must not be stored
        self._sqlite = database.is_sqlite
        self._data_version: int | None = None
        # SQLite needs no listener; Postgres is trusted only while its listener is connected.
        self._live = self._sqlite
        database.on_key_change(self.clear)

    async def start(self) -> None:
        if not self._sqlite:
            await self._database.listen(
                KEY_CHANGES_CHANNEL, on_notify=self.clear, on_state=self._listening
            )

    @property
    def live(self) -> bool:
        """Whether entries may be trusted now (Postgres: only while listening)."""
        return self._live

    @property
    def generation(self) -> int:
        """Read before looking a key up in the database; hand back to ``put``."""
        return self._generation

    def get(self, digest: bytes) -> CachedKey | None:
        if not self._live:
            return None
        if self._sqlite:
            version = self._database.data_version()
            if version != self._data_version:
                self.clear()
                self._data_version = version
        found = self._entries.get(digest)
        if found is None:
            return None
        stored_at, key = found
        if self._clock() - stored_at >= self._max_age_s:
            del self._entries[digest]
            return None
        return key

    def put(self, digest: bytes, key: CachedKey, *, generation: int) -> None:
        """Keep a key read from the database, unless the cache was cleared since the read began
        (the row read may predate the change that cleared it)."""
        if not self._live or generation != self._generation:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # only valid keys get here; still, never grow without bound
        self._entries[digest] = (self._clock(), key)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _listening(self, live: bool) -> None:
        self.clear()  # notifications may have been missed while not listening
        self._live = live
