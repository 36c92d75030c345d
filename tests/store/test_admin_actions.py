"""gateway.admin and gateway.access on SQLite and PostgreSQL: every change with its audit
event in one transaction, and who may see or manage which project."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ceruleum.deployments import Deployment, DeploymentNotFoundError, SamplingDefaults
from ceruleum.deployments.repository import get_deployment
from ceruleum.gateway import admin
from ceruleum.gateway.access import managed_project, project_key, require_admin, visible_project
from ceruleum.gateway.errors import PermissionDeniedError
from ceruleum.gateway.keys import hash_key
from ceruleum.gateway.principal import Principal, admin_principal
from ceruleum.store import Database
from ceruleum.store.api_keys import aware, get_key, key_dict, list_keys
from ceruleum.store.audit import audit_dict, list_audit
from ceruleum.store.errors import (
    ApiKeyNotFoundError,
    InvalidFieldError,
    ProjectExistsError,
    ProjectNameError,
    ProjectNotFoundError,
)
from ceruleum.store.projects import get_project, project_dict

MODEL = "smollm2-135m-instruct"


async def events(database: Database) -> list[dict[str, object]]:
    async with database.session() as session:
        return [audit_dict(event) for event in reversed(await list_audit(session))]


async def new_project(database: Database, name: str = "alpha") -> str:
    async with database.session() as session:
        return (await admin.create_project(session, actor="admin", name=name)).id


# --- projects --------------------------------------------------------------------------------


async def test_project_create_and_delete_are_audited(database: Database) -> None:
    project_id = await new_project(database)
    async with database.session() as session:
        project = await get_project(session, project_id=project_id)
        assert project is not None
        shown = project_dict(project)
    assert shown["name"] == "alpha" and shown["object"] == "project"
    assert abs(int(str(shown["created_at"])) - datetime.now(UTC).timestamp()) < 60
    async with database.session() as session:
        await admin.delete_project(session, actor="cli", project_id=project_id)
    created, deleted = await events(database)
    assert created["action"] == "project.create" and created["actor"] == "admin"
    assert created["before"] is None and created["after"] == shown
    assert deleted["action"] == "project.delete" and deleted["actor"] == "cli"
    assert deleted["before"] == shown and deleted["after"] is None
    assert deleted["target_id"] == deleted["project_id"] == project_id


async def test_duplicate_and_invalid_project_names(database: Database) -> None:
    await new_project(database)
    with pytest.raises(ProjectExistsError):
        await new_project(database)
    for bad in ("", "-x", "a b", "x" * 65, "a\n"):
        with pytest.raises(ProjectNameError):
            await new_project(database, bad)
    assert len(await events(database)) == 1


async def test_deleting_a_project_takes_its_keys_and_deployments(database: Database) -> None:
    project_id = await new_project(database)
    async with database.session() as session:
        key, _ = await admin.create_key(
            session, actor="admin", project_id=project_id, name="ci", role="member"
        )
        await admin.create_deployment(
            session, actor="admin", deployment=Deployment.new("chat", MODEL, project_id=project_id)
        )
    async with database.session() as session:
        await admin.delete_project(session, actor="admin", project_id=project_id)
    async with database.session() as session:
        assert await get_key(session, key_id=key.id) is None
        assert await get_deployment(session, project_id=project_id, name="chat") is None
        with pytest.raises(ProjectNotFoundError):
            await admin.delete_project(session, actor="admin", project_id=project_id)
    # The log outlives what it describes.
    assert [e["action"] for e in await events(database)][-1] == "project.delete"


async def test_implausible_ids_are_simply_not_found(database: Database) -> None:
    async with database.session() as session:
        for bad in ("proj\x00", "x" * 41, "", "proj_a' OR '1'='1"):
            assert await get_project(session, project_id=bad) is None
            assert await get_key(session, key_id=bad) is None


# --- keys ------------------------------------------------------------------------------------


async def test_key_secret_is_returned_once_and_stored_only_as_a_hash(database: Database) -> None:
    project_id = await new_project(database)
    expires = datetime.now(UTC) + timedelta(days=3)
    async with database.session() as session:
        _, new = await admin.create_key(
            session,
            actor="admin",
            project_id=project_id,
            name="ci",
            role="owner",
            expires_at=expires,
            allowed_deployments=["chat"],
            tokens_per_minute=1000,
            requests_per_minute=5,
        )
    assert new.secret.startswith(new.prefix + ".")
    async with database.session() as session:
        [stored] = await list_keys(session, project_id=project_id)
    assert stored.secret_hash == hash_key(new.secret) != new.secret
    shown = key_dict(stored)
    assert shown["expires_at"] == int(expires.timestamp())
    assert (shown["allowed_deployments"], shown["tokens_per_minute"]) == (["chat"], 1000)
    [event] = (await events(database))[1:]
    assert event["action"] == "key.create" and event["after"] == shown
    log = json.dumps(await events(database))
    assert new.secret not in log and stored.secret_hash not in log


async def test_key_update_and_revoke_are_audited(database: Database) -> None:
    project_id = await new_project(database)
    async with database.session() as session:
        key, _ = await admin.create_key(
            session, actor="admin", project_id=project_id, name="ci", role="reader"
        )
    async with database.session() as session:
        row = await project_key(session, project_id=project_id, key_id=key.id)
        await admin.update_key(
            session, actor=key.id, key=row, role="member", tokens_per_minute=50, expires_at=None
        )
    async with database.session() as session:
        row = await project_key(session, project_id=project_id, key_id=key.id)
        first = await admin.revoke_key(session, actor="admin", key=row)
        revoked_at = first.revoked_at
    async with database.session() as session:
        row = await project_key(session, project_id=project_id, key_id=key.id)
        again = await admin.revoke_key(session, actor="admin", key=row)
        assert aware(again.revoked_at) == aware(revoked_at)  # idempotent
    _, _, update, revoke, _ = await events(database)
    assert update["action"] == "key.update" and update["actor"] == key.id
    assert isinstance(update["before"], dict) and isinstance(update["after"], dict)
    assert (update["before"]["role"], update["after"]["role"]) == ("reader", "member")
    assert update["after"]["tokens_per_minute"] == 50
    assert isinstance(revoke["before"], dict) and isinstance(revoke["after"], dict)
    assert revoke["before"]["revoked_at"] is None and revoke["after"]["revoked_at"] is not None


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"role": "admin"}, "role"),
        ({"role": None}, "role"),
        ({"tokens_per_minute": 0}, "tokens_per_minute"),
        ({"requests_per_minute": True}, "requests_per_minute"),
        ({"allowed_deployments": [""]}, "allowed_deployments"),
        ({"allowed_deployments": ["x"] * 257}, "allowed_deployments"),
    ],
)
async def test_invalid_key_fields_change_nothing(
    database: Database, change: dict[str, object], param: str
) -> None:
    project_id = await new_project(database)
    async with database.session() as session:
        key, _ = await admin.create_key(
            session, actor="admin", project_id=project_id, name="ci", role="reader"
        )
    with pytest.raises(InvalidFieldError) as info:
        async with database.session() as session:
            row = await project_key(session, project_id=project_id, key_id=key.id)
            await admin.update_key(session, actor="admin", key=row, **change)  # type: ignore[arg-type]
    assert info.value.param == param
    async with database.session() as session:
        row = await project_key(session, project_id=project_id, key_id=key.id)
        assert (row.name, row.role, row.tokens_per_minute) == ("ci", "reader", None)
    assert len(await events(database)) == 2  # project.create, key.create


async def test_keys_need_an_existing_project(database: Database) -> None:
    with pytest.raises(ProjectNotFoundError):
        async with database.session() as session:
            await admin.create_key(
                session, actor="admin", project_id="proj_missing", name="ci", role="owner"
            )


# --- deployments -----------------------------------------------------------------------------


async def test_deployment_changes_are_audited(database: Database) -> None:
    project_id = await new_project(database)
    deployment = Deployment.new("chat", MODEL, project_id=project_id, tokens_per_minute=1000)
    async with database.session() as session:
        created = await admin.create_deployment(session, actor="admin", deployment=deployment)
    async with database.session() as session:
        updated = await admin.update_deployment(
            session,
            actor="admin",
            project_id=project_id,
            name="chat",
            defaults=SamplingDefaults(temperature=0.5),
        )
    async with database.session() as session:
        await admin.delete_deployment(session, actor="admin", project_id=project_id, name="chat")
        with pytest.raises(DeploymentNotFoundError):
            await admin.delete_deployment(
                session, actor="admin", project_id=project_id, name="chat"
            )
    _, create, update, delete = await events(database)
    assert (create["before"], create["after"]) == (None, created.to_dict())
    assert (update["before"], update["after"]) == (created.to_dict(), updated.to_dict())
    assert (delete["before"], delete["after"]) == (updated.to_dict(), None)
    assert {e["target_type"] for e in (create, update, delete)} == {"deployment"}
    assert {e["project_id"] for e in (create, update, delete)} == {project_id}


async def test_a_deployment_needs_an_existing_project(database: Database) -> None:
    with pytest.raises(ProjectNotFoundError):
        async with database.session() as session:
            await admin.create_deployment(
                session, actor="admin", deployment=Deployment.new("chat", MODEL, project_id="p_x")
            )
    assert await events(database) == []


# --- access ----------------------------------------------------------------------------------


def key_principal(project_id: str, role: str) -> Principal:
    return Principal(key_id="key_x", project_id=project_id, role=role)  # type: ignore[arg-type]


async def test_who_sees_and_manages_what(database: Database) -> None:
    a = await new_project(database, "alpha")
    b = await new_project(database, "beta")
    async with database.session() as session:
        for principal in (admin_principal(), key_principal(a, "owner")):
            assert (await managed_project(session, principal=principal, project_id=a)).id == a
        for role in ("member", "reader"):
            principal = key_principal(a, role)
            assert (await visible_project(session, principal=principal, project_id=a)).id == a
            with pytest.raises(PermissionDeniedError):
                await managed_project(session, principal=principal, project_id=a)
        # Another project's id reads exactly like one that does not exist, for every role.
        for role in ("owner", "member", "reader"):
            principal = key_principal(a, role)
            for project_id in (b, "proj_missing"):
                with pytest.raises(ProjectNotFoundError) as info:
                    await managed_project(session, principal=principal, project_id=project_id)
                assert str(info.value) == f"The project '{project_id}' does not exist."
        with pytest.raises(ProjectNotFoundError):
            await visible_project(session, principal=admin_principal(), project_id="proj_missing")
        require_admin(admin_principal(), "do it")
        with pytest.raises(PermissionDeniedError):
            require_admin(key_principal(a, "owner"), "do it")


async def test_another_projects_key_is_not_found(database: Database) -> None:
    a = await new_project(database, "alpha")
    b = await new_project(database, "beta")
    async with database.session() as session:
        key, _ = await admin.create_key(
            session, actor="admin", project_id=b, name="k", role="owner"
        )
    async with database.session() as session:
        assert (await project_key(session, project_id=b, key_id=key.id)).id == key.id
        for key_id in (key.id, "key_missing"):
            with pytest.raises(ApiKeyNotFoundError):
                await project_key(session, project_id=a, key_id=key_id)
