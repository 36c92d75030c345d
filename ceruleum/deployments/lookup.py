"""Finding a project's deployment by name on every inference request, cheaply.

Lookups are cached for a second: a deployment edited or deleted through the admin API or the CLI
(perhaps in another process) takes effect within that second. Keys are not cached here: a revoked
key fails on its very next request (see gateway/auth.py).
"""

from __future__ import annotations

import time

from sqlalchemy import select

from ceruleum.deployments.model import Deployment
from ceruleum.deployments.repository import deployment_from_row
from ceruleum.store import Database, DeploymentRow

_BY_NAME = select(DeploymentRow.__table__)


class DeploymentLookup:
    def __init__(
        self, database: Database, *, ttl_s: float = 1.0, max_entries: int = 10_000
    ) -> None:
        self._database = database
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._cache: dict[tuple[str, str], tuple[float, Deployment | None]] = {}

    async def get(self, *, project_id: str, name: str) -> Deployment | None:
        key = (project_id, name)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        statement = _BY_NAME.where(
            DeploymentRow.project_id == project_id, DeploymentRow.name == name
        )
        row = await self._database.fetch_one(statement)
        deployment = deployment_from_row(row) if row is not None else None
        if len(self._cache) >= self._max_entries:
            self._cache.clear()  # names come from clients: never let them grow the cache forever
        self._cache[key] = (now, deployment)
        return deployment

    def forget(self) -> None:
        """Drop everything cached (after a change made through this process)."""
        self._cache.clear()
