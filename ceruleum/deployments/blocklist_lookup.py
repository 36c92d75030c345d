"""The compiled blocklists a deployment's policy attaches, found cheaply on every request.

Each (project, name) is checked against the database at most once per ``ttl_s``; a list is
compiled again only when its ``updated_at`` moved (every item change moves it), so a blocklist
of thousands of patterns is not recompiled every second. A change made through this process
takes effect at once (``forget``); one made elsewhere (the CLI) within ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select

from ceruleum.safety.blocklist import (
    BlocklistItem,
    BlocklistPatternError,
    CompiledBlocklist,
    check_pattern,
)
from ceruleum.store import BlocklistItemRow, BlocklistRow, Database

logger = logging.getLogger(__name__)

_LISTS = BlocklistRow.__table__.c
_ITEMS = BlocklistItemRow.__table__.c


@dataclass(frozen=True, slots=True)
class _Entry:
    checked_at: float
    compiled: CompiledBlocklist | None  # None: no such blocklist
    updated_at: Any = None  # as the database returned it; compared, never interpreted


class BlocklistLookup:
    def __init__(
        self, database: Database, *, ttl_s: float = 1.0, max_entries: int = 10_000
    ) -> None:
        self._database = database
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._forgotten_at = -math.inf

    async def get(self, *, project_id: str, names: Sequence[str]) -> list[CompiledBlocklist]:
        """The project's blocklists of these names, in their order; names not found are skipped."""
        now = time.monotonic()
        entries: dict[str, _Entry] = {}
        stale: list[str] = []
        for name in dict.fromkeys(names):
            entry = self._cache.get((project_id, name))
            if entry is not None and self._fresh(entry, now):
                entries[name] = entry
            else:
                stale.append(name)
        if stale:
            entries.update(await self._refresh(project_id, stale, now))
        wanted = (entries[name].compiled for name in dict.fromkeys(names))
        return [compiled for compiled in wanted if compiled is not None]

    def forget(self) -> None:
        """Check everything against the database on its next use (after a change made through
        this process). Compiled lists stay at hand, reused where the database shows no change."""
        self._forgotten_at = time.monotonic()

    def _fresh(self, entry: _Entry, now: float) -> bool:
        return now - entry.checked_at < self._ttl_s and entry.checked_at > self._forgotten_at

    async def _refresh(self, project_id: str, names: list[str], now: float) -> dict[str, _Entry]:
        if len(self._cache) + len(names) > self._max_entries:
            self._cache.clear()  # a bound, not a policy: projects rarely have this many lists
        # What is known now: forget() or another request may change the cache while we wait.
        known = {name: self._cache.get((project_id, name)) for name in names}
        rows = await self._database.fetch_all(
            select(_LISTS.id, _LISTS.name, _LISTS.updated_at).where(
                _LISTS.project_id == project_id, _LISTS.name.in_(names)
            )
        )
        current = {row.name: row for row in rows}
        changed = [row for row in rows if not _unchanged(known[row.name], row)]
        compiled = await self._compile(changed)
        entries: dict[str, _Entry] = {}
        for name in names:
            row, previous = current.get(name), known[name]
            if row is None:
                entries[name] = _Entry(now, None)
            elif name in compiled:
                entries[name] = _Entry(now, compiled[name], row.updated_at)
            else:  # unchanged: the list compiled before, checked again now
                assert previous is not None
                entries[name] = _Entry(now, previous.compiled, previous.updated_at)
            self._cache[(project_id, name)] = entries[name]
        return entries

    async def _compile(self, rows: Sequence[Row[Any]]) -> dict[str, CompiledBlocklist]:
        if not rows:
            return {}
        ids = [row.id for row in rows]
        items: dict[str, list[BlocklistItem]] = {row.id: [] for row in rows}
        for item in await self._database.fetch_all(
            select(_ITEMS.id, _ITEMS.blocklist_id, _ITEMS.pattern, _ITEMS.is_regex)
            .where(_ITEMS.blocklist_id.in_(ids))
            .order_by(_ITEMS.created_at, _ITEMS.id)
        ):
            items[item.blocklist_id].append(
                BlocklistItem(id=item.id, pattern=item.pattern, is_regex=bool(item.is_regex))
            )
        # Off the event loop: thousands of patterns take a while to compile.
        return {
            row.name: await asyncio.to_thread(_compiled, row.id, row.name, items[row.id])
            for row in rows
        }


def _unchanged(entry: _Entry | None, row: Row[Any]) -> bool:
    return (
        entry is not None
        and entry.compiled is not None
        and entry.compiled.id == row.id
        and entry.updated_at == row.updated_at
    )


def _compiled(blocklist_id: str, name: str, items: list[BlocklistItem]) -> CompiledBlocklist:
    try:
        return CompiledBlocklist(blocklist_id, name, items)
    except Exception:
        # Every stored pattern was checked when added; one that no longer compiles (a newer
        # regex engine) is left out, so that the rest of the list still applies.
        usable = [item for item in items if _compiles(item)]
        logger.warning(
            "blocklist %s: %d pattern(s) no longer compile and are skipped",
            blocklist_id,
            len(items) - len(usable),
        )
        return CompiledBlocklist(blocklist_id, name, usable)


def _compiles(item: BlocklistItem) -> bool:
    try:
        check_pattern(item.pattern, is_regex=item.is_regex)
    except BlocklistPatternError:
        return False
    return True
