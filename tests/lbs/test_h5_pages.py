"""The H5 pages in headless Chromium, against the real app served by uvicorn on loopback, on a
town of committed stores on each backend, with the WeChat simulator for OAuth and jsapi_ticket.

Every request that is not to loopback is aborted (and recorded): the pages must work without
CDNs or map tiles. WeChat's JS-SDK script is the one exception a test may answer itself, with a
stub `wx` that records what the page asks of it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import TimestampSigner
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    expect,
)
from sqlalchemy.orm import Session

from lbs import links
from lbs.coords import CoordSystem, gcj02_to_wgs84
from lbs.links import NearbyPoint, nearby_token
from lbs.pages import map_view, mask_openid
from lbs.schemas import CategoryBrief, MerchantBrief, NearbyStoreRead, OfferBrief
from lbs.simulator import SimulatorConfig
from lbs.wxcrypto import jssdk_signature
from merchants.opening_hours import WEEKDAYS, OpeningHours
from merchants.service import create_store
from tests.builders import make_merchant
from tests.conftest import PostgresDatabases, new_database_url
from tests.h5_browser import PHONE, Outside, no_horizontal_overflow
from tests.http import asgi_client
from tests.lbs.live_app import base_url_of, h5_app, loopback_socket, serving_until_ready
from tests.lbs.sim_helpers import RunningSimulator, running_simulator
from tianfu import migrate
from tianfu.db import create_db_engine, make_session_factory, session_scope
from tianfu.settings import TianfuSettings, load_settings

APPID = "wx9a9e5a9e5a9e5a9e"
APPSECRET = "9a9e5a9e5a9e5a9e9a9e5a9e5a9e5a9e"
SECRET_KEY = "h5-pages-tests-secret-key-0123456789abcdef"
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI"
)
JWEIXIN_GLOB = "https://res.wx.qq.com/open/js/jweixin-*.js"

T = TypeVar("T")

TIANFU_SQUARE = (30.6574, 104.0661)
SOUTH_STATION = (30.5457, 104.0694)  # ~12 km south: outside the square's 3 km
# 200 m south of the supermarket, where the refreshes say the user now is (GCJ-02).
NOW_HERE = (SOUTH_STATION[0] - 0.0018, SOUTH_STATION[1])
LONG_NAME = "晨光手冲咖啡与烘焙工作室人民南路一段旗舰店" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 2


@dataclass(frozen=True)
class Town:
    url: str
    hotpot_id: int  # ~100 m east of the square, always open, with an offer
    coffee_id: int  # ~600 m north, closed, with a long unbroken name
    supermarket_id: int  # at the south station
    snacks_id: int  # ~300 m north of the south station


@dataclass(frozen=True)
class Live:
    base: str
    settings: TianfuSettings
    town: Town
    sim: RunningSimulator
    jsapi_ticket: Any  # () -> str: the ticket the app signs with (shared through the database)


@pytest.fixture(scope="module")
def town(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Town:
    url = new_database_url(backend, tmp_path_factory.mktemp("h5town"), postgres_databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:

        def store(
            session: Session, category: str, name: str, at: tuple[float, float], **kw: Any
        ) -> int:
            merchant = make_merchant(session, name=f"{name}商户", category_code=category)
            return create_store(
                session,
                merchant_id=merchant.id,
                name=name,
                address="成都市青羊区人民南路一段1号",
                lat_gcj02=at[0],
                lng_gcj02=at[1],
                opening_hours=kw.pop("hours", OpeningHours.always_open()),
                **kw,
            ).id

        square_lat, square_lng = TIANFU_SQUARE
        town = Town(
            url,
            hotpot_id=store(
                session, "hotpot", "蜀味火锅(天府广场店)", (square_lat, square_lng + 0.00104),
                phone="028-80000000",
            ),
            coffee_id=store(
                session, "coffee", LONG_NAME, (square_lat + 0.0054, square_lng),
                hours=OpeningHours.daily(closed_weekdays=WEEKDAYS),
            ),
            supermarket_id=store(session, "supermarket", "南站超市", SOUTH_STATION),
            snacks_id=store(
                session, "snacks", "南湖小吃", (SOUTH_STATION[0] + 0.0027, SOUTH_STATION[1])
            ),
        )  # fmt: skip
    engine.dispose()
    return town


def offers_for(town: Town) -> Any:
    # The coupon engine is not built yet; the page must show what it will answer.
    def lookup(
        session: Session, *, store_ids: Sequence[int], openid: str | None, now: datetime
    ) -> Mapping[int, OfferBrief]:
        brief = OfferBrief(id=7, title="满100减20", explanation="再消费12元可用满100减20")
        return {town.hotpot_id: brief} if town.hotpot_id in store_ids else {}

    return lookup


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimulatorConfig(appid=APPID, appsecret=APPSECRET)) as running:
        yield running


@pytest.fixture(scope="module")
def live(town: Town, sim: RunningSimulator) -> Iterator[Live]:
    with loopback_socket() as sock:
        settings = load_settings(
            database_url=town.url,
            secret_key=SECRET_KEY,
            public_base_url=base_url_of(sock),
            wechat=sim.wechat_settings(),
        )
        app = h5_app(settings)
        app.state.offer_lookup = offers_for(town)
        with serving_until_ready(app, sock) as base:
            yield Live(base, settings, town, sim, app.state.wechat_client.jsapi_ticket)
        app.state.wechat_client.close()


def phone_context(browser: Browser, outside: Outside, **options: Any) -> BrowserContext:
    context = browser.new_context(viewport=PHONE, locale="zh-CN", **options)
    context.route("**/*", outside)
    return context


@pytest.fixture
def outside() -> Outside:
    return Outside()


@pytest.fixture
def page(browser: Browser, outside: Outside) -> Iterator[Page]:
    context = phone_context(browser, outside)
    yield context.new_page()
    context.close()


def nearby_url(live: Live, point: tuple[float, float] = TIANFU_SQUARE) -> str:
    token = nearby_token(live.settings, NearbyPoint(*point))
    return f"{live.base}/h5/nearby?t={token}"


def store_names(page: Page) -> list[str]:
    return page.locator("#stores .store-name").all_inner_texts()


def distances_m(page: Page) -> list[int]:
    texts = page.locator("#stores .distance").all_inner_texts()
    assert all(text.endswith("米") and not text.endswith("公里") for text in texts), texts
    return [int(text.removesuffix("米")) for text in texts]


def map_dots(page: Page) -> list[tuple[str, float, float]]:
    """(number, x, y) of each dot, and the map's centre is the user."""
    dots: list[list[Any]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('#map .map-dot')).map(a => [
            a.querySelector('text').textContent,
            parseFloat(a.querySelector('circle').getAttribute('cx')),
            parseFloat(a.querySelector('circle').getAttribute('cy'))])"""
    )
    return [(str(n), float(x), float(y)) for n, x, y in dots]


# -- the nearby page -------------------------------------------------------------------------


def test_nearby_page_lists_the_nearest_first_with_a_map_on_a_phone(
    live: Live, page: Page, outside: Outside
) -> None:
    response = page.goto(nearby_url(live))
    assert response is not None
    assert response.status == 200
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "width=device-width" in (
        page.locator("meta[name=viewport]").get_attribute("content") or ""
    )
    assert store_names(page) == ["蜀味火锅(天府广场店)", LONG_NAME]
    hotpot_m, coffee_m = distances_m(page)
    assert abs(hotpot_m - 100) <= 2
    assert abs(coffee_m - 600) <= 3
    first, second = page.locator("#stores .store").all()
    assert first.locator(".state").inner_text() == "营业中"
    assert first.locator(".hours").inner_text() == "24小时营业"
    assert first.locator(".category").inner_text() == "火锅"
    assert first.locator(".offer-title").inner_text() == "满100减20"
    assert first.locator(".offer-why").inner_text() == "再消费12元可用满100减20"
    assert second.locator(".state").inner_text() == "已打烊"
    assert second.locator(".offer").count() == 0
    expect(first.locator(".nav")).to_be_hidden()  # no WeChat, no openLocation

    (one, x1, y1), (two, x2, y2) = map_dots(page)
    assert (one, two) == ("1", "2")
    cx, cy = 180, 130  # the user: the centre of the 360×260 map
    assert x1 > cx + 10  # the hotpot is east,
    assert y1 == pytest.approx(cy, abs=1)
    assert y2 < cy - 10  # the coffee shop north
    assert x2 == pytest.approx(cx, abs=1)
    assert page.locator("#map .map-scale text").text_content() == "500米"

    assert no_horizontal_overflow(page)  # even with a 70-character unbroken name
    assert outside.blocked == []  # nothing needed from outside loopback


def expired_token(settings: TianfuSettings, point: NearbyPoint) -> str:
    """A link signed two days ago: the link's own payload, re-signed with an older clock."""

    class TwoDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2 * 86_400

    # A copy: the app's serializer is shared (cached per key) and must not be changed.
    serializer = copy.copy(links._serializer(settings))
    payload = serializer.loads(nearby_token(settings, point))
    serializer.signer = TwoDaysAgo
    return str(serializer.dumps(payload))


