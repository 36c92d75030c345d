"""The audit log: who changed what, when, with the object before and after. Append-only.

``record_audit`` runs in the caller's transaction, so an event exists exactly when its change
was committed. Nothing here updates or deletes an event.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.store.api_keys import aware
from ceruleum.store.tables import AuditEvent

MAX_LIST_LIMIT = 1000  # the most one API page returns
MAX_EVENT_ID = 2**31 - 1  # the id column is a 32-bit integer on Postgres
# Field names that would mean a secret reached the log; events must carry the API's objects
# (key_dict, project_dict, Deployment.to_dict), which never include them.
_SECRET_FIELDS = frozenset({"secret", "secret_hash", "key", "api_key", "password"})


class SecretInAuditError(ValueError):
    """A programming error: an audit object carried a secret-looking field."""


async def record_audit(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    project_id: str | None,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> AuditEvent:
    """Add one event to the session's transaction (committed, or rolled back, with it)."""
    for state in (before, after):
        if state is not None:
            _refuse_secrets(state)
    event = AuditEvent(
        at=datetime.now(UTC),
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        project_id=project_id,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
    )
    session.add(event)
    await session.flush()
    return event


async def list_audit(
    session: AsyncSession,
    *,
    project_id: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditEvent]:
    """Newest first. Page with ``before_id`` = the last id of the previous page."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, limit))
    if project_id is not None:
        query = query.where(AuditEvent.project_id == project_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list((await session.execute(query)).scalars())


async def get_audit(session: AsyncSession, *, event_id: int) -> AuditEvent | None:
    return await session.get(AuditEvent, event_id)


def audit_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "object": "audit_event",
        "at": int(aware(event.at).timestamp()),
        "actor": event.actor,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "project_id": event.project_id,
        "before": event.before,
        "after": event.after,
    }


def _refuse_secrets(state: Mapping[str, Any]) -> None:
    for name in _field_names(state):
        if name.lower() in _SECRET_FIELDS:
            raise SecretInAuditError(f"audit objects must not contain a {name!r} field")


def _field_names(value: object) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for name, sub in item.items():
                yield str(name)
                stack.append(sub)
        elif isinstance(item, list | tuple):
            stack.extend(item)
