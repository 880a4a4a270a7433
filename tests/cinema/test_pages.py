"""The cinema's H5 pages on both databases, served over loopback with the WeChat Pay simulator:
first over plain HTTP (what each page shows and refuses), then in Chromium the issue's story:
open a showtime, pick two seats, try a pair that would strand a seat (refused, the reason on
screen), hold a good pair, pay with the best coupon through the simulator's cashier, and see
the tickets."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cinema import booking, service
from cinema.listings import beijing_day
from cinema.models import Hold, HoldStatus, SeatHold, Ticket, TicketStatus
from coupons import claims, points
from coupons.models import Claim, ClaimStatus
from lbs.coords import gcj02_to_wgs84
from lbs.h5_session import session_cookie_header
from lbs.links import NearbyPoint, nearby_url
from lbs.locations import remember_location
from lbs.models import LocationSource
from payments.models import Order, OrderStatus
from tests.builders import make_merchant, make_offer, make_store
from tests.cinema.builders import make_hall, make_showtime
from tests.conftest import PostgresDatabases, new_database_url
from tests.h5_browser import Phone, logged_in_phones, no_horizontal_overflow
from tests.lbs.live_app import base_url_of, loopback_socket, serving_until_ready
from tests.payments.test_checkout_pages import checkout_settings
from tests.tenpay.sim_support import RunningTenpay, make_config, running_tenpay
from tianfu import migrate
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory, session_scope
from tianfu.orm import utcnow
from tianfu.settings import TianfuSettings

CINEMA_LAT, CINEMA_LNG = 30.6577, 104.0807  # GCJ-02
CINEMA_NAME = "光影电影城(春熙路店)"
FILM = "熊猫归来"
PAYER = "oPayer000000000000000000001"
LOOKER = "oLooker00000000000000000001"
OTHER = "oOther000000000000000000001"
POINTS_GIVEN = 300
SETTLE_TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class World:
    url: str
    store_id: int
    showtime_id: int
    sold_out_showtime_id: int  # starts in 5 minutes: its sales have closed
    showtime_day: str  # the Beijing days they start on
    sold_out_day: str
    small_code: str  # PAYER's 立减5元 of the cinema's merchant
    big_code: str  # PAYER's 立减20元: the best one
    foreign_code: str  # PAYER's coupon of a hotpot restaurant: not offered here
    looker_code: str  # LOOKER's 立减5元


@pytest.fixture(scope="module")
def world(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> World:
    url = new_database_url(backend, tmp_path_factory.mktemp("cinema-pages"), postgres_databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    now = utcnow()
    with session_scope(factory) as session:
        merchant = make_merchant(session, name="光影电影城", category_code="cinema")
        store = make_store(
            session, merchant=merchant, name=CINEMA_NAME, lat=CINEMA_LAT, lng=CINEMA_LNG
        )
        hall = make_hall(session, store=store)
        showtime = make_showtime(session, hall=hall, starts_at=now + timedelta(hours=3))
        closing = make_showtime(session, hall=hall, starts_at=now + timedelta(minutes=5))
        small = make_offer(session, merchant=merchant, title_zh="立减5元", amount_off_fen=500)
        big = make_offer(session, merchant=merchant, title_zh="立减20元", amount_off_fen=2000)
        foreign = make_offer(session, title_zh="火锅立减10元")
        ids = (store.id, showtime.id, closing.id, small.id, big.id, foreign.id)
        days = [beijing_day(s.starts_at).isoformat() for s in (showtime, closing)]
    codes = {}
    for key, openid, offer_id in (
        ("small", PAYER, ids[3]),
        ("big", PAYER, ids[4]),
        ("foreign", PAYER, ids[5]),
        ("looker", LOOKER, ids[3]),
    ):
        with session_scope(factory) as session:
            codes[key] = claims.claim(
                session, offer_id=offer_id, openid=openid, client_request_id=key, now=now
            ).code
    with session_scope(factory) as session:
        points.earn(session, openid=PAYER, points=POINTS_GIVEN, source_key="gift:1", now=now)
    engine.dispose()
    return World(
        url, store_id=ids[0], showtime_id=ids[1], sold_out_showtime_id=ids[2],
        showtime_day=days[0], sold_out_day=days[1],
        small_code=codes["small"], big_code=codes["big"], foreign_code=codes["foreign"],
        looker_code=codes["looker"],
    )  # fmt: skip


@pytest.fixture(scope="module")
def tenpay() -> Iterator[RunningTenpay]:
    with running_tenpay(make_config()) as sim:
        yield sim


@dataclass(frozen=True)
class Live:
    base: str
    settings: TianfuSettings
    world: World
    tenpay: RunningTenpay
    db: sessionmaker[Session]


@pytest.fixture(scope="module")
def live(world: World, tenpay: RunningTenpay) -> Iterator[Live]:
    engine = create_db_engine(world.url)
    with loopback_socket() as sock:
        settings = checkout_settings(world.url, base_url_of(sock), tenpay.base_url)
        app = create_app(settings)
        with serving_until_ready(app, sock) as base:
            yield Live(base, settings, world, tenpay, make_session_factory(engine))
    engine.dispose()


def cookie(settings: TianfuSettings, openid: str) -> str:
    return session_cookie_header(settings, openid, clock=time.time).split(";", 1)[0]


def get_as(live: Live, openid: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{live.base}{path}",
        params=params,
        headers={"Cookie": cookie(live.settings, openid)},
        follow_redirects=False,
    )


def api_as(live: Live, openid: str, verb: str, path: str, **body: Any) -> httpx.Response:
    return httpx.request(
        verb,
        f"{live.base}{path}",
        json=body or None,
        headers={"Cookie": cookie(live.settings, openid)},
    )


def hold_as(live: Live, openid: str, *seats: str) -> int:
    answer = api_as(
        live, openid, "POST", f"/api/v1/showtimes/{live.world.showtime_id}/holds", seats=seats
    )
    assert answer.status_code == 201, answer.text
    hold_id: int = answer.json()["hold_id"]
    return hold_id


def release(live: Live, openid: str, hold_id: int) -> None:
    assert api_as(live, openid, "DELETE", f"/api/v1/holds/{hold_id}").status_code == 200


def seat_states(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-seat="([A-Z]+\d+)" data-zone="[^"]*" data-state="(\w+)"', html))


# -- over plain HTTP --------------------------------------------------------------------------


def test_cinemas_near_a_position_in_the_link_list_ours_with_distance_and_showtimes(
    live: Live,
) -> None:
    # 1 km north, given in WGS-84 as a phone's GPS reports it.
    lat, lng = gcj02_to_wgs84(CINEMA_LAT + 0.009, CINEMA_LNG)
    page = get_as(live, LOOKER, "/h5/cinema", lat=f"{lat:.6f}", lng=f"{lng:.6f}", coord="wgs84")
    assert page.status_code == 200
    assert "按你的当前位置" in page.text
    assert CINEMA_NAME in page.text
    assert re.search(r"class=\"distance\">1\.0公里", page.text), page.text
    assert f'href="/h5/cinema/{live.world.store_id}"' in page.text
    assert "最近一场" in page.text


def test_without_a_position_the_last_one_sent_is_used_and_without_that_all_cinemas(
    live: Live,
) -> None:
    page = get_as(live, OTHER, "/h5/cinema")
    assert "未获取到你的位置，显示全部影院" in page.text
    assert CINEMA_NAME in page.text
    with live.db.begin() as session:
        remember_location(
            session, openid=OTHER, lat_gcj02=CINEMA_LAT, lng_gcj02=CINEMA_LNG + 0.02,
            source=LocationSource.message, reported_at=utcnow(),
        )  # fmt: skip
    page = get_as(live, OTHER, "/h5/cinema")
    assert "按你最近发送的位置" in page.text
    assert CINEMA_NAME in page.text
    bad = get_as(live, LOOKER, "/h5/cinema", lat="95", lng="104")
    assert bad.status_code == 200
    assert "位置无效" in bad.text


def test_the_nearby_page_of_a_cinema_search_links_to_booking(live: Live) -> None:
    """A user who sends 电影 gets the nearby page in category cinema: each cinema leads on to
    its showtimes."""
    link = nearby_url(live.settings, NearbyPoint(CINEMA_LAT, CINEMA_LNG, "cinema"))
    page = httpx.get(link.replace(live.settings.public_base_url, live.base))
    assert page.status_code == 200
    assert CINEMA_NAME in page.text
    assert f'href="/h5/cinema/{live.world.store_id}" data-testid="book-seats"' in page.text


def test_the_cinema_page_lists_films_with_bookable_and_closed_showtimes(live: Live) -> None:
    path = f"/h5/cinema/{live.world.store_id}"
    page = get_as(live, LOOKER, path, day=live.world.showtime_day)
    assert page.status_code == 200
    assert FILM in page.text
    assert f'href="/h5/cinema/showtimes/{live.world.showtime_id}"' in page.text
    assert "¥39.00起" in page.text
    # The one starting in 5 minutes stopped selling 10 minutes before: shown, not a link.
    closed = get_as(live, LOOKER, path, day=live.world.sold_out_day)
    assert "停止售票" in closed.text
    assert f'href="/h5/cinema/showtimes/{live.world.sold_out_showtime_id}"' not in closed.text
    # A day outside the week, or no date at all, shows today.
    fallback = get_as(live, LOOKER, path, day="2000-01-01").text
    assert re.findall(r'aria-current="date">(\S+)', fallback) == ["今天"]
    assert get_as(live, LOOKER, "/h5/cinema/999999").status_code == 404


def test_the_seat_map_shows_sold_held_mine_and_blocked_seats(live: Live) -> None:
    other_hold = hold_as(live, OTHER, "B1", "B2")
    my_hold = hold_as(live, LOOKER, "B7", "B8")
    try:
        page = get_as(live, LOOKER, f"/h5/cinema/showtimes/{live.world.showtime_id}")
        assert page.status_code == 200
        states = seat_states(page.text)
        assert states["B1"] == states["B2"] == "held"
        assert states["B7"] == states["B8"] == "mine"
        assert states["C2"] == "blocked"
        assert states["A1"] == "free"
        assert 'data-seat="D1" data-zone="V" data-state="free" data-partner="D2"' in page.text
        assert f'href="/h5/cinema/holds/{my_hold}"' in page.text  # the hold's countdown links on
        # The other user sees the same seats the other way round.
        theirs = seat_states(get_as(live, OTHER, page.url.path).text)
        assert (theirs["B1"], theirs["B7"]) == ("mine", "held")
    finally:
        release(live, OTHER, other_hold)
        release(live, LOOKER, my_hold)


def test_best_seats_are_adjacent_near_the_middle_and_skip_others_holds(live: Live) -> None:
    path = f"/api/v1/showtimes/{live.world.showtime_id}/best"
    best = api_as(live, LOOKER, "GET", f"{path}?count=2").json()
    assert best["count"] == 2
    first = best["seats"]
    assert len(first) == 2
    assert first[0][0] == first[1][0]
    held = hold_as(live, OTHER, *first)
    try:
        second = api_as(live, LOOKER, "GET", f"{path}?count=2").json()["seats"]
        assert second
        assert not set(second) & set(first)
    finally:
        release(live, OTHER, held)
    assert api_as(live, LOOKER, "GET", f"{path}?count=7").status_code == 422


def test_checkout_offers_the_best_coupon_first_and_explains_the_rest(live: Live) -> None:
    hold_id = hold_as(live, PAYER, "A3", "A4")
    try:
        page = get_as(live, PAYER, f"/h5/cinema/holds/{hold_id}")
        assert page.status_code == 200
        assert f'value="{live.world.big_code}" checked' in page.text
        assert f'value="{live.world.small_code}"' in page.text
        assert live.world.foreign_code not in page.text  # another merchant's coupon
        assert "可省 ¥20.00" in page.text
        assert "可省 ¥5.00" in page.text
        assert "¥39.00" in page.text  # A3 and A4 are in zone F
        # Someone else's hold is "not found", like one that does not exist.
        assert get_as(live, OTHER, f"/h5/cinema/holds/{hold_id}").status_code == 404
    finally:
        release(live, PAYER, hold_id)
    gone = get_as(live, PAYER, f"/h5/cinema/holds/{hold_id}")
    assert gone.status_code == 410
    assert "锁座已失效" in gone.text


def test_a_hold_already_ordered_shows_the_orders_sums_and_pays_it_again(live: Live) -> None:
    hold_id = hold_as(live, LOOKER, "B3", "B4")
    try:
        choosing = get_as(live, LOOKER, f"/h5/cinema/holds/{hold_id}")
        assert choosing.text.count('type="radio" name="coupon"') == 2  # none, or the 立减5元
        made = api_as(live, LOOKER, "POST", f"/api/v1/holds/{hold_id}/checkout", points=0)
        assert made.status_code == 201, made.text
        page = get_as(live, LOOKER, f"/h5/cinema/holds/{hold_id}")
        assert page.status_code == 200
        assert "继续支付" in page.text
        assert "订单已生成" in page.text
        assert '<span data-testid="payable">118.00</span>' in page.text  # B is zone G, 59.00
        assert f'"orderNo": "{made.json()["order_no"]}"' in page.text
        assert 'type="radio" name="coupon"' not in page.text  # the order's choices stand
    finally:
        release(live, LOOKER, hold_id)


def test_a_coupon_of_an_order_gone_to_the_cashier_is_shown_as_busy_on_a_new_hold(
    live: Live,
) -> None:
    code = live.world.looker_code
    first = hold_as(live, LOOKER, "B5", "B6")
    made = api_as(
        live, LOOKER, "POST", f"/api/v1/holds/{first}/checkout", coupon_code=code, points=0
    )
    assert made.status_code == 201, made.text
    order_no = made.json()["order_no"]
    paying = api_as(live, LOOKER, "POST", f"/api/v1/orders/{order_no}/pay", method="jsapi")
    assert paying.status_code == 200, paying.text
    release(live, LOOKER, first)  # 重新选座, after the cashier opened
    second = hold_as(live, LOOKER, "B5", "B6")
    try:
        page = get_as(live, LOOKER, f"/h5/cinema/holds/{second}")
        assert re.search(rf'value="{code}"[^>]*disabled', page.text), page.text
        assert "正在另一笔待支付订单中使用，约 1 分钟后释放" in page.text
        assert f'value="{code}" checked' not in page.text  # not chosen as "the best"
    finally:
        release(live, LOOKER, second)


def test_ids_past_the_integer_range_are_a_422_and_nothing_else(live: Live) -> None:
    """PostgreSQL would refuse such an id inside the query and SQLite would look it up; both
    answer the same clear refusal, never a 500."""
    huge = 2**31
    for verb, path in (
        ("GET", f"/api/v1/showtimes/{huge}/seats"),
        ("GET", f"/api/v1/showtimes/{huge}/best"),
        ("POST", f"/api/v1/showtimes/{huge}/holds"),
        ("DELETE", f"/api/v1/holds/{huge}"),
        ("POST", f"/api/v1/holds/{huge}/checkout"),
        ("GET", f"/h5/cinema/{huge}"),
        ("GET", f"/h5/cinema/showtimes/{huge}"),
        ("GET", f"/h5/cinema/holds/{huge}"),
    ):
        answer = api_as(live, LOOKER, verb, path, seats=["A1"], points=0)
        assert answer.status_code == 422, (verb, path, answer.text)
        assert answer.json()["error"] == "invalid_input"


def test_expired_holds_are_tidied_by_the_jobs_housekeeping(live: Live) -> None:
    from tianfu.wiring import housekeeping_jobs

    hold_id = hold_as(live, OTHER, "A8")
    later = utcnow() + timedelta(seconds=live.settings.payments.order_ttl_s + 1)
    with live.db.begin() as session:
        tidied = sum(job(session, later) for job in housekeeping_jobs().values())
    assert tidied >= 1
    with live.db() as session:
        assert session.get_one(Hold, hold_id).status is HoldStatus.expired
        assert session.scalars(select(SeatHold).where(SeatHold.hold_id == hold_id)).all() == []


# -- in the browser ---------------------------------------------------------------------------


@pytest.fixture
def phone(live: Live, browser: Browser) -> Iterator[Callable[[str], Phone]]:
    """A phone-sized browser logged in as `openid`, as the OAuth callback would leave it."""
    with logged_in_phones(
        browser, live.base, lambda openid: cookie(live.settings, openid)
    ) as opener:
        yield opener


def seat(page: Page, seat_id: str) -> Any:
    return page.locator(f'.seat[data-seat="{seat_id}"]')


def test_choose_two_seats_be_refused_a_stranding_pair_pay_and_get_tickets(
    live: Live, phone: Callable[[str], Phone]
) -> None:
    me = phone(PAYER)
    page = me.page
    page.goto(f"{live.base}/h5/cinema/{live.world.store_id}?day={live.world.showtime_day}")
    page.get_by_test_id("showing").first.click()
    page.wait_for_url(f"{live.base}/h5/cinema/showtimes/{live.world.showtime_id}")
    expect(page.get_by_test_id("film-title")).to_have_text(FILM)
    assert no_horizontal_overflow(page)

    # A2 + A3 would leave A1 alone against the wall while A3 + A4 strands nobody: refused.
    seat(page, "A2").click()
    seat(page, "A3").click()
    expect(page.get_by_test_id("chosen")).to_contain_text("A排2座")
    expect(page.get_by_test_id("total")).to_have_text("78.00")
    page.locator("#confirm").click()
    refusal = page.get_by_test_id("refusal")
    expect(refusal).to_contain_text("A1")
    expect(refusal).to_contain_text("单独空出")
    expect(seat(page, "A1")).to_have_class(re.compile(r"\bflagged\b"))
    with live.db() as session:
        live_holds = select(Hold).where(Hold.openid == PAYER, Hold.status == HoldStatus.held)
        assert session.scalars(live_holds).all() == []

    # A couple seat comes with its other half.
    seat(page, "D1").click()
    expect(seat(page, "D2")).to_have_class(re.compile(r"\bselected\b"))
    seat(page, "D2").click()
    expect(seat(page, "D1")).not_to_have_class(re.compile(r"\bselected\b"))

    seat(page, "A2").click()  # off again: A3 + A4
    seat(page, "A4").click()
    expect(page.get_by_test_id("refusal")).to_have_text("")
    page.locator("#confirm").click()
    page.wait_for_url(re.compile(re.escape(f"{live.base}/h5/cinema/holds/")))
    expect(page.get_by_test_id("held-seats")).to_contain_text("A3")
    expect(page.get_by_test_id("countdown")).to_have_text(re.compile(r"^1[45]:\d\d$"))
    # The best coupon is chosen already: 78.00 - 20.00, then 100 points take 1.00 more.
    page.locator("#points").fill("100")
    expect(page.get_by_test_id("payable")).to_have_text("57.00")
    assert no_horizontal_overflow(page)

    page.locator("#pay").click()
    page.wait_for_url(re.compile(re.escape(f"{live.tenpay.base_url}/sim/cashier?prepay_id=")))
    expect(page.locator("#amount")).to_contain_text("57.00")
    page.locator("#pay").click()

    page.wait_for_url(re.compile(re.escape(f"{live.base}/h5/cinema/orders/")))
    headline = page.locator("#headline")
    expect(headline).to_have_attribute("data-state", "ticketed", timeout=SETTLE_TIMEOUT_MS)
    expect(headline).to_have_text("出票成功")
    expect(page.get_by_test_id("seats")).to_have_text("A3 A4")
    expect(page.get_by_test_id("ticket")).to_have_count(2)
    codes = page.get_by_test_id("ticket-code").all_inner_texts()
    assert all(re.fullmatch(r"[2-9A-HJKMNP-Z]{4}( [2-9A-HJKMNP-Z]{4}){3}", c) for c in codes)
    expect(page.locator('[data-testid="ticket"] svg').first).to_be_visible()
    assert no_horizontal_overflow(page)
    assert me.outside.blocked == []
    assert me.console_errors == []

    with live.db() as session:
        order = session.scalars(
            select(Order).where(Order.openid == PAYER, Order.kind == booking.ORDER_KIND)
        ).one()
        assert order.status is OrderStatus.paid
        assert (order.total_fen, order.discount_fen, order.points_fen) == (7800, 2000, 100)
        tickets = session.scalars(select(Ticket).where(Ticket.order_id == order.id)).all()
        assert sorted(t.seat_id for t in tickets) == ["A3", "A4"]
        assert {t.status for t in tickets} == {TicketStatus.valid}
        assert sorted(code.replace(" ", "") for code in codes) == sorted(t.code for t in tickets)
        coupon = session.scalars(select(Claim).where(Claim.code == live.world.big_code)).one()
        assert (coupon.status, coupon.order_ref) == (ClaimStatus.redeemed, order.order_no)
        states = service.seat_states(session, live.world.showtime_id, utcnow())
        assert {"A3", "A4"} <= states.sold

    # The seats are sold for everyone else now.
    other = seat_states(get_as(live, OTHER, f"/h5/cinema/showtimes/{live.world.showtime_id}").text)
    assert other["A3"] == other["A4"] == "sold"
    listed = get_as(live, PAYER, "/h5/cinema/tickets")
    assert f"/h5/cinema/orders/{order.order_no}" in listed.text
    assert get_as(live, OTHER, f"/h5/cinema/orders/{order.order_no}").status_code == 404
    # The payments result page sends a ticket order on to its tickets.
    result = get_as(live, PAYER, f"/h5/orders/{order.order_no}")
    assert result.status_code == 303
    assert result.headers["location"] == f"/h5/cinema/orders/{order.order_no}"
