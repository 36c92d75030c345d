"""Admin actions on a project's custom blocklists, each with its audit event.

As in ``admin.py``, the REST routes and the CLI both call these, so a change and its audit event
commit in one transaction whichever door it came through; names, descriptions, patterns and
Azure's limits are checked here, the same for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.deployments.repository import list_deployments
from ceruleum.gateway.admin import require_project
from ceruleum.safety.blocklist import BlocklistPatternError, check_pattern
from ceruleum.safety.policy import BLOCKLIST_NAME
from ceruleum.store import blocklists
from ceruleum.store.audit import record_audit
from ceruleum.store.blocklists import NewItem, blocklist_dict, item_dict
from ceruleum.store.errors import (
    BlocklistInUseError,
    BlocklistItemNotFoundError,
    BlocklistNotFoundError,
    InvalidFieldError,
    LimitExceededError,
)
from ceruleum.store.tables import BlocklistItemRow, BlocklistRow

# Azure OpenAI's limits.
MAX_BLOCKLISTS_PER_PROJECT = 100
MAX_ITEMS_PER_BLOCKLIST = 10_000
DESCRIPTION_MAX_LENGTH = 512


async def require_blocklist(session: AsyncSession, *, project_id: str, name: str) -> BlocklistRow:
    blocklist = await blocklists.get_blocklist(session, project_id=project_id, name=name)
    if blocklist is None:
        raise BlocklistNotFoundError(name)
    return blocklist


async def show_blocklist(session: AsyncSession, *, project_id: str, name: str) -> dict[str, Any]:
    """The blocklist as the API shows it, with its items."""
    blocklist = await require_blocklist(session, project_id=project_id, name=name)
    items = await blocklists.list_items(session, blocklist_id=blocklist.id)
    return _with_items(blocklist, items)


async def create_blocklist(
    session: AsyncSession,
    *,
    actor: str,
    project_id: str,
    name: str,
    description: str | None = None,
    items: Sequence[NewItem] = (),
) -> tuple[BlocklistRow, list[BlocklistItemRow]]:
    """The new blocklist and its first items: two events when there are items (create, add)."""
    await require_project(session, project_id=project_id)
    check_name(name)
    check_description(description)
    _check_room(name, present=0, adding=len(items))  # before compiling what may be thousands
    check_items(items)
    if await blocklists.count_blocklists(session, project_id=project_id) >= (
        MAX_BLOCKLISTS_PER_PROJECT
    ):
        raise LimitExceededError(
            f"A project may have at most {MAX_BLOCKLISTS_PER_PROJECT} blocklists; delete one first."
        )
    blocklist = await blocklists.create_blocklist(
        session, project_id=project_id, name=name, description=description
    )
    await _audit(session, actor, "blocklist.create", blocklist, None, blocklist_dict(blocklist, 0))
    added: list[BlocklistItemRow] = []
    if items:
        added = await blocklists.add_items(session, blocklist=blocklist, items=items)
        await _audit_items(session, actor, "blocklist.item.add", blocklist, added)
    return blocklist, added


async def update_blocklist(
    session: AsyncSession, *, actor: str, project_id: str, name: str, description: str | None
) -> dict[str, Any]:
    """Sets the description (the only field that changes; the name is the blocklist's id)."""
    check_description(description)
    blocklist = await require_blocklist(session, project_id=project_id, name=name)
    count = await blocklists.count_items(session, blocklist_id=blocklist.id)
    before = blocklist_dict(blocklist, count)
    await blocklists.set_description(session, blocklist=blocklist, description=description)
    after = blocklist_dict(blocklist, count)
    await _audit(session, actor, "blocklist.update", blocklist, before, after)
    return after


async def delete_blocklist(
    session: AsyncSession, *, actor: str, project_id: str, name: str
) -> dict[str, Any]:
    """Refused (BlocklistInUseError) while a deployment's policy attaches the blocklist."""
    blocklist = await require_blocklist(session, project_id=project_id, name=name)
    for deployment in await list_deployments(session, project_id=project_id):
        if name in deployment.content_filter.blocklist_names:
            raise BlocklistInUseError(name, deployment.name)
    before = _with_items(blocklist, await blocklists.list_items(session, blocklist_id=blocklist.id))
    await blocklists.delete_blocklist(session, blocklist=blocklist)
    await _audit(session, actor, "blocklist.delete", blocklist, before, None)
    return before


async def add_items(
    session: AsyncSession, *, actor: str, project_id: str, name: str, items: Sequence[NewItem]
) -> list[BlocklistItemRow]:
    if not items:
        raise InvalidFieldError("Give at least one item to add.", param="items")
    blocklist = await require_blocklist(session, project_id=project_id, name=name)
    present = await blocklists.count_items(session, blocklist_id=blocklist.id)
    _check_room(name, present=present, adding=len(items))
    check_items(items)
    added = await blocklists.add_items(session, blocklist=blocklist, items=items)
    await _audit_items(session, actor, "blocklist.item.add", blocklist, added)
    return added


async def remove_item(
    session: AsyncSession, *, actor: str, project_id: str, name: str, item_id: str
) -> BlocklistItemRow:
    blocklist = await require_blocklist(session, project_id=project_id, name=name)
    item = await blocklists.get_item(session, blocklist_id=blocklist.id, item_id=item_id)
    if item is None:
        raise BlocklistItemNotFoundError(item_id)
    await _audit_items(session, actor, "blocklist.item.remove", blocklist, [item])
    await blocklists.remove_item(session, blocklist=blocklist, item=item)
    return item


# --- rules -----------------------------------------------------------------------------------


def check_name(name: object) -> None:
    if not isinstance(name, str) or BLOCKLIST_NAME.fullmatch(name) is None:
        raise InvalidFieldError(
            "A blocklist name is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit.",
            param="name",
        )


def check_description(description: object) -> None:
    if description is None:
        return
    if (
        not isinstance(description, str)
        or len(description) > DESCRIPTION_MAX_LENGTH
        or not _storable(description)
    ):
        raise InvalidFieldError(
            f"A description is text of at most {DESCRIPTION_MAX_LENGTH} characters.",
            param="description",
        )


def check_items(items: Sequence[NewItem]) -> None:
    """Every pattern storable and compilable; the first bad one names its index."""
    for index, item in enumerate(items):
        where = f"items.{index}"
        if not isinstance(item.is_regex, bool):
            raise InvalidFieldError("'is_regex' must be true or false.", param=f"{where}.is_regex")
        if not isinstance(item.pattern, str) or not _storable(item.pattern):
            raise InvalidFieldError(
                "A pattern is text without NUL characters.", param=f"{where}.pattern"
            )
        try:
            check_pattern(item.pattern, is_regex=item.is_regex)
        except BlocklistPatternError as exc:
            message = str(exc) if len(items) == 1 else f"Item {index}: {exc}"
            raise InvalidFieldError(message, param=f"{where}.pattern") from None


def _storable(text: str) -> bool:
    # Postgres refuses NUL in text, and lone surrogates (from argv) cannot be encoded.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _check_room(name: str, *, present: int, adding: int) -> None:
    if present + adding > MAX_ITEMS_PER_BLOCKLIST:
        raise LimitExceededError(
            f"A blocklist holds at most {MAX_ITEMS_PER_BLOCKLIST} items; '{name}' has {present}, "
            f"so at most {MAX_ITEMS_PER_BLOCKLIST - present} more can be added.",
            param="items",
        )


# --- audit -----------------------------------------------------------------------------------


def _with_items(blocklist: BlocklistRow, items: Sequence[BlocklistItemRow]) -> dict[str, Any]:
    return {**blocklist_dict(blocklist, len(items)), "items": [item_dict(i) for i in items]}


async def _audit(
    session: AsyncSession,
    actor: str,
    action: str,
    blocklist: BlocklistRow,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    await record_audit(
        session,
        actor=actor,
        action=action,
        target_type="blocklist",
        target_id=blocklist.name,
        project_id=blocklist.project_id,
        before=before,
        after=after,
    )


async def _audit_items(
    session: AsyncSession,
    actor: str,
    action: str,
    blocklist: BlocklistRow,
    items: Sequence[BlocklistItemRow],
) -> None:
    """Added items appear in ``after``, a removed one in ``before``."""
    state = {"blocklist": blocklist.name, "items": [item_dict(item) for item in items]}
    added = action == "blocklist.item.add"
    await _audit(
        session, actor, action, blocklist, None if added else state, state if added else None
    )
