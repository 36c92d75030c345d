"""API keys of projects: created with a secret shown once, found by prefix, revoked in place."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypedDict, Unpack, overload

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.gateway.keys import NewKey, generate_key
from ceruleum.store.tables import ApiKey

_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


def new_key_id() -> str:
    return "key_" + secrets.token_hex(12)


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: None) -> None: ...
@overload
def aware(moment: datetime | None) -> datetime | None: ...
def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; they were stored in UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


async def create_key(
    session: AsyncSession,
    *,
    project_id: str,
    name: str,
    role: str,
    expires_at: datetime | None = None,
    allowed_deployments: Sequence[str] | None = None,
    tokens_per_minute: int | None = None,
    requests_per_minute: int | None = None,
) -> tuple[ApiKey, NewKey]:
    new = generate_key()
    row = ApiKey(
        id=new_key_id(),
        project_id=project_id,
        name=name,
        role=role,
        prefix=new.prefix,
        secret_hash=new.secret_hash,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
        allowed_deployments=list(allowed_deployments) if allowed_deployments is not None else None,
        tokens_per_minute=tokens_per_minute,
        requests_per_minute=requests_per_minute,
    )
    session.add(row)
    await session.flush()
    return row, new


async def get_key(session: AsyncSession, *, key_id: str) -> ApiKey | None:
    # Not looked up unless it could be an id: Postgres refuses NUL bytes with an error.
    if not _PLAUSIBLE_ID.fullmatch(key_id):
        return None
    return await session.get(ApiKey, key_id)


async def list_keys(session: AsyncSession, *, project_id: str) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.project_id == project_id).order_by(ApiKey.created_at)
    return list((await session.execute(query)).scalars())


class KeyChanges(TypedDict, total=False):
    """Fields ``update_key`` may change; the project, prefix and secret never change."""

    name: str
    role: str
    expires_at: datetime | None
    allowed_deployments: list[str] | None
    tokens_per_minute: int | None
    requests_per_minute: int | None


async def update_key(
    session: AsyncSession, *, key: ApiKey, **changes: Unpack[KeyChanges]
) -> ApiKey:
    for field, value in changes.items():
        setattr(key, field, value)
    await session.flush()
    return key


async def revoke_key(session: AsyncSession, *, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.flush()
    return key


def key_dict(key: ApiKey) -> dict[str, object]:
    """The key as the API shows it: never the secret, nor its hash."""

    def stamp(moment: datetime | None) -> int | None:
        moment = aware(moment)
        return int(moment.timestamp()) if moment is not None else None

    return {
        "id": key.id,
        "object": "api_key",
        "project_id": key.project_id,
        "name": key.name,
        "role": key.role,
        "prefix": key.prefix,
        "created_at": stamp(key.created_at),
        "expires_at": stamp(key.expires_at),
        "revoked_at": stamp(key.revoked_at),
        "allowed_deployments": key.allowed_deployments,
        "tokens_per_minute": key.tokens_per_minute,
        "requests_per_minute": key.requests_per_minute,
    }
