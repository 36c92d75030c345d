"""Control-plane state: SQLAlchemy 2 tables, Alembic migrations, SQLite (WAL) or Postgres."""

from ceruleum.store.database import Database, database_url
from ceruleum.store.tables import (
    ApiKey,
    AuditEvent,
    Base,
    BlocklistItemRow,
    BlocklistRow,
    DeploymentRow,
    Project,
    UsageRecord,
)

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "BlocklistItemRow",
    "BlocklistRow",
    "Database",
    "DeploymentRow",
    "Project",
    "UsageRecord",
    "database_url",
]
