"""What the Official Account answers to each kind of push, through the HTTP app on both
backends: locations, keywords, menu clicks, subscriptions, events, retries."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from defusedxml.ElementTree import fromstring
from fastapi import FastAPI
from sqlalchemy import select

from lbs.links import read_nearby_token
from lbs.models import InboundPush, LocationSource, ReplyDelivery, UserLocation
from lbs.wechat_push import event_xml, location_message_xml, text_message_xml
from lbs.wxxml import parse_xml
from tests.http import asgi_client
from tests.lbs.wechat_support import (
    ACCOUNT_ID,
    HOSTILE_NAME,
    TIANFU_SQUARE,
    Pusher,
    Town,
    articles_of,
    next_msg_id,
    wechat_settings,
)
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory

pytestmark = pytest.mark.anyio

_users = itertools.count(1)


@pytest.fixture
def app(town: Town) -> FastAPI:
    app = create_app(wechat_settings(town.url))
    app.state.store_index.build()
    return app


@pytest.fixture
async def pusher(app: FastAPI) -> AsyncIterator[Pusher]:
    async for client in asgi_client(app):
        yield Pusher(client)


@pytest.fixture
def user() -> str:
    # A fresh openid per test: last locations and dedup keys do not leak between tests.
    return f"oRoutingTestUser{datetime.now(UTC):%H%M%S%f}{next(_users):04d}"


def _now() -> int:
    return int(datetime.now(UTC).timestamp())


def _location(user: str, lat: float, lng: float, **extra: Any) -> str:
    return location_message_xml(
        to_user=ACCOUNT_ID,
        from_user=user,
        lat=lat,
        lng=lng,
        label="四川省成都市青羊区天府广场",
        msg_id=extra.pop("msg_id", next_msg_id()),
        create_time=_now(),
        **extra,
    )


def _text(user: str, content: str) -> str:
    return text_message_xml(
        to_user=ACCOUNT_ID,
        from_user=user,
        content=content,
        msg_id=next_msg_id(),
        create_time=_now(),
    )


_event_seconds = itertools.count()


def _event(user: str, event: str, **extra: Any) -> str:
    # Events are deduplicated by user, CreateTime and name: distinct events need distinct times.
    created = _now() + next(_event_seconds)
    return event_xml(to_user=ACCOUNT_ID, from_user=user, event=event, create_time=created, **extra)


def _stored_location(town: Town, user: str) -> UserLocation | None:
    engine = create_db_engine(town.url)
    try:
        with make_session_factory(engine)() as session:
            return session.get(UserLocation, user)
    finally:
        engine.dispose()


async def test_location_gets_one_news_card_with_a_signed_link(
    pusher: Pusher, app: FastAPI, town: Town, user: str
) -> None:
    reply = await pusher.reply_element(_location(user, *TIANFU_SQUARE))
    assert reply.findtext("ToUserName") == user
    assert reply.findtext("FromUserName") == ACCOUNT_ID
    [article] = articles_of(reply)  # WeChat shows one article for a reply to a message
    assert HOSTILE_NAME in article["Title"]  # the nearest store, its name intact
    assert "另有1家" in article["Description"]
    token = article["Url"].split("?t=", 1)[1]
    point = read_nearby_token(app.state.settings, token)
    assert (point.lat_gcj02, point.lng_gcj02) == pytest.approx(TIANFU_SQUARE)
    stored = _stored_location(town, user)
    assert stored is not None
    assert stored.source is LocationSource.message
    assert (stored.lat_gcj02, stored.lng_gcj02) == pytest.approx(TIANFU_SQUARE)


async def test_merchant_name_with_cdata_terminator_cannot_inject_xml(
    pusher: Pusher, user: str
) -> None:
    reply = await pusher.reply(_location(user, *TIANFU_SQUARE))
    fields = parse_xml(reply.encode("utf-8"))
    assert fields["MsgType"] == "news"  # one MsgType element: the name did not add another
    document = fromstring(reply)
    assert len(document.findall("MsgType")) == 1
    assert HOSTILE_NAME in (document.findtext("Articles/item/Title") or "")


async def test_nothing_in_range_gets_the_nearest_distance_and_a_wider_link(
    pusher: Pusher, app: FastAPI, user: str
) -> None:
    # 6 km south-west of the square: the far supermarket is the nearest at about 7 km
    reply = await pusher.reply_element(_location(user, 30.57, 104.02))
    assert reply.findtext("MsgType") == "text"
    content = reply.findtext("Content") or ""
    assert "3.0公里内暂时没有" in content
    assert "华府生鲜超市" in content
    link = content.split('href="', 1)[1].split('"', 1)[0]
    point = read_nearby_token(app.state.settings, link.split("?t=", 1)[1])
    assert point.radius_m is not None
    assert point.radius_m == 6000  # the supermarket is about 5.6 km away


async def test_keywords_use_the_fresh_last_location(pusher: Pusher, user: str) -> None:
    asked = await pusher.reply_element(_text(user, "附近"))
    assert "发送您的位置" in (asked.findtext("Content") or "")
    await pusher.reply(_location(user, *TIANFU_SQUARE))
    nearby = articles_of(await pusher.reply_element(_text(user, "附近")))
    assert len(nearby) == 1
    coffee = articles_of(await pusher.reply_element(_text(user, "想喝咖啡")))
    assert "晨光咖啡" in coffee[0]["Title"]
    assert "另有" not in coffee[0]["Description"]  # only the coffee shop matches
    hotpot = articles_of(await pusher.reply_element(_text(user, "附近的串串香")))
    assert HOSTILE_NAME in hotpot[0]["Title"]


async def test_a_stale_last_location_is_not_used(pusher: Pusher, app: FastAPI, user: str) -> None:
    await pusher.reply(_location(user, *TIANFU_SQUARE))
    later = datetime.now(UTC) + timedelta(seconds=app.state.settings.wechat.location_fresh_s + 60)
    app.state.push_handler.clock = lambda: later
    pusher.clock = later.timestamp
    asked = await pusher.reply_element(_text(user, "美食"))
    assert "发送您的位置" in (asked.findtext("Content") or "")


async def test_other_text_gets_help_and_my_coupons_gets_a_link(pusher: Pusher, user: str) -> None:
    help_reply = await pusher.reply_element(_text(user, "你好，请问营业时间"))
    assert "发送位置" in (help_reply.findtext("Content") or "")
    coupons = await pusher.reply_element(_text(user, "我的券"))
    assert "/h5/me" in (coupons.findtext("Content") or "")


async def test_location_event_is_stored_converted_and_answered_with_success(
    town: Town, user: str
) -> None:
    app = create_app(wechat_settings(town.url, location_event_coord="wgs84"))
    app.state.store_index.build()
    async for client in asgi_client(app):
        extra = {"Latitude": "30.659844", "Longitude": "104.063337", "Precision": "30.0"}
        assert await Pusher(client).reply(_event(user, "LOCATION", extra=extra)) == "success"
    stored = _stored_location(town, user)
    assert stored is not None
    assert stored.source is LocationSource.event
    # WGS-84 in, GCJ-02 stored: about 360 m apart in Chengdu (spec §7)
    assert (stored.lat_gcj02, stored.lng_gcj02) == pytest.approx((30.65742, 104.06584), abs=2e-5)
    assert stored.precision_m == pytest.approx(30.0)


async def test_subscribe_scan_click_view_and_unknown(pusher: Pusher, town: Town, user: str) -> None:
    welcome = await pusher.reply_element(_event(user, "subscribe"))
    assert "欢迎关注" in (welcome.findtext("Content") or "")
    at_store = await pusher.reply_element(
        _event(
            user, "subscribe", event_key=f"qrscene_store_{town.coffee_id}", extra={"Ticket": "T"}
        )
    )
    assert "欢迎光临晨光咖啡" in (at_store.findtext("Content") or "")
    scan = await pusher.reply_element(_event(user, "SCAN", event_key=f"store_{town.coffee_id}"))
    assert "欢迎光临晨光咖啡" in (scan.findtext("Content") or "")
    assert (
        await pusher.reply(_event(user, "VIEW", event_key="https://example.invalid/")) == "success"
    )
    assert await pusher.reply(_event(user, "unsubscribe")) == "success"
    assert await pusher.reply(_event(user, "some_future_event")) == "success"
    image = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]>"
        f"</FromUserName><CreateTime>{_now()}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
        f"<PicUrl><![CDATA[http://127.0.0.1/x.jpg]]></PicUrl><MediaId><![CDATA[m]]></MediaId>"
        f"<MsgId>{next_msg_id()}</MsgId></xml>"
    )
    polite = await pusher.reply_element(image)
    assert "暂时无法识别" in (polite.findtext("Content") or "")


async def test_nearby_menu_click_gets_up_to_eight_cards(pusher: Pusher, user: str) -> None:
    asked = await pusher.reply_element(_event(user, "CLICK", event_key="NEARBY_OFFERS"))
    assert "发送您的位置" in (asked.findtext("Content") or "")
    await pusher.reply(_location(user, *TIANFU_SQUARE))
    cards = articles_of(await pusher.reply_element(_event(user, "CLICK", event_key="附近优惠")))
    assert 2 <= len(cards) <= 8
    assert HOSTILE_NAME in cards[1]["Title"]
    assert "晨光咖啡" in cards[2]["Title"]


async def test_a_retry_gets_the_same_reply_and_is_stored_once(
    pusher: Pusher, town: Town, user: str
) -> None:
    message = _location(user, *TIANFU_SQUARE)
    first = await pusher.reply(message)
    again = await pusher.reply(message)
    assert again == first
    engine = create_db_engine(town.url)
    try:
        with make_session_factory(engine)() as session:
            rows = session.scalars(select(InboundPush).where(InboundPush.openid == user)).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    assert rows[0].delivery is ReplyDelivery.passive
    assert rows[0].reply_xml == first


async def test_two_events_in_one_second_are_both_handled(
    pusher: Pusher, town: Town, user: str
) -> None:
    # subscribe + LOCATION in the same second: the event name is part of the dedup key
    created = _now()
    subscribe = event_xml(
        to_user=ACCOUNT_ID, from_user=user, event="subscribe", create_time=created
    )
    location = event_xml(
        to_user=ACCOUNT_ID,
        from_user=user,
        event="LOCATION",
        create_time=created,
        extra={"Latitude": "30.6574", "Longitude": "104.0661", "Precision": "10"},
    )
    assert "欢迎关注" in await pusher.reply(subscribe)
    assert await pusher.reply(location) == "success"
    assert _stored_location(town, user) is not None


async def test_out_of_range_location_is_refused(pusher: Pusher, user: str) -> None:
    response = await pusher.push(_location(user, 95.0, 104.0))
    assert response.status_code == 400


async def test_nearby_api_and_reply_agree(pusher: Pusher, user: str) -> None:
    http: httpx.AsyncClient = pusher.http
    listed = await http.get(
        "/api/v1/nearby", params={"lat": TIANFU_SQUARE[0], "lng": TIANFU_SQUARE[1]}
    )
    names = [store["name"] for store in listed.json()["stores"]]
    [article] = articles_of(await pusher.reply_element(_location(user, *TIANFU_SQUARE)))
    assert names[0] in article["Title"]


async def test_pushes_past_their_retention_are_forgotten(town: Town, user: str) -> None:
    app = create_app(wechat_settings(town.url, dedup_retention_s=3600))
    app.state.store_index.build()
    handler = app.state.push_handler
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    async for client in asgi_client(app):
        pusher = Pusher(client)
        handler.clock = lambda: two_hours_ago
        pusher.clock = two_hours_ago.timestamp
        old = _text(user, "帮助")
        await pusher.reply(old)
        handler.clock = lambda: datetime.now(UTC)
        pusher.clock = time.time
        handler._last_prune = 0.0  # as if this worker had not pruned for a minute
        await pusher.reply(_text(user, "附近"))
    engine = create_db_engine(town.url)
    try:
        with make_session_factory(engine)() as session:
            kept = session.scalars(select(InboundPush.msg_type).where(InboundPush.openid == user))
            assert list(kept) == ["text"]  # only the recent one
    finally:
        engine.dispose()
