"""deployments.repository on SQLite and PostgreSQL: one row per (project, name)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.deployments import (
    Deployment,
    DeploymentExistsError,
    DeploymentNotFoundError,
    InvalidDeploymentError,
    SamplingDefaults,
    repository,
)
from ceruleum.deployments.repository import (
    create_deployment,
    delete_deployment,
    get_deployment,
    list_deployments,
    update_deployment,
)
from ceruleum.store import Database, DeploymentRow
from ceruleum.store.projects import create_project

MODEL = "smollm2-135m-instruct"
CREATED = 1_700_000_000


def make(project_id: str, name: str = "chat", **fields: object) -> Deployment:
    return Deployment.new(name, MODEL, project_id=project_id, now=CREATED, **fields)  # type: ignore[arg-type]


async def two_projects(database: Database) -> tuple[str, str]:
    async with database.session() as session:
        a = await create_project(session, name="alpha")
        b = await create_project(session, name="beta")
        return a.id, b.id


async def test_create_then_get_round_trips_every_field(database: Database) -> None:
    a, _ = await two_projects(database)
    deployment = make(
        a,
        defaults=SamplingDefaults(temperature=0.2, top_p=0.9, max_tokens=50),
        max_tokens_limit=100,
        tokens_per_minute=10_000,
        requests_per_minute=7,
    )
    async with database.session() as session:
        assert await create_deployment(session, deployment=deployment) == deployment
    async with database.session() as session:
        assert await get_deployment(session, project_id=a, name="chat") == deployment


async def test_get_is_scoped_to_the_project(database: Database) -> None:
    a, b = await two_projects(database)
    async with database.session() as session:
        await create_deployment(session, deployment=make(a))
    async with database.session() as session:
        assert await get_deployment(session, project_id=b, name="chat") is None
        assert await get_deployment(session, project_id=a, name="nope") is None
        # Never a valid name, so never sent to the database (Postgres refuses NUL bytes).
        assert await get_deployment(session, project_id=a, name="chat\x00") is None
        assert await get_deployment(session, project_id=a, name="x" * 10_000) is None


async def test_list_by_project_and_all(database: Database) -> None:
    a, b = await two_projects(database)
    async with database.session() as session:
        for deployment in (make(a, "b-chat"), make(a, "a-chat"), make(b, "chat")):
            await create_deployment(session, deployment=deployment)
    async with database.session() as session:
        assert [d.name for d in await list_deployments(session, project_id=a)] == [
            "a-chat",
            "b-chat",
        ]
        assert [d.name for d in await list_deployments(session, project_id=b)] == ["chat"]
        everything = await list_deployments(session, project_id=None)
    assert sorted((d.project_id, d.name) for d in everything) == sorted(
        [(a, "a-chat"), (a, "b-chat"), (b, "chat")]
    )


async def test_same_name_in_two_projects_but_not_twice_in_one(database: Database) -> None:
    a, b = await two_projects(database)
    async with database.session() as session:
        await create_deployment(session, deployment=make(a, max_tokens_limit=10))
        await create_deployment(session, deployment=make(b))
    with pytest.raises(DeploymentExistsError, match="'chat' already exists"):
        async with database.session() as session:
            await create_deployment(session, deployment=make(a))
    async with database.session() as session:
        found = await get_deployment(session, project_id=a, name="chat")
    assert found is not None and found.max_tokens_limit == 10


async def test_a_lost_race_is_still_exists_and_the_transaction_goes_on(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two creators both pass the existence check; the unique constraint decides."""
    a, _ = await two_projects(database)
    async with database.session() as session:
        await create_deployment(session, deployment=make(a))
    real_find = repository._find_row
    calls = 0

    async def stale_first_check(
        session: AsyncSession, *, project_id: str, name: str
    ) -> DeploymentRow | None:
        nonlocal calls
        calls += 1  # the first check ran before the other creator committed
        return None if calls == 1 else await real_find(session, project_id=project_id, name=name)

    monkeypatch.setattr(repository, "_find_row", stale_first_check)
    async with database.session() as session:
        with pytest.raises(DeploymentExistsError):
            await create_deployment(session, deployment=make(a))
        # The savepoint kept the transaction usable.
        await create_deployment(session, deployment=make(a, "other"))
    async with database.session() as session:
        names = [d.name for d in await list_deployments(session, project_id=a)]
    assert names == ["chat", "other"]


async def test_create_in_a_missing_project_fails(database: Database) -> None:
    with pytest.raises(IntegrityError):
        async with database.session() as session:
            await create_deployment(session, deployment=make("proj_missing"))


async def test_update_returns_before_and_after(database: Database) -> None:
    a, _ = await two_projects(database)
    async with database.session() as session:
        created = await create_deployment(session, deployment=make(a))
    async with database.session() as session:
        before, after = await update_deployment(
            session,
            project_id=a,
            name="chat",
            defaults=SamplingDefaults(top_p=0.5),
            max_tokens_limit=64,
            tokens_per_minute=2_000,
            requests_per_minute=3,
        )
    assert before == created
    assert after.defaults == SamplingDefaults(top_p=0.5)
    assert (after.max_tokens_limit, after.tokens_per_minute, after.requests_per_minute) == (
        64,
        2_000,
        3,
    )
    assert after.created_at == CREATED
    assert CREATED < after.updated_at <= int(time.time())
    async with database.session() as session:
        assert await get_deployment(session, project_id=a, name="chat") == after


async def test_update_without_changes_writes_nothing(database: Database) -> None:
    a, _ = await two_projects(database)
    async with database.session() as session:
        created = await create_deployment(session, deployment=make(a))
    async with database.session() as session:
        assert await update_deployment(session, project_id=a, name="chat") == (created, created)


async def test_invalid_update_is_refused_before_writing(database: Database) -> None:
    a, _ = await two_projects(database)
    async with database.session() as session:
        created = await create_deployment(
            session, deployment=make(a, defaults=SamplingDefaults(max_tokens=100))
        )
    with pytest.raises(InvalidDeploymentError) as info:
        async with database.session() as session:
            await update_deployment(session, project_id=a, name="chat", max_tokens_limit=50)
    assert info.value.param == "defaults.max_tokens"
    with pytest.raises(InvalidDeploymentError) as info:
        async with database.session() as session:
            await update_deployment(session, project_id=a, name="chat", tokens_per_minute=0)
    assert info.value.param == "tokens_per_minute"
    async with database.session() as session:
        assert await get_deployment(session, project_id=a, name="chat") == created


async def test_update_and_delete_of_another_projects_deployment_are_not_found(
    database: Database,
) -> None:
    a, b = await two_projects(database)
    async with database.session() as session:
        await create_deployment(session, deployment=make(a))
    async with database.session() as session:
        with pytest.raises(DeploymentNotFoundError):
            await update_deployment(session, project_id=b, name="chat", max_tokens_limit=5)
        with pytest.raises(DeploymentNotFoundError):
            await delete_deployment(session, project_id=b, name="chat")
    async with database.session() as session:
        assert await get_deployment(session, project_id=a, name="chat") is not None


async def test_delete_returns_what_was_deleted(database: Database) -> None:
    a, _ = await two_projects(database)
    async with database.session() as session:
        created = await create_deployment(session, deployment=make(a))
    async with database.session() as session:
        assert await delete_deployment(session, project_id=a, name="chat") == created
    async with database.session() as session:
        assert await get_deployment(session, project_id=a, name="chat") is None
        with pytest.raises(DeploymentNotFoundError):
            await delete_deployment(session, project_id=a, name="chat")
