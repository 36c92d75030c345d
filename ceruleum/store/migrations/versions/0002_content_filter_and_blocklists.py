"""content-filter policies on deployments, and projects' custom blocklists

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 09:12:05.118402
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: every existing deployment keeps the default policy (NULL).
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_filter", sa.JSON(), nullable=True))

    op.create_table(
        "blocklists",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name", name="uq_blocklists_project_name"),
    )
    op.create_table(
        "blocklist_items",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("blocklist_id", sa.String(length=40), nullable=False),
        sa.Column("pattern", sa.String(length=1000), nullable=False),
        sa.Column("is_regex", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["blocklist_id"], ["blocklists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("blocklist_items", schema=None) as batch_op:
        batch_op.create_index("ix_blocklist_items_blocklist_id", ["blocklist_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("blocklist_items", schema=None) as batch_op:
        batch_op.drop_index("ix_blocklist_items_blocklist_id")

    op.drop_table("blocklist_items")
    op.drop_table("blocklists")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("content_filter")
