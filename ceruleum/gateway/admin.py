"""Admin actions on projects, keys and deployments, each with its audit event (blocklists:
``admin_blocklists.py``).

The REST routes and the CLI both call these, so a change and its audit record are written in
the same transaction whichever door it came through. Who may act is decided before (the API's
permission checks; the CLI is the operator); these functions only check the objects exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Unpack

from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.deployments import repository as deployments
from ceruleum.deployments.errors import InvalidDeploymentError
from ceruleum.deployments.model import Deployment, DeploymentChanges
from ceruleum.gateway.keys import NewKey
from ceruleum.gateway.principal import ROLES
from ceruleum.safety.policy import Source
from ceruleum.store import api_keys, blocklists, projects
from ceruleum.store.api_keys import KeyChanges, key_dict
from ceruleum.store.audit import record_audit
from ceruleum.store.database import announce_key_change
from ceruleum.store.errors import InvalidFieldError, ProjectNotFoundError
from ceruleum.store.projects import project_dict
from ceruleum.store.tables import ApiKey, Project

CLI_ACTOR = "cli"
KEY_NAME_MAX_LENGTH = 64
MAX_ALLOWED_DEPLOYMENTS = 256
_ALLOWED_NAME_MAX_LENGTH = 256  # a deployment name or a served model id


# --- projects --------------------------------------------------------------------------------


async def create_project(session: AsyncSession, *, actor: str, name: str) -> Project:
    project = await projects.create_project(session, name=name)
    await _audit(session, actor, "project.create", project, None, project_dict(project))
    return project


async def delete_project(session: AsyncSession, *, actor: str, project_id: str) -> Project:
    """Deletes the project with its keys and deployments (the database cascades)."""
    project = await require_project(session, project_id=project_id)
    before = project_dict(project)
    await projects.delete_project(session, project=project)
    await announce_key_change(session)  # its keys go with it
    await _audit(session, actor, "project.delete", project, before, None)
    return project


async def require_project(session: AsyncSession, *, project_id: str) -> Project:
    project = await projects.get_project(session, project_id=project_id)
    if project is None:
        raise ProjectNotFoundError(project_id)
    return project


# --- keys ------------------------------------------------------------------------------------


async def create_key(
    session: AsyncSession,
    *,
    actor: str,
    project_id: str,
    name: str,
    role: str,
    expires_at: datetime | None = None,
    allowed_deployments: Sequence[str] | None = None,
    tokens_per_minute: int | None = None,
    requests_per_minute: int | None = None,
) -> tuple[ApiKey, NewKey]:
    """The key and its secret, which exists only in this return value from now on."""
    await require_project(session, project_id=project_id)
    allowed = list(allowed_deployments) if allowed_deployments is not None else None
    check_key_fields(
        name=name,
        role=role,
        allowed_deployments=allowed,
        tokens_per_minute=tokens_per_minute,
        requests_per_minute=requests_per_minute,
    )
    key, new = await api_keys.create_key(
        session,
        project_id=project_id,
        name=name,
        role=role,
        expires_at=expires_at,
        allowed_deployments=allowed,
        tokens_per_minute=tokens_per_minute,
        requests_per_minute=requests_per_minute,
    )
    await _audit(session, actor, "key.create", key, None, key_dict(key))
    return key, new


async def update_key(
    session: AsyncSession, *, actor: str, key: ApiKey, **changes: Unpack[KeyChanges]
) -> ApiKey:
    check_key_fields(**changes)
    before = key_dict(key)
    await api_keys.update_key(session, key=key, **changes)
    await announce_key_change(session)
    await _audit(session, actor, "key.update", key, before, key_dict(key))
    return key


async def revoke_key(session: AsyncSession, *, actor: str, key: ApiKey) -> ApiKey:
    """Idempotent: revoking a revoked key keeps its first revocation time."""
    before = key_dict(key)
    await api_keys.revoke_key(session, key=key)
    await announce_key_change(session)
    await _audit(session, actor, "key.revoke", key, before, key_dict(key))
    return key


def check_key_fields(**fields: Any) -> None:
    """The rules for a key's fields, for every caller (the API's schemas check types first)."""
    name = fields.get("name")
    if "name" in fields and (
        not isinstance(name, str)
        or not 0 < len(name) <= KEY_NAME_MAX_LENGTH
        or not name.isprintable()
    ):
        raise InvalidFieldError(
            f"A key name is 1 to {KEY_NAME_MAX_LENGTH} printable characters.", param="name"
        )
    if "role" in fields and fields["role"] not in ROLES:
        raise InvalidFieldError(f"A key's role is one of {', '.join(ROLES)}.", param="role")
    for param in ("tokens_per_minute", "requests_per_minute"):
        value = fields.get(param)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidFieldError(f"'{param}' must be a positive integer.", param=param)
    allowed = fields.get("allowed_deployments")
    if allowed is not None and (
        len(allowed) > MAX_ALLOWED_DEPLOYMENTS
        or not all(isinstance(n, str) and 0 < len(n) <= _ALLOWED_NAME_MAX_LENGTH for n in allowed)
    ):
        raise InvalidFieldError(
            f"'allowed_deployments' is a list of at most {MAX_ALLOWED_DEPLOYMENTS} deployment "
            "names.",
            param="allowed_deployments",
        )


# --- deployments -----------------------------------------------------------------------------


async def create_deployment(
    session: AsyncSession, *, actor: str, deployment: Deployment
) -> Deployment:
    await require_project(session, project_id=deployment.project_id)
    await check_blocklists_exist(session, deployment)
    created = await deployments.create_deployment(session, deployment=deployment)
    await _audit_deployment(session, actor, "deployment.create", None, created)
    return created


async def update_deployment(
    session: AsyncSession,
    *,
    actor: str,
    project_id: str,
    name: str,
    **changes: Unpack[DeploymentChanges],
) -> Deployment:
    before, after = await deployments.update_deployment(
        session, project_id=project_id, name=name, **changes
    )
    if after.content_filter != before.content_filter:
        await check_blocklists_exist(session, after)  # raising rolls the update back
    await _audit_deployment(session, actor, "deployment.update", before, after)
    return after


async def delete_deployment(
    session: AsyncSession, *, actor: str, project_id: str, name: str
) -> Deployment:
    deleted = await deployments.delete_deployment(session, project_id=project_id, name=name)
    await _audit_deployment(session, actor, "deployment.delete", deleted, None)
    return deleted


async def check_blocklists_exist(session: AsyncSession, deployment: Deployment) -> None:
    """A policy may attach only blocklists of the deployment's own project."""
    policy = deployment.content_filter
    found = await blocklists.existing_names(
        session, project_id=deployment.project_id, names=policy.blocklist_names
    )
    sources: tuple[Source, ...] = ("prompt", "completion")
    for source in sources:
        for name in policy.rules(source).blocklists:
            if name not in found:
                raise InvalidDeploymentError(
                    f"The blocklist '{name}' does not exist in this project.",
                    param=f"content_filter.{source}.blocklists",
                )


# --- audit -----------------------------------------------------------------------------------


async def _audit(
    session: AsyncSession,
    actor: str,
    action: str,
    target: Project | ApiKey,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    if isinstance(target, Project):
        target_type, project_id = "project", target.id
    else:
        target_type, project_id = "api_key", target.project_id
    await record_audit(
        session,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target.id,
        project_id=project_id,
        before=before,
        after=after,
    )


async def _audit_deployment(
    session: AsyncSession,
    actor: str,
    action: str,
    before: Deployment | None,
    after: Deployment | None,
) -> None:
    subject = after or before
    assert subject is not None
    await record_audit(
        session,
        actor=actor,
        action=action,
        target_type="deployment",
        target_id=subject.name,
        project_id=subject.project_id,
        before=before.to_dict() if before is not None else None,
        after=after.to_dict() if after is not None else None,
    )