def test_expired_and_invalid_links_show_friendly_pages(live: Live, page: Page) -> None:
    expired = expired_token(live.settings, NearbyPoint(*TIANFU_SQUARE))
    response = page.goto(f"{live.base}/h5/nearby?t={expired}")
    assert response is not None
    assert response.status == 410
    expect(page.locator("h1")).to_have_text("链接已过期")
    expect(page.locator(".message-text")).to_contain_text("重新发送你的位置")
    assert no_horizontal_overflow(page)

    for bad in ("?t=forged.token.here", "?t=", ""):
        response = page.goto(f"{live.base}/h5/nearby{bad}")
        assert response is not None
        assert response.status == 403
        expect(page.locator("h1")).to_have_text("链接无效")


def test_refresh_with_the_browser_location_rerenders_for_the_new_point(
    live: Live, browser: Browser, outside: Outside
) -> None:
    # Browsers give WGS-84; the page says so (coord=wgs84) and the server converts.
    lat_wgs, lng_wgs = gcj02_to_wgs84(*NOW_HERE)
    context = phone_context(
        browser,
        outside,
        geolocation={"latitude": lat_wgs, "longitude": lng_wgs},
        permissions=["geolocation"],
    )
    page = context.new_page()
    page.goto(nearby_url(live))
    assert store_names(page)[0] == "蜀味火锅(天府广场店)"
    with page.expect_request("**/api/v1/nearby?*") as request_info:
        page.locator("#refresh").click()
    query = parse_qs(urlsplit(request_info.value.url).query)
    assert query["coord"] == ["wgs84"]
    assert query["radius_m"] == [str(live.settings.wechat.nearby_radius_m)]
    expect(page.locator("#status")).to_have_text("已按你当前的位置更新")
    assert store_names(page) == ["南站超市", "南湖小吃"]
    # 200 m and 500 m only if converted: WGS-84 read as GCJ-02 is ~360 m off in Chengdu.
    supermarket_m, snacks_m = distances_m(page)
    assert abs(supermarket_m - 200) <= 3
    assert abs(snacks_m - 500) <= 5
    assert [n for n, _, _ in map_dots(page)] == ["1", "2"]
    assert page.locator("#summary").inner_text() == "3.0公里内 2 家"
    assert no_horizontal_overflow(page)
    assert outside.blocked == []
    context.close()


