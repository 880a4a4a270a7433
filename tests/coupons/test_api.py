"""The coupon API through the real app (in-process ASGI), on a database of each backend with
committed data; WeChat H5 sessions are minted as the OAuth callback would set them."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from coupons import api as coupons_api
from coupons import claims, points
from coupons import pages as coupons_pages
from coupons.codes import format_code, is_valid_code
from coupons.models import OfferStatus
from coupons.rules import OfferKind
from lbs.coords import gcj02_to_bd09, gcj02_to_wgs84
from lbs.h5_session import session_cookie_header
from tests.builders import make_merchant, make_offer, make_store
from tests.conftest import PostgresDatabases, new_database_url
from tests.http import asgi_client
from tianfu import migrate
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory, session_scope
from tianfu.orm import utcnow
from tianfu.settings import TianfuSettings, load_settings

pytestmark = pytest.mark.anyio

SECRET_KEY = "coupon-api-tests-secret-key-0123456789abcdef"
HOTPOT = (30.6574, 104.06714)  # ~100 m east of Tianfu Square, GCJ-02
# 200 m: less than the ~360 m between a Chengdu point's GCJ-02 and WGS-84 numbers, so a
# WGS-84 position read as GCJ-02 would land outside.
GEO_RADIUS_M = 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def with_coupon_routes(app: FastAPI) -> FastAPI:
    """The coupon routers on the app, unless tianfu/app.py includes them already."""
    paths = {getattr(route, "path", None) for route in app.routes}
    if "/api/v1/offers/{offer_id}/claims" not in paths:
        app.include_router(coupons_api.router)
    if "/h5/offers/{offer_id}" not in paths:
        app.include_router(coupons_pages.router)
    return app


def cookie_for(settings: TianfuSettings, openid: str) -> str:
    """A Cookie header value for `openid`'s session, as the OAuth callback sets it."""
    return session_cookie_header(settings, openid, clock=time.time).split(";", 1)[0]


@dataclass(frozen=True)
class Town:
    url: str
    hotpot_id: int
    plain_id: int  # stock 100, one per user
    sold_out_id: int  # stock 1, taken by oEarlyBird
    two_each_id: int  # two per user
    geo_id: int  # within GEO_RADIUS_M of the hotpot store only
    exchange_id: int  # 300 points for 5 yuan off
    draft_id: int


