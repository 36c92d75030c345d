"""Authentication: `Authorization: Bearer <key>` or `api-key: <key>` -> Principal.

A key is read from the store by its prefix and checked against its SHA-256, then kept in a
``KeyCache`` (gateway/key_cache.py) that every key change empties, so that a revoked key fails on
its very next request while a valid one costs no database I/O. Expiry is checked on every
request. Nothing about a presented key is ever echoed in errors or logs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from ceruleum.gateway.errors import AuthenticationError
from ceruleum.gateway.key_cache import CachedKey, KeyCache
from ceruleum.gateway.keys import key_prefix, matches
from ceruleum.gateway.principal import Principal, admin_principal
from ceruleum.store import Database
from ceruleum.store.api_keys import aware
from ceruleum.store.tables import ApiKey

DEV_ADMIN_KEY = "ceruleum-dev-admin-key"  # accepted only in development mode

# Read on every request: only the columns authentication needs, no ORM unit of work.
_KEY_BY_PREFIX = select(
    ApiKey.id,
    ApiKey.project_id,
    ApiKey.role,
    ApiKey.secret_hash,
    ApiKey.revoked_at,
    ApiKey.expires_at,
    ApiKey.allowed_deployments,
    ApiKey.tokens_per_minute,
    ApiKey.requests_per_minute,
)


class AdminKeyRefusedError(Exception):
    """The server may not start with an empty or default admin key outside development mode."""


def resolve_admin_key(configured: str, *, dev_mode: bool, gateway_enabled: bool = True) -> str:
    if not gateway_enabled and not dev_mode:
        raise AdminKeyRefusedError(
            "Refusing to start: the gateway (auth, quotas, metering) can only be turned off in "
            "development mode."
        )
    if dev_mode:
        return configured or DEV_ADMIN_KEY
    if not configured or configured == DEV_ADMIN_KEY:
        raise AdminKeyRefusedError(
            "Refusing to start: set CERULEUM_ADMIN_KEY to a long random secret, or start in "
            "development mode (--dev / CERULEUM_DEV_MODE=true) on a machine nobody else reaches."
        )
    return configured


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else ""
    api_key = request.headers.get("api-key")
    return api_key.strip() if api_key is not None else None


class Authenticator:
    def __init__(self, database: Database, admin_key: str, *, cache_max_age_s: float = 0.0) -> None:
        """``cache_max_age_s`` > 0 keeps authenticated keys in memory (see KeyCache)."""
        self._database = database
        self._admin_hash = hashlib.sha256(admin_key.encode()).digest()
        self.cache = KeyCache(database, max_age_s=cache_max_age_s) if cache_max_age_s > 0 else None

    async def start(self) -> None:
        if self.cache is not None:
            await self.cache.start()

    async def principal_for(self, presented: str | None) -> Principal:
        if presented is None:
            raise AuthenticationError(missing=True)
        digest = hashlib.sha256(presented.encode()).digest()
        if hmac.compare_digest(digest, self._admin_hash):
            return admin_principal()
        cache = self.cache
        key = cache.get(digest) if cache is not None else None
        if key is None:
            generation = cache.generation if cache is not None else 0
            key = await self._read(presented)
            if cache is not None:
                cache.put(digest, key, generation=generation)
        if key.revoked or (key.expires_at is not None and key.expires_at <= time.time()):
            raise AuthenticationError()
        return key.principal

    async def _read(self, presented: str) -> CachedKey:
        prefix = key_prefix(presented)
        if prefix is None:
            raise AuthenticationError()
        row = await self._database.fetch_one(_KEY_BY_PREFIX.where(ApiKey.prefix == prefix))
        if row is None or not matches(presented, row.secret_hash):
            raise AuthenticationError()
        expires_at = aware(row.expires_at)
        return CachedKey(
            principal=Principal(
                key_id=row.id,
                project_id=row.project_id,
                role=row.role,
                allowed_deployments=(
                    tuple(row.allowed_deployments) if row.allowed_deployments is not None else None
                ),
                tokens_per_minute=row.tokens_per_minute,
                requests_per_minute=row.requests_per_minute,
            ),
            revoked=row.revoked_at is not None,
            expires_at=expires_at.timestamp() if expires_at is not None else None,
        )


async def authenticate(request: Request) -> Principal:
    """The dependency every route but /health runs; the result is kept on request.state."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    authenticator: Authenticator = request.app.state.authenticator
    if not request.app.state.settings.gateway_enabled:
        principal = admin_principal()  # development benchmarks only (see resolve_admin_key)
        request.state.principal = principal
        return principal
    principal = await authenticator.principal_for(presented_key(request))
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
