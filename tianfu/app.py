"""The application factory: `uvicorn --factory tianfu.app:create_app`, or `tianfu serve`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lbs import api as lbs_api
from merchants.store_index import LiveStoreIndex
from tianfu import __version__, health
from tianfu.db import engine_from_settings, make_session_factory
from tianfu.errors import install_error_handlers
from tianfu.settings import TianfuSettings, get_settings

logger = logging.getLogger(__name__)


def create_app(settings: TianfuSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine_from_settings(settings)

    session_factory = make_session_factory(engine)
    store_index = LiveStoreIndex(session_factory, poll_interval_s=settings.index_poll_interval_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logger.info("Tianfu %s on %s", __version__, settings.database_backend)
        store_index.start()  # builds in the background; /readyz waits for it
        yield
        store_index.stop()
        engine.dispose()

    app = FastAPI(title="Tianfu", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.store_index = store_index
    app.state.readiness = health.Readiness()
    app.state.readiness.register("database_schema", health.schema_at_head_check(engine))
    app.state.readiness.register("store_index", store_index.readiness)

    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(lbs_api.router)
    return app