@pytest.fixture(scope="module")
def town(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Town:
    url = new_database_url(backend, tmp_path_factory.mktemp("coupon-api"), postgres_databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        merchant = make_merchant(session)
        hotpot = make_store(session, merchant=merchant, lat=HOTPOT[0], lng=HOTPOT[1])
        make_store(session, merchant=merchant, lat=30.5457, lng=104.0694, name="蜀味(南站店)")
        offer: Any = make_offer  # shorter lines below
        town = Town(
            url,
            hotpot_id=hotpot.id,
            plain_id=offer(session, merchant=merchant, title_zh="立减10元", per_user_limit=1).id,
            sold_out_id=offer(session, merchant=merchant, title_zh="限量1张", total_stock=1).id,
            two_each_id=offer(session, merchant=merchant, per_user_limit=2).id,
            geo_id=offer(
                session, merchant=merchant, title_zh="到店领5元", amount_off_fen=500,
                claim_radius_m=GEO_RADIUS_M, store_ids=[hotpot.id],
            ).id,
            exchange_id=offer(
                session, merchant=merchant, kind=OfferKind.points_exchange,
                title_zh="300积分换5元券", amount_off_fen=500, points_cost=300,
            ).id,
            draft_id=offer(session, merchant=merchant, status=OfferStatus.draft).id,
        )  # fmt: skip
    with session_scope(factory) as session:
        claims.claim(
            session,
            offer_id=town.sold_out_id,
            openid="oEarlyBird",
            client_request_id="early-bird-1",
            now=utcnow(),
        )
    with session_scope(factory) as session:
        points.earn(session, openid="oSaver", points=1000, source_key="order:1:earn", now=utcnow())
    engine.dispose()
    return town


@pytest.fixture
def settings(town: Town) -> TianfuSettings:
    return load_settings(database_url=town.url, secret_key=SECRET_KEY)


@pytest.fixture
async def client(settings: TianfuSettings) -> AsyncIterator[httpx.AsyncClient]:
    async for http in asgi_client(with_coupon_routes(create_app(settings))):
        yield http


class User:
    def __init__(self, http: httpx.AsyncClient, settings: TianfuSettings, openid: str) -> None:
        self.http = http
        self.headers = {"Cookie": cookie_for(settings, openid)}

    async def claim(self, offer_id: int, request_id: str | None = None, **body: Any) -> Any:
        body["client_request_id"] = request_id or str(uuid.uuid4())
        return await self.http.post(
            f"/api/v1/offers/{offer_id}/claims", json=body, headers=self.headers
        )

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path, headers=self.headers)


def user(http: httpx.AsyncClient, settings: TianfuSettings, openid: str | None = None) -> User:
    return User(http, settings, openid or f"o{uuid.uuid4().hex[:20]}")


def refusal(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["detail"]


# -- reading an offer -------------------------------------------------------------------------


async def test_an_offer_is_public_with_its_terms_in_chinese(
    client: httpx.AsyncClient, town: Town
) -> None:
    response = await client.get(f"/api/v1/offers/{town.geo_id}")
    assert response.status_code == 200, response.text
    offer = response.json()
    assert (offer["title_zh"], offer["kind_zh"]) == ("到店领5元", "立减")
    assert offer["terms_zh"] == ["立减5元", "每人限领1张", f"需在适用门店{GEO_RADIUS_M}米内领取"]
    assert offer["validity_zh"] == "长期有效"
    assert (offer["stock_left"], offer["claimable"], offer["geo_targeted"]) == (100, True, True)
    assert offer["store_count"] == 1
    assert [store["id"] for store in offer["stores"]] == [town.hotpot_id]

    every_store = (await client.get(f"/api/v1/offers/{town.plain_id}")).json()
    assert every_store["store_count"] == 2  # no scope: all the merchant's stores
    sold_out = (await client.get(f"/api/v1/offers/{town.sold_out_id}")).json()
    assert (sold_out["stock_left"], sold_out["claimable"]) == (0, False)


async def test_unpublished_and_unknown_offers_are_not_found(
    client: httpx.AsyncClient, town: Town
) -> None:
    for offer_id in (town.draft_id, 999_999):
        response = await client.get(f"/api/v1/offers/{offer_id}")
        assert response.status_code == 404
        assert response.json()["error"] == "offer_not_found"


# -- claiming ---------------------------------------------------------------------------------


async def test_claim_answers_201_then_200_with_the_same_coupon_on_a_repeat(
    client: httpx.AsyncClient, settings: TianfuSettings, town: Town
) -> None:
    me = user(client, settings)
    first = await me.claim(town.plain_id, "tap-0001-abcdef")
    assert first.status_code == 201, first.text
    coupon = first.json()
    assert coupon["status"] == "claimed"
    assert coupon["status_zh"] == "可使用"
    assert coupon["offer_id"] == town.plain_id
    assert coupon["expires_at"] is None
    assert coupon["expires_zh"] == "长期有效"
    code = coupon["code"]
    assert code == format_code(code.replace(" ", ""))  # "4821 0937 5516"
    assert is_valid_code(code)

    repeat = await me.claim(town.plain_id, "tap-0001-abcdef")
    assert repeat.status_code == 200, repeat.text
    assert repeat.json() == coupon


async def test_claim_without_a_session_is_401(client: httpx.AsyncClient, town: Town) -> None:
    response = await client.post(
        f"/api/v1/offers/{town.plain_id}/claims", json={"client_request_id": "no-session-1"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "wechat_login_required"
    for path in ("/api/v1/me/coupons", "/api/v1/me/points"):
        response = await client.get(path)  # JSON for scripts, never a redirect to WeChat
        assert (response.status_code, response.json()["error"]) == (401, "wechat_login_required")


async def test_claim_with_a_malformed_body_is_422(
    client: httpx.AsyncClient, settings: TianfuSettings, town: Town
) -> None:
    me = user(client, settings)
    short = await me.claim(town.plain_id, "short")
    assert short.status_code == 422
    half_a_point = await me.claim(town.geo_id, lat=30.6)
    assert half_a_point.status_code == 422
    mars = await me.claim(town.geo_id, lat=104.07, lng=30.65)  # swapped
    assert mars.status_code == 422


async def test_out_of_stock_is_409_with_the_chinese_message(
    client: httpx.AsyncClient, settings: TianfuSettings, town: Town
) -> None:
    response = await user(client, settings).claim(town.sold_out_id)
    assert refusal(response) == (409, "coupon_out_of_stock", "优惠券已抢光")


async def test_the_per_user_limit_holds(
    client: httpx.AsyncClient, settings: TianfuSettings, town: Town
) -> None:
    me = user(client, settings)
    assert (await me.claim(town.two_each_id)).status_code == 201
    assert (await me.claim(town.two_each_id)).status_code == 201
    third = await me.claim(town.two_each_id)
    assert refusal(third) == (409, "coupon_limit_reached", "每人限领2张，您已领过")
    assert (await user(client, settings).claim(town.two_each_id)).status_code == 201  # others may


async def test_a_geo_targeted_offer_needs_the_user_within_its_radius(
    client: httpx.AsyncClient, settings: TianfuSettings, town: Town
) -> None:
    lat, lng = HOTPOT
    nowhere = await user(client, settings).claim(town.geo_id)
    assert refusal(nowhere)[:2] == (422, "claim_location_required")
    far = await user(client, settings).claim(town.geo_id, lat=lat + 0.01, lng=lng)  # 1.1 km
    assert refusal(far) == (403, "outside_claim_area", "您不在活动范围内，暂不能领取")
    near = await user(client, settings).claim(town.geo_id, lat=lat + 0.0015, lng=lng)  # 167 m
    assert near.status_code == 201, near.text


async def test_geo_positions_in_wgs84_and_bd09_are_converted(
    client: httpx.AsyncClient, settings: TianfuSettings, town: Town
) -> None:
    wgs = gcj02_to_wgs84(*HOTPOT)  # the store itself, as a phone's GPS reports it
    as_sent = await user(client, settings).claim(town.geo_id, lat=wgs.lat, lng=wgs.lng)
    assert refusal(as_sent)[1] == "outside_claim_area"  # read as GCJ-02: ~360 m off
    converted = await user(client, settings).claim(
        town.geo_id, lat=wgs.lat, lng=wgs.lng, coord="wgs84"
    )
    assert converted.status_code == 201, converted.text
    bd = gcj02_to_bd09(*HOTPOT)
    baidu = await user(client, settings).claim(town.geo_id, lat=bd.lat, lng=bd.lng, coord="bd09")
    assert baidu.status_code == 201, baidu.text


# -- mine -------------------------------------------------------------------------------------


async def test_my_coupons_lists_what_i_claimed_newest_first(
    client: httpx.AsyncClient, settings: TianfuSettings, town: Town
) -> None:
    me = user(client, settings)
    assert (await me.get("/api/v1/me/coupons")).json() == []
    plain = (await me.claim(town.plain_id)).json()
    two_each = (await me.claim(town.two_each_id)).json()
    mine = await me.get("/api/v1/me/coupons")
    assert mine.status_code == 200
    assert mine.json() == [
        two_each | {"offer_title_zh": "立减10元"},
        plain | {"offer_title_zh": "立减10元"},
    ]
    assert (await user(client, settings).get("/api/v1/me/coupons")).json() == []  # only mine


async def test_my_points_shows_the_balance_and_a_points_exchange(
    client: httpx.AsyncClient, settings: TianfuSettings, town: Town
) -> None:
    saver = user(client, settings, "oSaver")
    before = (await saver.get("/api/v1/me/points")).json()
    assert before["balance"] == 1000
    assert [(e["delta"], e["kind"]) for e in before["entries"]] == [(1000, "earn")]

    exchanged = await saver.claim(town.exchange_id)
    assert exchanged.status_code == 201, exchanged.text
    after = (await saver.get("/api/v1/me/points")).json()
    assert after["balance"] == 700
    assert [(e["delta"], e["balance_after"], e["kind"]) for e in after["entries"]] == [
        (-300, 700, "exchange"),
        (1000, 1000, "earn"),
    ]

    broke = await user(client, settings).claim(town.exchange_id)
    assert refusal(broke) == (409, "points_insufficient", "积分不足，还差300积分")
