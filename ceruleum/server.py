"""build_app(settings) -> FastAPI: routers, lifespan (engines up and down), error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ceruleum import __version__
from ceruleum.api import admin, admin_usage, embeddings, health, models, moderations
from ceruleum.api import metrics as metrics_api
from ceruleum.api.azure import router as azure
from ceruleum.api.chat import router as chat
from ceruleum.api.completions import router as completions
from ceruleum.api.errors import install_error_handlers
from ceruleum.deployments.blocklist_lookup import BlocklistLookup
from ceruleum.deployments.lookup import DeploymentLookup
from ceruleum.engine.pool import ModelPool
from ceruleum.engine.sentence_models import use_torch_threads
from ceruleum.gateway import MemoryQuota, QuotaBackend, RedisQuota
from ceruleum.gateway.auth import Authenticator, authenticate, resolve_admin_key
from ceruleum.gateway.metrics import Metrics
from ceruleum.gateway.usage import UsageRecorder
from ceruleum.safety.service import build_content_filter, check_filter_switch, default_policy
from ceruleum.settings import Settings
from ceruleum.store import Database, database_url

logger = logging.getLogger(__name__)


def build_app(settings: Settings, pool: ModelPool | None = None) -> FastAPI:
    """The ASGI app. A given pool is used as is (tests); otherwise one is loaded at startup.
    Raises AdminKeyRefusedError outside development mode without a proper admin key."""
    admin_key = resolve_admin_key(
        settings.admin_key.get_secret_value(),
        dev_mode=settings.dev_mode,
        gateway_enabled=settings.gateway_enabled,
    )
    check_filter_switch(enabled=settings.content_filter_enabled, dev_mode=settings.dev_mode)
    use_torch_threads(settings.torch_threads)
    content_policy = default_policy(settings.content_filter_default_policy)
    database = Database(database_url(settings.database_url, settings.data_dir))
    quota: QuotaBackend = RedisQuota(settings.redis_url) if settings.redis_url else MemoryQuota()
    usage = UsageRecorder(database)  # requests queue usage; a background task writes it

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.dev_mode:
            logger.warning(
                "\n%s\nDEVELOPMENT MODE: %s. Never expose this server to a network.\n%s",
                "!" * 78,
                "the admin key is the well-known development key"
                if not settings.admin_key.get_secret_value()
                else "development mode is on",
                "!" * 78,
            )
        await database.migrate()
        await authenticator.start()  # Postgres: listen for key changes
        await usage.start()
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
            await quota.close()
            await usage.close()  # writes what is still queued, while the database is open
            await database.close()

    docs = settings.dev_mode  # the OpenAPI docs are unauthenticated routes: development only
    app = FastAPI(
        title="Ceruleum",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.deployment_lookup = DeploymentLookup(database)
    app.state.blocklist_lookup = BlocklistLookup(database)
    # Built here so that an unknown analyzer name stops the server before it binds; the
    # classifier itself loads on a background thread.
    app.state.content_filter = (
        build_content_filter(settings.content_filter_analyzers, settings.content_filter_precision)
        if settings.content_filter_enabled
        else None
    )
    app.state.default_content_policy = content_policy
    app.state.quota = quota
    authenticator = Authenticator(database, admin_key, cache_max_age_s=settings.key_cache_max_age_s)
    app.state.authenticator = authenticator
    app.state.usage = usage
    # The pool appears at startup; the engine gauges read it at scrape time.
    app.state.metrics = Metrics(lambda: getattr(app.state, "pool", None), usage=usage)
    install_error_handlers(app)
    if settings.cors_origins:
        # Keys travel in headers, never cookies: credentials stay off, so "*" is never paired
        # with them.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["authorization", "api-key", "content-type"],
        )
    secured = [Depends(authenticate)]
    app.include_router(health.router)
    app.include_router(admin.router, dependencies=secured)
    app.include_router(admin_usage.router, dependencies=secured)
    app.include_router(metrics_api.router, dependencies=secured)
    # The OpenAI API, also at Azure's v1 base (/openai/v1), where `model` names a deployment.
    for prefix in ("/v1", "/openai/v1"):
        for router in (
            models.router,
            chat.router,
            completions.router,
            embeddings.router,
            moderations.router,
        ):
            app.include_router(router, prefix=prefix, dependencies=secured)
    app.include_router(azure.router, dependencies=secured)
    return app
