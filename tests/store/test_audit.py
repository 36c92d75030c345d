"""The audit log on SQLite and PostgreSQL: written in the change's transaction, read newest
first, never holding a secret."""

from __future__ import annotations

import pytest

from ceruleum.store import Database
from ceruleum.store.audit import (
    SecretInAuditError,
    audit_dict,
    get_audit,
    list_audit,
    record_audit,
)


async def record(database: Database, n: int, *, project_id: str | None = "proj_a") -> None:
    async with database.session() as session:
        await record_audit(
            session,
            actor="admin",
            action="deployment.update",
            target_type="deployment",
            target_id=f"dep-{n}",
            project_id=project_id,
            before={"id": f"dep-{n}", "max_tokens_limit": None},
            after={"id": f"dep-{n}", "max_tokens_limit": n},
        )


async def test_record_and_read_back(database: Database) -> None:
    await record(database, 1)
    async with database.session() as session:
        [event] = await list_audit(session)
        again = await get_audit(session, event_id=event.id)
    assert again is not None
    shown = audit_dict(event)
    assert shown == audit_dict(again)
    assert set(shown) == {
        "id",
        "object",
        "at",
        "actor",
        "action",
        "target_type",
        "target_id",
        "project_id",
        "before",
        "after",
    }
    assert shown["object"] == "audit_event"
    assert (shown["actor"], shown["action"], shown["target_id"]) == (
        "admin",
        "deployment.update",
        "dep-1",
    )
    assert shown["before"] == {"id": "dep-1", "max_tokens_limit": None}
    assert shown["after"] == {"id": "dep-1", "max_tokens_limit": 1}
    assert isinstance(shown["at"], int) and shown["at"] > 1_700_000_000


async def test_newest_first_with_paging_and_project_filter(database: Database) -> None:
    for n in range(5):
        await record(database, n, project_id="proj_a" if n % 2 == 0 else "proj_b")
    async with database.session() as session:
        everything = await list_audit(session)
        assert [e.target_id for e in everything] == [f"dep-{n}" for n in (4, 3, 2, 1, 0)]
        first = await list_audit(session, limit=2)
        second = await list_audit(session, limit=2, before_id=first[-1].id)
        assert [e.target_id for e in first + second] == ["dep-4", "dep-3", "dep-2", "dep-1"]
        only_a = await list_audit(session, project_id="proj_a")
        assert [e.target_id for e in only_a] == ["dep-4", "dep-2", "dep-0"]


async def test_an_event_rolls_back_with_its_change(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.session() as session:
            await record_audit(
                session,
                actor="admin",
                action="project.create",
                target_type="project",
                target_id="proj_a",
                project_id="proj_a",
                before=None,
                after={"id": "proj_a"},
            )
            raise RuntimeError("the change failed")
    async with database.session() as session:
        assert await list_audit(session) == []


@pytest.mark.parametrize(
    "state",
    [
        {"secret": "cer-x.y"},
        {"secret_hash": "0" * 64},
        {"nested": {"items": [{"Secret_Hash": "x"}]}},
    ],
)
async def test_secrets_never_reach_the_log(database: Database, state: dict[str, object]) -> None:
    with pytest.raises(SecretInAuditError):
        async with database.session() as session:
            await record_audit(
                session,
                actor="admin",
                action="key.create",
                target_type="api_key",
                target_id="key_a",
                project_id="proj_a",
                before=None,
                after=state,
            )
    async with database.session() as session:
        assert await list_audit(session) == []
