"""Alembic environment: migrations run on the connection the application hands over."""

from __future__ import annotations

from alembic import context

from ceruleum.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ceruleum.store (Database.migrate or the CLI)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
)
with context.begin_transaction():
    context.run_migrations()
