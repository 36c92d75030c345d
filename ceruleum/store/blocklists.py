"""Projects' custom blocklists and their items, in the control-plane database.

Every function runs in the caller's session and transaction; the rules (names, patterns,
limits) and the audit events are in ``gateway/admin_blocklists.py``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.safety.policy import BLOCKLIST_NAME
from ceruleum.store.api_keys import aware
from ceruleum.store.errors import BlocklistExistsError
from ceruleum.store.tables import BlocklistItemRow, BlocklistRow

_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_ONE_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class NewItem:
    pattern: str
    is_regex: bool = False


def new_blocklist_id() -> str:
    return "bl_" + secrets.token_hex(12)


def new_item_id() -> str:
    return "bli_" + secrets.token_hex(12)


async def get_blocklist(
    session: AsyncSession, *, project_id: str, name: str
) -> BlocklistRow | None:
    if not isinstance(name, str) or BLOCKLIST_NAME.fullmatch(name) is None:
        return None  # never stored, and not sent to the database (a NUL byte errors on Postgres)
    query = select(BlocklistRow).where(
        BlocklistRow.project_id == project_id, BlocklistRow.name == name
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_blocklists(
    session: AsyncSession, *, project_id: str
) -> list[tuple[BlocklistRow, int]]:
    """A project's blocklists by name, each with its number of items."""
    count = (
        select(func.count())
        .where(BlocklistItemRow.blocklist_id == BlocklistRow.id)
        .scalar_subquery()
    )
    query = (
        select(BlocklistRow, count)
        .where(BlocklistRow.project_id == project_id)
        .order_by(BlocklistRow.name)
    )
    return [(row, int(items)) for row, items in (await session.execute(query)).all()]


async def existing_names(
    session: AsyncSession, *, project_id: str, names: Sequence[str]
) -> set[str]:
    """Which of ``names`` are blocklists of the project."""
    if not names:
        return set()
    query = select(BlocklistRow.name).where(
        BlocklistRow.project_id == project_id, BlocklistRow.name.in_(list(names))
    )
    return set((await session.execute(query)).scalars())


async def count_blocklists(session: AsyncSession, *, project_id: str) -> int:
    query = select(func.count()).where(BlocklistRow.project_id == project_id)
    return int((await session.execute(query)).scalar_one())


async def count_items(session: AsyncSession, *, blocklist_id: str) -> int:
    query = select(func.count()).where(BlocklistItemRow.blocklist_id == blocklist_id)
    return int((await session.execute(query)).scalar_one())


async def create_blocklist(
    session: AsyncSession, *, project_id: str, name: str, description: str | None
) -> BlocklistRow:
    """Raises BlocklistExistsError if the project already has a blocklist of that name."""
    if await get_blocklist(session, project_id=project_id, name=name) is not None:
        raise BlocklistExistsError(name)
    now = datetime.now(UTC)
    row = BlocklistRow(
        id=new_blocklist_id(),
        project_id=project_id,
        name=name,
        description=description,
        created_at=now,
        updated_at=now,
    )
    try:
        # A savepoint, so that losing a race to the same name leaves the transaction usable.
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        if await get_blocklist(session, project_id=project_id, name=name) is not None:
            raise BlocklistExistsError(name) from None
        raise
    return row


async def set_description(
    session: AsyncSession, *, blocklist: BlocklistRow, description: str | None
) -> None:
    blocklist.description = description
    _touch(blocklist)
    await session.flush()


async def delete_blocklist(session: AsyncSession, *, blocklist: BlocklistRow) -> None:
    await session.delete(blocklist)  # its items go with it (ON DELETE CASCADE)
    await session.flush()


async def add_items(
    session: AsyncSession, *, blocklist: BlocklistRow, items: Sequence[NewItem]
) -> list[BlocklistItemRow]:
    now = datetime.now(UTC)
    rows = [
        BlocklistItemRow(
            id=new_item_id(),
            blocklist_id=blocklist.id,
            pattern=item.pattern,
            is_regex=item.is_regex,
            # A microsecond apart, so that listing keeps the order the items were given in.
            created_at=now + index * _ONE_TICK,
        )
        for index, item in enumerate(items)
    ]
    session.add_all(rows)
    _touch(blocklist)
    await session.flush()
    return rows


async def list_items(session: AsyncSession, *, blocklist_id: str) -> list[BlocklistItemRow]:
    query = (
        select(BlocklistItemRow)
        .where(BlocklistItemRow.blocklist_id == blocklist_id)
        .order_by(BlocklistItemRow.created_at, BlocklistItemRow.id)
    )
    return list((await session.execute(query)).scalars())


async def get_item(
    session: AsyncSession, *, blocklist_id: str, item_id: str
) -> BlocklistItemRow | None:
    if not isinstance(item_id, str) or not _PLAUSIBLE_ID.fullmatch(item_id):
        return None
    item = await session.get(BlocklistItemRow, item_id)
    return item if item is not None and item.blocklist_id == blocklist_id else None


async def remove_item(
    session: AsyncSession, *, blocklist: BlocklistRow, item: BlocklistItemRow
) -> None:
    await session.delete(item)
    _touch(blocklist)
    await session.flush()


def _touch(blocklist: BlocklistRow) -> None:
    # Strictly later than before: a cached compiled list is reused while updated_at is unchanged.
    blocklist.updated_at = max(datetime.now(UTC), aware(blocklist.updated_at) + _ONE_TICK)


def _stamp(moment: datetime) -> int:
    return int(aware(moment).timestamp())


def blocklist_dict(blocklist: BlocklistRow, item_count: int) -> dict[str, Any]:
    """The blocklist as the API shows it; its name is its id within the project."""
    return {
        "id": blocklist.name,
        "object": "blocklist",
        "blocklist_id": blocklist.id,
        "project_id": blocklist.project_id,
        "description": blocklist.description,
        "created_at": _stamp(blocklist.created_at),
        "updated_at": _stamp(blocklist.updated_at),
        "item_count": item_count,
    }


def item_dict(item: BlocklistItemRow) -> dict[str, Any]:
    return {
        "id": item.id,
        "object": "blocklist_item",
        "pattern": item.pattern,
        "is_regex": item.is_regex,
        "created_at": _stamp(item.created_at),
    }