WX_STUB = """
window.__wx = {};
window.wx = {
  config: function (c) { window.__wx.config = c; },
  ready: function (callback) { setTimeout(callback, 0); },
  error: function () {},
  getLocation: function (o) {
    window.__wx.locationType = o.type;
    o.success({latitude: %(lat)s, longitude: %(lng)s, accuracy: 20, speed: 0});
  },
  openLocation: function (o) { window.__wx.opened = o; }
};
"""


def test_inside_wechat_the_jssdk_locates_in_gcj02_and_navigates(
    live: Live, browser: Browser, outside: Outside
) -> None:
    context = phone_context(browser, outside, user_agent=WECHAT_UA)
    stub = WX_STUB % {"lat": NOW_HERE[0], "lng": NOW_HERE[1]}
    context.route(
        JWEIXIN_GLOB, lambda route: route.fulfill(body=stub, content_type="text/javascript")
    )
    page = context.new_page()
    with page.expect_request("**/api/v1/nearby?*") as request_info:
        page.goto(nearby_url(live))
    assert parse_qs(urlsplit(request_info.value.url).query)["coord"] == ["gcj02"]
    expect(page.locator("#status")).to_have_text("已按你当前的位置更新")
    assert store_names(page) == ["南站超市", "南湖小吃"]
    assert abs(distances_m(page)[0] - 200) <= 3

    wx = page.evaluate("window.__wx")
    assert wx["locationType"] == "gcj02"
    config = wx["config"]
    assert config["appId"] == APPID
    assert set(config["jsApiList"]) == {"getLocation", "openLocation"}
    # Signed for the URL the browser is at, with the ticket WeChat gave the app.
    expected = jssdk_signature(
        live.jsapi_ticket(), config["nonceStr"], str(config["timestamp"]), page.url
    )
    assert config["signature"] == expected
    assert config["debug"] is False

    first = page.locator("#stores .store").first
    expect(first.locator(".nav")).to_be_visible()
    first.locator(".nav").click()
    opened = page.evaluate("window.__wx.opened")
    assert (opened["latitude"], opened["longitude"]) == pytest.approx(SOUTH_STATION, abs=1e-7)
    assert opened["name"] == "南站超市"
    assert outside.blocked == []
    context.close()


