"""FastAPI dependency aliases for the objects a server holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ceruleum.deployments.lookup import DeploymentLookup
from ceruleum.engine.pool import ModelPool
from ceruleum.settings import Settings
from ceruleum.store import Database


async def get_pool(request: Request) -> ModelPool:
    pool: ModelPool = request.app.state.pool
    return pool


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_deployment_lookup(request: Request) -> DeploymentLookup:
    lookup: DeploymentLookup = request.app.state.deployment_lookup
    return lookup


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


PoolDep = Annotated[ModelPool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
DeploymentLookupDep = Annotated[DeploymentLookup, Depends(get_deployment_lookup)]
# Deprecated with the JSON deployment store: inference moves to deployments.repository.
