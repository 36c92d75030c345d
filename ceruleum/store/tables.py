"""The control-plane tables. Every object belongs to a project."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # proj_...
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A key's secret is never stored: only its SHA-256, found by the non-secret prefix."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # key_...
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # owner | member | reader
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    allowed_deployments: Mapped[list[str] | None] = mapped_column(JSON)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_api_keys_project_id", "project_id"),)


class DeploymentRow(Base):
    """A named binding of a served model with its settings, owned by a project."""

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # dep_...
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    defaults: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    max_tokens_limit: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    # The content-filter policy in its wire form; NULL is the default policy.
    content_filter: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_deployments_project_name"),)


class BlocklistRow(Base):
    """A project's custom blocklist, attached to deployments by name in their policy."""

    __tablename__ = "blocklists"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # bl_...
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Changes with every item added or removed, so that a cached compiled list can tell.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_blocklists_project_name"),)


class BlocklistItemRow(Base):
    """A term (matched as a whole word or phrase) or a regular expression."""

    __tablename__ = "blocklist_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # bli_...
    blocklist_id: Mapped[str] = mapped_column(ForeignKey("blocklists.id", ondelete="CASCADE"))
    pattern: Mapped[str] = mapped_column(String(1000))
    is_regex: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_blocklist_items_blocklist_id", "blocklist_id"),)


class UsageRecord(Base):
    """One row per request, also for failed and disconnected ones."""

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str | None] = mapped_column(String(40))
    deployment: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(256))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_usage_project_created", "project_id", "created_at"),
        Index("ix_usage_key_created", "key_id", "created_at"),
    )


class AuditEvent(Base):
    """Append-only: the API offers no way to change or delete these rows."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))  # "admin" or a key id
    action: Mapped[str] = mapped_column(String(64))  # e.g. "key.create", "deployment.update"
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(40))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_at", "at"),)