def test_inside_wechat_without_its_script_the_page_still_works(
    live: Live, browser: Browser, outside: Outside
) -> None:
    context = phone_context(browser, outside, user_agent=WECHAT_UA)
    page = context.new_page()
    page.goto(nearby_url(live))
    assert store_names(page) == ["蜀味火锅(天府广场店)", LONG_NAME]
    expect(page.locator("#stores .nav").first).to_be_hidden()
    page.wait_for_load_state("load")
    assert len(outside.blocked) == 1
    assert outside.blocked[0].startswith("https://res.wx.qq.com/open/js/jweixin-")
    context.close()


# -- the WeChat session in a browser ---------------------------------------------------------


def test_oauth_login_in_the_browser_lands_on_me_with_a_safe_cookie(
    live: Live, page: Page, outside: Outside
) -> None:
    visited: list[str] = []
    page.on(
        "request",
        lambda r: visited.append(r.url.split("?", 1)[0]) if r.is_navigation_request() else None,
    )
    response = page.goto(f"{live.base}/h5/me")
    assert response is not None
    assert response.status == 200
    # The browser carries authorize's #wechat_redirect through the 302s; the server never sees it.
    assert page.url.split("#", 1)[0] == f"{live.base}/h5/me"
    assert (
        visited
        == [
            f"{live.base}/h5/me",
            f"{live.sim.base_url}/connect/oauth2/authorize",
            f"{live.base}/h5/oauth/callback",
            f"{live.base}/h5/me",
        ][: len(visited)]
    )
    openid = live.sim.config.default_openid
    expect(page.get_by_test_id("masked-openid")).to_have_text(mask_openid(openid))
    assert openid not in page.content()
    expect(page.get_by_test_id("coupons-placeholder")).to_be_visible()

    (cookie,) = [c for c in page.context.cookies(live.base) if c["name"] == "tianfu_h5"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # the test server is http; https turns it on
    assert cookie["path"] == "/"
    assert "tianfu_h5" not in page.evaluate("document.cookie")  # out of scripts' reach
    assert no_horizontal_overflow(page)
    assert outside.blocked == []

    visited.clear()
    page.goto(f"{live.base}/h5/me")  # the session holds: no second trip to WeChat
    assert visited == [f"{live.base}/h5/me"]


# -- in process: no browser needed -----------------------------------------------------------


def run_apart(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs an in-process (ASGI) check on its own thread: Playwright's sync API keeps an event
    loop on this one, and a second loop here would trip over it."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def in_process(settings: TianfuSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    # ASGITransport runs no lifespan: the store index is built only where a test builds it.
    app = h5_app(settings)
    async for http in asgi_client(app):
        yield app, http
    app.state.wechat_client.close()


def test_before_the_index_is_ready_the_page_asks_to_retry(
    town: Town, sim: RunningSimulator
) -> None:
    settings = load_settings(
        database_url=town.url, secret_key=SECRET_KEY, wechat=sim.wechat_settings()
    )

    async def fetch() -> httpx.Response:
        async for _app, http in in_process(settings):
            token = nearby_token(settings, NearbyPoint(*TIANFU_SQUARE))
            return await http.get("/h5/nearby", params={"t": token})
        raise AssertionError("unreachable")

    response = run_apart(fetch())
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "稍后再试" in response.text
    assert response.headers["retry-after"] == "5"


def test_without_a_jsapi_ticket_the_page_is_served_without_the_jssdk(
    town: Town, sim: RunningSimulator
) -> None:
    async def fetch(settings: TianfuSettings) -> httpx.Response:
        async for app, http in in_process(settings):
            app.state.store_index.build()
            token = nearby_token(settings, NearbyPoint(*TIANFU_SQUARE))
            headers = {"user-agent": WECHAT_UA}
            return await http.get("/h5/nearby", params={"t": token}, headers=headers)
        raise AssertionError("unreachable")

    # Another account (no ticket cached for it) whose API host does not answer.
    with loopback_socket() as dead:
        wechat = sim.wechat_settings(appid="wx00000000000dead0", api_base_url=base_url_of(dead))
        settings = load_settings(database_url=town.url, secret_key=SECRET_KEY, wechat=wechat)
        response = run_apart(fetch(settings))
    assert response.status_code == 200
    assert "蜀味火锅(天府广场店)" in response.text
    assert "jweixin" not in response.text
    config = re.search(r'id="h5-config">(.*?)</script>', response.text)
    assert config is not None
    assert json.loads(config.group(1))["wx"] is None


def _store(store_id: int, lat: float, lng: float) -> NearbyStoreRead:
    return NearbyStoreRead(
        id=store_id, name="店", merchant=MerchantBrief(id=1, name="商户"),
        category=CategoryBrief(code="hotpot", name="火锅"), address="", district="", phone="",
        distance_m=0, distance_text="", open_now=True, opening_hours_text="", lat=lat, lng=lng,
        coord=CoordSystem.GCJ02,
    )  # fmt: skip


def test_map_layout_puts_the_user_in_the_middle_and_stores_by_offset() -> None:
    lat, lng = TIANFU_SQUARE
    east, south = _store(1, lat, lng + 0.0104), _store(2, lat - 0.0045, lng)  # ~1 km, ~500 m
    view = map_view(lat, lng, [east, south], radius_m=3000)
    (d1, d2) = view.dots
    assert (view.cx, view.cy) == (180, 130)
    # The farthest store (east, ~995 m) sits 1/1.15 of the way from the centre to the margin.
    reach_px = 130 - 18
    assert d1.x == pytest.approx(180 + reach_px / 1.15, abs=0.2)
    assert d1.y == pytest.approx(130, abs=0.1)
    assert d2.x == pytest.approx(180, abs=0.1)
    assert d2.y == pytest.approx(130 + reach_px / 1.15 * 500.4 / 994.8, abs=0.3)
    assert view.scale_label == "1公里"  # the longest round length within 30% of the width
    px_per_m = reach_px / 1.15 / 994.8
    assert view.scale_x2 - view.scale_x1 == pytest.approx(1000 * px_per_m, abs=0.2)
    empty = map_view(lat, lng, [], radius_m=3000)
    assert empty.dots == []
    assert empty.scale_label == "2公里"  # no store: the whole search radius, 3 km
