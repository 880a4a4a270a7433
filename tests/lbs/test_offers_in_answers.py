"""Nearby answers and WeChat replies carry each store's best offer and why it applies, as the
coupon engine judges it; offers under review, paused or sold out are not advertised."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from coupons.models import Offer, OfferStatus
from coupons.rules import OfferKind
from merchants.models import Merchant, Store
from tests.builders import make_offer
from tests.conftest import PostgresDatabases, new_database_url
from tests.http import asgi_client
from tests.lbs.wechat_support import (
    TIANFU_SQUARE,
    Pusher,
    Town,
    articles_of,
    build_town,
    square_location,
    wechat_settings,
)
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory, session_scope

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def town(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Town:
    town = build_town(
        new_database_url(backend, tmp_path_factory.mktemp("offers"), postgres_databases)
    )
    engine = create_db_engine(town.url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            coffee = session.get(Store, town.coffee_id)
            assert coffee is not None
            owner = session.get(Merchant, coffee.merchant_id)
            make_offer(
                session,
                merchant=owner,
                kind=OfferKind.threshold_off,
                title_zh="满100减20",
                amount_off_fen=2000,
                threshold_fen=10_000,
            )
            make_offer(session, merchant=owner, title_zh="立减5元", amount_off_fen=500)
            make_offer(
                session,
                merchant=owner,
                title_zh="立减50元",
                amount_off_fen=5000,
                status=OfferStatus.pending_review,  # not approved: never advertised
            )
    finally:
        engine.dispose()
    return town


@pytest.fixture
def app(town: Town) -> FastAPI:
    app = create_app(wechat_settings(town.url))
    app.state.store_index.build()
    return app


async def test_nearby_api_shows_the_best_offer_and_its_explanation(
    app: FastAPI, town: Town
) -> None:
    async for http in asgi_client(app):
        response = await http.get(
            "/api/v1/nearby", params={"lat": TIANFU_SQUARE[0], "lng": TIANFU_SQUARE[1]}
        )
    stores = {store["id"]: store for store in response.json()["stores"]}
    coffee = stores[town.coffee_id]["best_offer"]
    assert coffee["title"] == "满100减20"  # the largest headline value of the active ones
    assert "满100" in coffee["explanation"]
    assert stores[town.hotpot_id]["best_offer"] is None  # its merchant has no offer


async def test_the_wechat_reply_headlines_the_nearest_store_with_an_offer(
    app: FastAPI,
) -> None:
    user = f"oOfferUser{datetime.now(UTC):%H%M%S%f}"
    message = square_location(user)
    async for http in asgi_client(app):
        [article] = articles_of(await Pusher(http).reply_element(message))
    # The hotpot place is nearer, but the coffee shop has the offer: it makes the headline.
    assert article["Title"].startswith("晨光咖啡(人民南路店)：满100减20")
    assert "满100" in article["Description"]
    assert "另有1家" in article["Description"]


async def test_a_sold_out_offer_is_not_advertised(app: FastAPI, town: Town) -> None:
    engine = create_db_engine(town.url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            for offer in session.scalars(select(Offer).where(Offer.title_zh == "满100减20")):
                offer.claimed_count = offer.total_stock
        async for http in asgi_client(app):
            response = await http.get(
                "/api/v1/nearby", params={"lat": TIANFU_SQUARE[0], "lng": TIANFU_SQUARE[1]}
            )
        stores = {store["id"]: store for store in response.json()["stores"]}
        assert stores[town.coffee_id]["best_offer"]["title"] == "立减5元"
    finally:
        with session_scope(make_session_factory(engine)) as session:
            for offer in session.scalars(select(Offer).where(Offer.title_zh == "满100减20")):
                offer.claimed_count = 0
        engine.dispose()
