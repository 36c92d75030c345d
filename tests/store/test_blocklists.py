"""Blocklists on SQLite and PostgreSQL: the repository, the admin actions with their audit
events, and the deployments' content-filter policies that attach them."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import select

from ceruleum.deployments import Deployment, InvalidDeploymentError, parse_policy
from ceruleum.deployments.repository import get_deployment
from ceruleum.gateway import admin
from ceruleum.gateway import admin_blocklists as actions
from ceruleum.safety.policy import DEFAULT_POLICY
from ceruleum.store import Database, DeploymentRow
from ceruleum.store import blocklists as repo
from ceruleum.store.api_keys import aware
from ceruleum.store.blocklists import NewItem, item_dict
from ceruleum.store.errors import (
    BlocklistExistsError,
    BlocklistInUseError,
    BlocklistItemNotFoundError,
    BlocklistNotFoundError,
    InvalidFieldError,
    LimitExceededError,
    ProjectNotFoundError,
)
from tests.store.test_admin_actions import MODEL, new_project
from tests.store.test_admin_actions import events as audit_events


async def events(database: Database) -> list[dict[str, Any]]:
    return [dict(event) for event in await audit_events(database)]


ITEMS = [NewItem("Acme Corp"), NewItem(r"\bcompetitor-\d+\b", is_regex=True)]


async def make_blocklist(
    database: Database, project_id: str, name: str = "words", items: list[NewItem] | None = None
) -> str:
    async with database.session() as session:
        blocklist, _ = await actions.create_blocklist(
            session, actor="admin", project_id=project_id, name=name, items=items or []
        )
    return blocklist.id


async def shown(database: Database, project_id: str, name: str = "words") -> dict[str, Any]:
    async with database.session() as session:
        return await actions.show_blocklist(session, project_id=project_id, name=name)


async def test_create_show_list_update_delete_are_audited(database: Database) -> None:
    project_id = await new_project(database)
    async with database.session() as session:
        blocklist, items = await actions.create_blocklist(
            session,
            actor="admin",
            project_id=project_id,
            name="words",
            description="Rivals",
            items=ITEMS,
        )
    assert blocklist.id.startswith("bl_") and all(i.id.startswith("bli_") for i in items)
    body = await shown(database, project_id)
    assert body == {
        "id": "words",
        "object": "blocklist",
        "blocklist_id": blocklist.id,
        "project_id": project_id,
        "description": "Rivals",
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "item_count": 2,
        "items": [item_dict(item) for item in items],
    }
    assert [(i["pattern"], i["is_regex"]) for i in body["items"]] == [
        ("Acme Corp", False),
        (r"\bcompetitor-\d+\b", True),
    ]
    async with database.session() as session:
        [(row, count)] = await repo.list_blocklists(session, project_id=project_id)
        assert (row.name, count) == ("words", 2)
        updated = await actions.update_blocklist(
            session, actor="cli", project_id=project_id, name="words", description=None
        )
    assert updated["description"] is None and updated["item_count"] == 2
    async with database.session() as session:
        await actions.delete_blocklist(session, actor="admin", project_id=project_id, name="words")
        assert await repo.get_blocklist(session, project_id=project_id, name="words") is None
        assert await repo.count_items(session, blocklist_id=blocklist.id) == 0  # cascaded
        with pytest.raises(BlocklistNotFoundError):
            await actions.delete_blocklist(
                session, actor="admin", project_id=project_id, name="words"
            )

    _, create, add, update, delete = await events(database)
    assert [e["action"] for e in (create, add, update, delete)] == [
        "blocklist.create",
        "blocklist.item.add",
        "blocklist.update",
        "blocklist.delete",
    ]
    assert {e["target_type"] for e in (create, add, update, delete)} == {"blocklist"}
    assert {e["target_id"] for e in (create, add, update, delete)} == {"words"}
    assert {e["project_id"] for e in (create, add, update, delete)} == {project_id}
    assert create["before"] is None and create["after"]["item_count"] == 0
    assert add["before"] is None and add["after"] == {"blocklist": "words", "items": body["items"]}
    assert update["before"]["description"] == "Rivals"
    assert update["after"] == updated and update["actor"] == "cli"
    assert delete["before"]["items"] == body["items"] and delete["after"] is None


async def test_items_are_added_and_removed(database: Database) -> None:
    project_id = await new_project(database)
    await make_blocklist(database, project_id)
    await make_blocklist(database, project_id, "other", [NewItem("elsewhere")])
    stamps = []
    async with database.session() as session:
        row = await actions.require_blocklist(session, project_id=project_id, name="words")
        stamps.append(aware(row.updated_at))
        added = await actions.add_items(
            session, actor="admin", project_id=project_id, name="words", items=ITEMS
        )
        stamps.append(aware(row.updated_at))
        again = await actions.add_items(
            session, actor="admin", project_id=project_id, name="words", items=[NewItem("third")]
        )
        stamps.append(aware(row.updated_at))
    listed = (await shown(database, project_id))["items"]
    assert [i["id"] for i in listed] == [i.id for i in [*added, *again]]
    other_item = (await shown(database, project_id, "other"))["items"][0]["id"]
    async with database.session() as session:
        removed = await actions.remove_item(
            session, actor="admin", project_id=project_id, name="words", item_id=added[0].id
        )
        assert removed.pattern == "Acme Corp"
        row = await actions.require_blocklist(session, project_id=project_id, name="words")
        stamps.append(aware(row.updated_at))
        for item_id in (added[0].id, other_item, "bli_missing", "bli\x00"):
            with pytest.raises(BlocklistItemNotFoundError):
                await actions.remove_item(
                    session, actor="admin", project_id=project_id, name="words", item_id=item_id
                )
    # Every change moves updated_at, which tells a cached compiled list to recompile.
    assert all(a < b for a, b in itertools.pairwise(stamps)), stamps
    body = await shown(database, project_id)
    assert body["item_count"] == 2
    actions_seen = [e["action"] for e in await events(database)][-4:]
    assert actions_seen == [
        "blocklist.item.add",
        "blocklist.item.add",
        "blocklist.item.add",
        "blocklist.item.remove",
    ]
    remove = (await events(database))[-1]
    assert remove["before"] == {"blocklist": "words", "items": [item_dict(removed)]}
    assert remove["after"] is None


async def test_names_are_unique_per_project(database: Database) -> None:
    a = await new_project(database, "alpha")
    b = await new_project(database, "beta")
    await make_blocklist(database, a)
    await make_blocklist(database, b)
    with pytest.raises(BlocklistExistsError):
        await make_blocklist(database, a)
    for bad in ("", "-x", "a b", "x" * 65, "a\n", "ü"):
        with pytest.raises(InvalidFieldError) as info:
            await make_blocklist(database, a, bad)
        assert info.value.param == "name"
    with pytest.raises(ProjectNotFoundError):
        await make_blocklist(database, "proj_missing")
    async with database.session() as session:
        # Another project's blocklist reads like one that does not exist.
        with pytest.raises(BlocklistNotFoundError):
            await actions.show_blocklist(session, project_id=a, name="nope")
        assert await repo.get_blocklist(session, project_id=a, name="words\x00") is None


@pytest.mark.parametrize(
    ("change", "param", "message"),
    [
        ({"items": [NewItem("(unclosed", is_regex=True)]}, "items.0.pattern", "Invalid regular"),
        ({"items": [NewItem("ok"), NewItem("x" * 129)]}, "items.1.pattern", "Item 1: A term"),
        ({"items": [NewItem("x" * 1001, is_regex=True)]}, "items.0.pattern", "1000 characters"),
        ({"items": [NewItem("   ")]}, "items.0.pattern", "non-empty"),
        ({"items": [NewItem("nul\x00")]}, "items.0.pattern", "NUL"),
        ({"items": [NewItem("ok", is_regex=1)]}, "items.0.is_regex", "true or false"),  # type: ignore[arg-type]
        ({"description": "d" * 513}, "description", "512"),
        ({"description": "bad\x00"}, "description", "512"),
    ],
)
async def test_invalid_fields_change_nothing(
    database: Database, change: dict[str, object], param: str, message: str
) -> None:
    project_id = await new_project(database)
    with pytest.raises(InvalidFieldError) as info:
        async with database.session() as session:
            await actions.create_blocklist(
                session,
                actor="admin",
                project_id=project_id,
                name="words",
                **change,  # type: ignore[arg-type]
            )
    assert info.value.param == param and message in info.value.message
    async with database.session() as session:
        assert await repo.list_blocklists(session, project_id=project_id) == []
    assert len(await events(database)) == 1  # project.create


async def test_adding_nothing_or_bad_items_changes_nothing(database: Database) -> None:
    project_id = await new_project(database)
    await make_blocklist(database, project_id, items=[NewItem("kept")])
    for items, param in (
        ([], "items"),
        ([NewItem("fine"), NewItem("[", is_regex=True)], "items.1.pattern"),
    ):
        with pytest.raises(InvalidFieldError) as info:
            async with database.session() as session:
                await actions.add_items(
                    session, actor="admin", project_id=project_id, name="words", items=items
                )
        assert info.value.param == param
    assert (await shown(database, project_id))["item_count"] == 1
    with pytest.raises(BlocklistNotFoundError):
        async with database.session() as session:
            await actions.add_items(
                session, actor="admin", project_id=project_id, name="nope", items=ITEMS
            )


async def test_azure_limits(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions, "MAX_ITEMS_PER_BLOCKLIST", 3)
    monkeypatch.setattr(actions, "MAX_BLOCKLISTS_PER_PROJECT", 2)
    project_id = await new_project(database)
    with pytest.raises(LimitExceededError) as info:
        await make_blocklist(database, project_id, items=[NewItem(f"t{i}") for i in range(4)])
    assert info.value.param == "items"
    await make_blocklist(database, project_id, items=[NewItem("a"), NewItem("b")])
    with pytest.raises(LimitExceededError) as info:
        async with database.session() as session:
            await actions.add_items(
                session,
                actor="admin",
                project_id=project_id,
                name="words",
                items=[NewItem("c"), NewItem("d")],
            )
    assert "at most 1 more" in info.value.message
    async with database.session() as session:
        await actions.add_items(
            session, actor="admin", project_id=project_id, name="words", items=[NewItem("c")]
        )
    await make_blocklist(database, project_id, "second")
    with pytest.raises(LimitExceededError) as info:
        await make_blocklist(database, project_id, "third")
    assert "at most 2 blocklists" in info.value.message
    assert (await shown(database, project_id))["item_count"] == 3


# --- deployments' policies -------------------------------------------------------------------


def chat(project_id: str, policy: object = None) -> Deployment:
    return Deployment.new("chat", MODEL, project_id=project_id, content_filter=parse_policy(policy))


async def stored_policy(database: Database, project_id: str) -> object:
    async with database.session() as session:
        query = select(DeploymentRow.content_filter).where(DeploymentRow.project_id == project_id)
        return (await session.execute(query)).scalar_one()


@pytest.mark.parametrize("source", ["prompt", "completion"])
async def test_a_policy_attaches_only_the_projects_own_blocklists(
    database: Database, source: str
) -> None:
    a = await new_project(database, "alpha")
    b = await new_project(database, "beta")
    await make_blocklist(database, b, "theirs")
    for missing in ("nope", "theirs"):
        with pytest.raises(InvalidDeploymentError) as info:
            async with database.session() as session:
                policy = {source: {"blocklists": [missing]}}
                await admin.create_deployment(session, actor="admin", deployment=chat(a, policy))
        assert info.value.param == f"content_filter.{source}.blocklists"
        assert f"'{missing}' does not exist" in info.value.message
    async with database.session() as session:
        assert await get_deployment(session, project_id=a, name="chat") is None


async def test_policies_are_stored_and_protect_their_blocklists(database: Database) -> None:
    project_id = await new_project(database)
    await make_blocklist(database, project_id)
    async with database.session() as session:
        await admin.create_deployment(session, actor="admin", deployment=chat(project_id))
    assert await stored_policy(database, project_id) is None  # NULL: the default policy

    policy = parse_policy(
        {
            "prompt": {"hate": "low", "blocklists": ["words"]},
            "completion": {"blocklists": ["words"]},
        }
    )
    async with database.session() as session:
        updated = await admin.update_deployment(
            session, actor="admin", project_id=project_id, name="chat", content_filter=policy
        )
    assert updated.content_filter == policy
    assert await stored_policy(database, project_id) == policy.to_dict()
    async with database.session() as session:
        found = await get_deployment(session, project_id=project_id, name="chat")
        assert found is not None and found.content_filter == policy

    with pytest.raises(BlocklistInUseError) as in_use:
        async with database.session() as session:
            await actions.delete_blocklist(
                session, actor="admin", project_id=project_id, name="words"
            )
    assert "'chat'" in str(in_use.value)

    # A failed update (a missing blocklist) rolls back and leaves the policy as it was.
    with pytest.raises(InvalidDeploymentError):
        async with database.session() as session:
            await admin.update_deployment(
                session,
                actor="admin",
                project_id=project_id,
                name="chat",
                content_filter=parse_policy({"completion": {"blocklists": ["gone"]}}),
            )
    assert await stored_policy(database, project_id) == policy.to_dict()

    async with database.session() as session:
        await admin.update_deployment(
            session,
            actor="admin",
            project_id=project_id,
            name="chat",
            content_filter=DEFAULT_POLICY,
        )
    assert await stored_policy(database, project_id) is None
    async with database.session() as session:
        await actions.delete_blocklist(session, actor="admin", project_id=project_id, name="words")

    updates = [e for e in await events(database) if e["action"] == "deployment.update"]
    assert updates[0]["after"]["content_filter"] == policy.to_dict()
    assert updates[1]["before"]["content_filter"] == policy.to_dict()
    assert updates[1]["after"]["content_filter"] == DEFAULT_POLICY.to_dict()


async def test_deleting_a_project_takes_its_blocklists(database: Database) -> None:
    project_id = await new_project(database)
    blocklist_id = await make_blocklist(database, project_id, items=ITEMS)
    async with database.session() as session:
        await admin.delete_project(session, actor="admin", project_id=project_id)
    async with database.session() as session:
        assert await repo.count_items(session, blocklist_id=blocklist_id) == 0
        assert await repo.count_blocklists(session, project_id=project_id) == 0
