"""FastAPI dependency aliases for the objects a server holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ceruleum.deployments import DeploymentStore
from ceruleum.engine.pool import ModelPool
from ceruleum.settings import Settings


def get_pool(request: Request) -> ModelPool:
    pool: ModelPool = request.app.state.pool
    return pool


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_deployments(request: Request) -> DeploymentStore:
    deployments: DeploymentStore = request.app.state.deployments
    return deployments


PoolDep = Annotated[ModelPool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DeploymentsDep = Annotated[DeploymentStore, Depends(get_deployments)]
