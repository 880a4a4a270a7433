"""The coupon H5 pages in headless Chromium, against the real app served by uvicorn on loopback,
on committed data of each backend. The WeChat session is minted into the browser as the OAuth
callback would set it; every request that leaves loopback is aborted (and recorded)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from coupons import claims, points
from coupons.qr import QR_SIZE_PX, qr_svg
from lbs.coords import gcj02_to_wgs84
from lbs.h5_session import session_cookie_header
from tests.builders import make_merchant, make_offer, make_store
from tests.conftest import PostgresDatabases, new_database_url
from tests.coupons.test_api import with_coupon_routes
from tests.h5_browser import PHONE, Outside, no_horizontal_overflow
from tests.lbs.live_app import base_url_of, loopback_socket, serving_until_ready
from tianfu import migrate
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory, session_scope
from tianfu.orm import utcnow
from tianfu.settings import TianfuSettings, load_settings

SECRET_KEY = "coupon-pages-tests-secret-key-0123456789abcdef"
HOTPOT = (30.6574, 104.06714)  # GCJ-02
CODE_4_4_4 = re.compile(r"^\d{4} \d{4} \d{4}$")


@dataclass(frozen=True)
class Town:
    url: str
    plain_id: int  # one per user, every store
    geo_id: int  # within 200 m of the hotpot store


@dataclass(frozen=True)
class Live:
    base: str
    settings: TianfuSettings
    town: Town


@pytest.fixture(scope="module")
def town(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Town:
    url = new_database_url(backend, tmp_path_factory.mktemp("coupon-pages"), postgres_databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        merchant = make_merchant(session)
        hotpot = make_store(session, merchant=merchant, lat=HOTPOT[0], lng=HOTPOT[1])
        plain = make_offer(session, merchant=merchant, title_zh="立减10元", per_user_limit=1)
        geo = make_offer(
            session, merchant=merchant, title_zh="到店领5元", amount_off_fen=500,
            claim_radius_m=200, store_ids=[hotpot.id],
        )  # fmt: skip
        short_lived = make_offer(session, merchant=merchant, valid_days_after_claim=1)
        town = Town(url, plain_id=plain.id, geo_id=geo.id)
    # oHistory: a coupon claimed ten days ago (expired after one), one redeemed, one usable.
    long_ago = utcnow() - timedelta(days=10)
    with session_scope(factory) as session:
        claims.claim(
            session, offer_id=short_lived.id, openid="oHistory", client_request_id="past-0001",
            now=long_ago,
        )  # fmt: skip
    with session_scope(factory) as session:
        used = claims.claim(
            session, offer_id=plain.id, openid="oHistory", client_request_id="used-0001",
            now=long_ago,
        )  # fmt: skip
    with session_scope(factory) as session:
        claims.redeem(session, code=used.code, store_id=hotpot.id, now=long_ago)
    with session_scope(factory) as session:
        claims.claim(
            session, offer_id=geo.id, openid="oHistory", client_request_id="live-0001",
            now=utcnow(), lat_gcj02=HOTPOT[0], lng_gcj02=HOTPOT[1],
        )  # fmt: skip
    with session_scope(factory) as session:
        points.earn(session, openid="oHistory", points=1200, source_key="o:1", now=long_ago)
        points.spend(session, openid="oHistory", points=200, source_key="o:2", now=utcnow())
    engine.dispose()
    return town


@pytest.fixture(scope="module")
def live(town: Town) -> Iterator[Live]:
    with loopback_socket() as sock:
        settings = load_settings(
            database_url=town.url, secret_key=SECRET_KEY, public_base_url=base_url_of(sock)
        )
        app = with_coupon_routes(create_app(settings))
        with serving_until_ready(app, sock) as base:
            yield Live(base, settings, town)


@dataclass
class Session:
    context: BrowserContext
    page: Page
    outside: Outside
    console_errors: list[str]


@pytest.fixture
def logged_in(live: Live, browser: Browser) -> Iterator[Any]:
    """Opens a phone-sized browser logged in as a user: `logged_in(openid, **context_options)`."""
    contexts: list[BrowserContext] = []

    def open_as(openid: str, **options: Any) -> Session:
        outside = Outside()
        context = browser.new_context(viewport=PHONE, locale="zh-CN", **options)
        contexts.append(context)
        context.route("**/*", outside)
        name, _, value = cookie(live.settings, openid).partition("=")
        context.add_cookies([{"name": name, "value": value, "url": live.base}])
        page = context.new_page()
        errors: list[str] = []

        def on_console(message: Any) -> None:
            # A CSP refusal (an inline script or style without the nonce) or a script error;
            # not the browser's note on an HTTP error answer, which some tests expect.
            if message.type == "error" and not message.text.startswith("Failed to load"):
                errors.append(message.text)

        page.on("console", on_console)
        return Session(context, page, outside, errors)

    yield open_as
    for context in contexts:
        context.close()


def cookie(settings: TianfuSettings, openid: str) -> str:
    return session_cookie_header(settings, openid, clock=time.time).split(";", 1)[0]


def my_coupons(live: Live, openid: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{live.base}/api/v1/me/coupons", headers={"Cookie": cookie(live.settings, openid)}
    )
    assert response.status_code == 200
    coupons: list[dict[str, Any]] = response.json()
    return coupons


def claim_posts(page: Page, offer_id: int) -> list[Any]:
    posts: list[Any] = []
    path = f"/api/v1/offers/{offer_id}/claims"
    page.on("request", lambda r: posts.append(r.post_data_json) if path in r.url else None)
    return posts


# -- in the browser ---------------------------------------------------------------------------


def test_a_double_tap_claims_once_and_my_coupons_shows_the_code_and_qr(
    live: Live, logged_in: Any
) -> None:
    me: Session = logged_in("oDoubleTap")
    page = me.page
    posts = claim_posts(page, live.town.plain_id)
    response = page.goto(f"{live.base}/h5/offers/{live.town.plain_id}")
    assert response is not None
    assert response.status == 200
    expect(page.get_by_test_id("offer-title")).to_have_text("立减10元")
    page.locator("#claim").dblclick()
    code = page.get_by_test_id("claimed-code")
    expect(code).to_have_text(CODE_4_4_4)
    expect(page.locator("#claim")).to_have_text("已领取")
    assert no_horizontal_overflow(page)

    (coupon,) = my_coupons(live, "oDoubleTap")
    assert coupon["code"] == code.inner_text()
    assert len({post["client_request_id"] for post in posts}) == 1

    page.goto(f"{live.base}/h5/me/coupons")
    (item,) = page.get_by_test_id("coupon").all()
    expect(item.get_by_test_id("coupon-code")).to_have_text(coupon["code"])
    expect(item.locator(".coupon-status")).to_have_text("可使用")
    qr = item.locator("svg.qr")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box is not None
    assert (box["width"], box["height"]) == (QR_SIZE_PX, QR_SIZE_PX)
    assert no_horizontal_overflow(page)
    assert me.outside.blocked == []
    assert me.console_errors == []


def test_a_refusal_shows_why_in_chinese(live: Live, logged_in: Any) -> None:
    me: Session = logged_in("oGreedy")
    page = me.page
    page.goto(f"{live.base}/h5/offers/{live.town.plain_id}")
    page.locator("#claim").click()
    expect(page.get_by_test_id("claimed-code")).to_have_text(CODE_4_4_4)

    page.reload()  # a new page load: a new request id, so a second coupon is asked for
    expect(page.locator(".coupons .code")).to_have_count(1)  # "我已领取"
    page.locator("#claim").click()
    expect(page.locator("#claim-error")).to_have_text("每人限领1张，您已领过")
    expect(page.locator("#claim")).to_have_text("无法领取")
    expect(page.locator("#claim")).to_be_disabled()
    assert len(my_coupons(live, "oGreedy")) == 1
    assert me.console_errors == []


def test_a_geo_offer_uses_the_position_and_a_lost_answer_retried_claims_once(
    live: Live, logged_in: Any
) -> None:
    # The browser reports WGS-84, as a phone's GPS does; the page says so and the API converts.
    wgs = gcj02_to_wgs84(*HOTPOT)
    me: Session = logged_in(
        "oWalker",
        geolocation={"latitude": wgs.lat, "longitude": wgs.lng},
        permissions=["geolocation"],
    )
    page = me.page
    posts = claim_posts(page, live.town.geo_id)
    lost: list[int] = []

    def lose_the_first_answer(route: Route) -> None:
        if lost:
            route.continue_()
            return
        lost.append(route.fetch().status)  # the server claims; the phone never hears back
        route.abort("connectionreset")

    page.route(f"**/api/v1/offers/{live.town.geo_id}/claims", lose_the_first_answer)
    page.goto(f"{live.base}/h5/offers/{live.town.geo_id}")
    page.locator("#claim").click()
    expect(page.locator("#claim-error")).to_have_text("网络异常，请重试")
    assert lost == [201]
    page.locator("#claim").click()
    expect(page.get_by_test_id("claimed-code")).to_have_text(CODE_4_4_4)

    (coupon,) = my_coupons(live, "oWalker")
    assert coupon["code"] == page.get_by_test_id("claimed-code").inner_text()
    assert [post["coord"] for post in posts] == ["wgs84", "wgs84"]
    assert len({post["client_request_id"] for post in posts}) == 1


# -- over plain HTTP --------------------------------------------------------------------------


def test_my_coupons_page_shows_each_status_and_a_qr_only_for_usable_ones(live: Live) -> None:
    page = httpx.get(
        f"{live.base}/h5/me/coupons", headers={"Cookie": cookie(live.settings, "oHistory")}
    )
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    statuses = re.findall(r'data-status="(\w+)"', page.text)
    assert statuses == ["claimed", "redeemed", "expired"]  # newest first
    for label in ("可使用", "已使用", "已过期"):
        assert label in page.text
    assert page.text.count("<svg") == 1
    # The inline style is admitted by this response's nonce, and by nothing else.
    (nonce,) = set(re.findall(r"'nonce-([\w-]+)'", page.headers["content-security-policy"]))
    assert f'<style nonce="{nonce}">' in page.text


def test_my_points_page_shows_the_balance_and_history(live: Live) -> None:
    page = httpx.get(
        f"{live.base}/h5/me/points", headers={"Cookie": cookie(live.settings, "oHistory")}
    )
    assert page.status_code == 200
    assert re.search(r'data-testid="points-balance">1000<', page.text)
    assert page.text.index("积分抵扣") < page.text.index("消费获得")  # newest first
    assert "-200" in page.text
    assert "+1200" in page.text


def test_the_pages_need_the_wechat_session(live: Live) -> None:
    for path in ("/h5/me/coupons", "/h5/me/points", f"/h5/offers/{live.town.plain_id}"):
        # No WeChat account configured here: the login page explains instead of redirecting.
        response = httpx.get(f"{live.base}{path}")
        assert response.status_code == 503
        assert "暂时无法登录" in response.text


def test_qr_svg_is_a_phone_sized_level_m_symbol_of_the_code() -> None:
    svg = ElementTree.fromstring(qr_svg("482109375516"))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert (svg.get("width"), svg.get("height")) == (str(QR_SIZE_PX), str(QR_SIZE_PX))
    # Version 1 (21 modules) plus a 4-module quiet zone each side: 12 digits at level M.
    assert svg.get("viewBox") == "0 0 29 29"
    assert all(element.get("id") is None for element in svg.iter())  # several fit on one page
    assert qr_svg("482109375516") != qr_svg("482109375523")
