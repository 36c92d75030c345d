"""FastAPI dependency aliases for the objects a server holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ceruleum.engine.pool import ModelPool
from ceruleum.settings import Settings
from ceruleum.store import Database


def get_pool(request: Request) -> ModelPool:
    pool: ModelPool = request.app.state.pool
    return pool


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


PoolDep = Annotated[ModelPool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# Deprecated with the JSON deployment store: inference moves to deployments.repository.
