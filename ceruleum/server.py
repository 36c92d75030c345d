"""build_app(settings) -> FastAPI: routers, lifespan (engines up and down), error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ceruleum import __version__
from ceruleum.api import admin_deployments, embeddings, health, models
from ceruleum.api.azure import router as azure
from ceruleum.api.chat import router as chat
from ceruleum.api.completions import router as completions
from ceruleum.api.errors import install_error_handlers
from ceruleum.deployments import DeploymentStore
from ceruleum.engine.pool import ModelPool
from ceruleum.settings import Settings

logger = logging.getLogger(__name__)


def build_app(settings: Settings, pool: ModelPool | None = None) -> FastAPI:
    """The ASGI app. A given pool is used as is (tests); otherwise one is loaded at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = pool is None
        app.state.pool = pool or ModelPool(settings)
        if owned:
            app.state.pool.load()
        logger.info("ceruleum %s ready", __version__)
        try:
            yield
        finally:
            if owned:
                app.state.pool.shutdown()

    app = FastAPI(title="Ceruleum", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.deployments = DeploymentStore.in_data_dir(settings.data_dir)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(admin_deployments.router)
    # The OpenAI API, also at Azure's v1 base (/openai/v1), where `model` names a deployment.
    for prefix in ("/v1", "/openai/v1"):
        for router in (models.router, chat.router, completions.router, embeddings.router):
            app.include_router(router, prefix=prefix)
    app.include_router(azure.router)
    return app
