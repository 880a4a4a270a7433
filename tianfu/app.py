"""The application factory: `uvicorn --factory tianfu.app:create_app`, or `tianfu serve`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cinema import api as cinema_api
from cinema import booking as cinema_booking
from cinema import pages as cinema_pages
from coupons import api as coupons_api
from coupons import merchant_api as coupons_merchant_api
from coupons import pages as coupons_pages
from coupons.lookup import OfferCatalog
from lbs import api as lbs_api
from lbs import h5_session, webhook
from lbs import pages as lbs_pages
from lbs.client import WeChatClient
from lbs.dispatch import PushHandler, customer_service_sender
from lbs.nearby import StoreCards
from merchants.portal import install_portal
from merchants.store_index import LiveStoreIndex
from payments import api as payments_api
from payments import pages as payments_pages
from payments.jobs import JobScheduler
from tianfu import __version__, health
from tianfu.db import engine_from_settings, make_session_factory
from tianfu.errors import install_error_handlers
from tianfu.settings import TianfuSettings, get_settings
from tianfu.wiring import build_payments, housekeeping_jobs, outbox_handlers

logger = logging.getLogger(__name__)


def create_app(settings: TianfuSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine_from_settings(settings)

    session_factory = make_session_factory(engine)
    store_index = LiveStoreIndex(session_factory, poll_interval_s=settings.index_poll_interval_s)
    wechat_client = (
        WeChatClient(settings.wechat, session_factory)
        if settings.wechat.appid and settings.wechat.appsecret
        else None
    )
    store_cards = StoreCards(store_index)
    # PostgreSQL only: sessions whose statements each commit on their own, for hot paths that
    # only read, or write in one statement (SQLite's BEGIN handling in tianfu.db rules it out).
    autocommit_session_factory = (
        make_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
        if engine.dialect.name == "postgresql"
        else None
    )
    offer_catalog = OfferCatalog(merchant_of=store_index.merchant_of)
    push_handler = PushHandler(
        settings=settings,
        session_factory=session_factory,
        store_index=store_index,
        offers=offer_catalog,
        store_cards=store_cards,
        read_session_factory=autocommit_session_factory,
        send_customer_message=customer_service_sender(wechat_client) if wechat_client else None,
    )
    # WeChat pushes are handled in these threads, so a reply that overruns the 5 s window can
    # finish (and go out as a customer-service message) after the HTTP answer has been given.
    # Few threads: the work is mostly Python, so more threads only queue for the GIL.
    push_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="wechat-push")
    payments = build_payments(settings, session_factory)
    # Every worker runs the jobs: each step is a conditional move or a lease in the database.
    payment_jobs = (
        JobScheduler(
            payments,
            interval_s=settings.payments.jobs_interval_s,
            handlers=outbox_handlers(settings, wechat_client),
            housekeeping=housekeeping_jobs(),
        )
        if payments is not None and settings.payments.run_jobs_in_serve
        else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logger.info("Tianfu %s on %s", __version__, settings.database_backend)
        store_index.start()  # builds in the background; /readyz waits for it
        if payment_jobs is not None:
            payment_jobs.start()
        yield
        if payment_jobs is not None:
            payment_jobs.stop()
        store_index.stop()
        push_executor.shutdown(wait=True)
        if wechat_client is not None:
            wechat_client.close()
        engine.dispose()

    app = FastAPI(title="Tianfu", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.autocommit_session_factory = autocommit_session_factory
    app.state.store_index = store_index
    app.state.offer_lookup = offer_catalog
    app.state.store_cards = store_cards
    app.state.wechat_client = wechat_client
    app.state.push_handler = push_handler
    app.state.push_executor = push_executor
    app.state.payments = payments
    app.state.readiness = health.Readiness()
    app.state.readiness.register("database_schema", health.schema_at_head_check(engine))
    app.state.readiness.register("store_index", store_index.readiness)

    install_error_handlers(app)
    h5_session.install_h5_session(app)  # login redirects and session renewal for H5 pages
    app.include_router(health.router)
    app.include_router(lbs_api.router)
    app.include_router(webhook.router)
    app.include_router(h5_session.router)
    app.include_router(lbs_pages.router)
    app.include_router(coupons_api.router)
    app.include_router(coupons_pages.router)
    app.include_router(coupons_merchant_api.router)  # offers in the merchants' REST API
    app.include_router(payments_api.router)
    app.include_router(payments_api.notify_router)
    app.include_router(payments_pages.router)
    app.include_router(cinema_api.router)
    app.include_router(cinema_pages.router)
    # The cashier returns every payer to /h5/orders/{no}; a ticket order goes on to its tickets.
    payments_pages.register_order_page(cinema_booking.ORDER_KIND, cinema_pages.TICKET_PAGE)
    install_portal(app)  # /portal pages and /api/v1/portal, behind their own login
    app.mount(
        h5_session.STATIC_URL_PREFIX,
        StaticFiles(directory=h5_session.STATIC_DIR),
        name="h5-static",
    )
    return app
