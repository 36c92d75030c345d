"""Deployments in the control-plane database: one row per (project, name).

Every function takes the caller's session and runs inside its transaction, so that a change and
its audit event commit together. Rows are turned into ``Deployment`` values, whose own checks
apply the same to the API, the CLI and whatever is read back.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Unpack

from sqlalchemy import Row, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.deployments.errors import DeploymentExistsError, DeploymentNotFoundError
from ceruleum.deployments.model import (
    Deployment,
    DeploymentChanges,
    SamplingDefaults,
    is_valid_name,
    parse_policy,
)
from ceruleum.safety.policy import DEFAULT_POLICY
from ceruleum.store.api_keys import aware
from ceruleum.store.tables import DeploymentRow


def new_deployment_id() -> str:
    return "dep_" + secrets.token_hex(12)


async def get_deployment(session: AsyncSession, *, project_id: str, name: str) -> Deployment | None:
    row = await _find_row(session, project_id=project_id, name=name)
    return None if row is None else deployment_from_row(row)


async def list_deployments(session: AsyncSession, *, project_id: str | None) -> list[Deployment]:
    """A project's deployments by name; ``None`` lists every project's (the platform admin)."""
    query = select(DeploymentRow).order_by(DeploymentRow.project_id, DeploymentRow.name)
    if project_id is not None:
        query = query.where(DeploymentRow.project_id == project_id)
    return [deployment_from_row(row) for row in (await session.execute(query)).scalars()]


async def create_deployment(session: AsyncSession, *, deployment: Deployment) -> Deployment:
    """Raises DeploymentExistsError if the project already has a deployment of that name."""
    key = {"project_id": deployment.project_id, "name": deployment.name}
    if await _find_row(session, **key) is not None:
        raise DeploymentExistsError(deployment.name)
    row = DeploymentRow(id=new_deployment_id(), **key)
    _copy_into(row, deployment)
    try:
        # A savepoint, so that losing a race to the same name leaves the transaction usable.
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        if await _find_row(session, **key) is not None:
            raise DeploymentExistsError(deployment.name) from None
        raise  # not the name: e.g. a project that does not exist
    return deployment_from_row(row)


async def update_deployment(
    session: AsyncSession, *, project_id: str, name: str, **changes: Unpack[DeploymentChanges]
) -> tuple[Deployment, Deployment]:
    """(before, after). ``updated_at`` becomes now; without changes nothing is written."""
    row = await _find_row(session, project_id=project_id, name=name)
    if row is None:
        raise DeploymentNotFoundError(name)
    before = deployment_from_row(row)
    if not changes:
        return before, before
    now = max(int(time.time()), before.created_at)
    # replace() re-runs the Deployment's checks before anything is written.
    after = dataclasses.replace(before, **changes, updated_at=now)
    _copy_into(row, after)
    await session.flush()
    return before, after


async def delete_deployment(session: AsyncSession, *, project_id: str, name: str) -> Deployment:
    """The deployment as it was; DeploymentNotFoundError if there was none."""
    row = await _find_row(session, project_id=project_id, name=name)
    if row is None:
        raise DeploymentNotFoundError(name)
    deleted = deployment_from_row(row)
    await session.delete(row)
    await session.flush()
    return deleted


async def _find_row(session: AsyncSession, *, project_id: str, name: str) -> DeploymentRow | None:
    if not is_valid_name(name):
        return None  # never stored, and not sent to the database (a NUL byte errors on Postgres)
    query = select(DeploymentRow).where(
        DeploymentRow.project_id == project_id, DeploymentRow.name == name
    )
    return (await session.execute(query)).scalar_one_or_none()


def _copy_into(row: DeploymentRow, deployment: Deployment) -> None:
    row.model = deployment.model
    row.created_at = datetime.fromtimestamp(deployment.created_at, UTC)
    row.updated_at = datetime.fromtimestamp(deployment.updated_at, UTC)
    row.defaults = deployment.defaults.to_dict()
    row.max_tokens_limit = deployment.max_tokens_limit
    row.tokens_per_minute = deployment.tokens_per_minute
    row.requests_per_minute = deployment.requests_per_minute
    policy = deployment.content_filter
    row.content_filter = None if policy == DEFAULT_POLICY else policy.to_dict()


def deployment_from_row(row: DeploymentRow | Row[Any]) -> Deployment:
    """An ORM row or a Core row of the deployments table as a Deployment."""
    defaults = row.defaults or {}
    return Deployment(
        name=row.name,
        model=row.model,
        created_at=int(aware(row.created_at).timestamp()),
        updated_at=int(aware(row.updated_at).timestamp()),
        project_id=row.project_id,
        defaults=SamplingDefaults(
            temperature=defaults.get("temperature"),
            top_p=defaults.get("top_p"),
            max_tokens=defaults.get("max_tokens"),
        ),
        max_tokens_limit=row.max_tokens_limit,
        tokens_per_minute=row.tokens_per_minute,
        requests_per_minute=row.requests_per_minute,
        content_filter=parse_policy(row.content_filter),
    )
