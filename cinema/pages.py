"""The cinema's H5 pages inside WeChat: cinemas near the user, a cinema's films and showtimes,
the seat map, the checkout of a hold (its countdown, the best coupon, points, WeChat Pay) and the
tickets. Every page needs the WeChat session (lbs.h5_session); their scripts call the JSON APIs
of cinema.api and payments.api, so the pages hold no rule of their own: the seat map's page
sends the user's choice and shows the server's refusal, word for word.

Templates as in payments/pages.py: our own Jinja environment over cinema/templates, then
payments/templates (the checkout's shared script and styles) and lbs/templates (the base page);
inline scripts and styles carry a nonce made per response.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cinema import catalog, listings, service
from cinema.booking import SEATS_GONE_REFUNDER, SHOWTIME_CANCELLED_REFUNDER
from cinema.errors import ShowtimeNotFoundError
from cinema.models import Hold, HoldStatus, ShowtimeStatus, TicketStatus
from cinema.seat_view import STATE_ZH, ZONE_COLOURS, seat_map_view, zone_zh
from cinema.seating import MAX_SEATS
from cinema.tickets import format_ticket_code, ticket_qr_svg, tickets_of_order
from coupons import points
from coupons.pages import render_with_nonce
from lbs.coords import CoordSystem
from lbs.h5_session import WeChatUser, message_page, static_url
from lbs.locations import fresh_location
from lbs.nearby import find_nearby
from lbs.schemas import NearbyQuery, NearbyStoreRead
from merchants.models import Store
from merchants.opening_hours import SHANGHAI
from payments import service as payments
from payments.config import PaymentSettings
from payments.models import Order, OrderStatus
from payments.pages import (
    POLL_EVERY_MS,
    POLL_GIVE_UP_MS,
    store_and_merchant,
    usable_coupons,
    yuan,
)
from payments.schemas import FINAL, STATUS_ZH
from tianfu.deps import DbSession, RowId
from tianfu.errors import TianfuError
from tianfu.orm import utcnow
from tianfu.settings import TianfuSettings

_HERE = Path(__file__).parent
_ROOT = Path(__file__).parents[1]

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(_HERE / "templates"),
                jinja2.FileSystemLoader(_ROOT / "payments" / "templates"),
                jinja2.FileSystemLoader(_ROOT / "lbs" / "templates"),
            ]
        ),
        # On for every template whatever its name: film, cinema and hall names come from outside.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
templates.env.globals["static_url"] = static_url
templates.env.filters["yuan"] = yuan
templates.env.filters["zone_zh"] = zone_zh

PREFIX = "/h5/cinema"
TICKET_PAGE = PREFIX + "/orders/{order_no}"
NEARBY_RADIUS_M = 20_000  # a city's cinemas: people cross town for a film
CINEMAS_LIMIT = 20
MY_TICKETS_LIMIT = 30
WEEKDAY_ZH = "一二三四五六日"

router = APIRouter(prefix=PREFIX, tags=["h5"], include_in_schema=False)


def _render(request: Request, name: str, context: dict[str, Any]) -> Response:
    return render_with_nonce(templates, request, name, context)


def _not_found(request: Request, title: str, message: str) -> Response:
    return message_page(request, status_code=404, title=title, message=message)


def clock_text(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%H:%M")


def day_label(day: date, today: date) -> str:
    """ "今天", "明天", "后天", else "周五"; always with the date: "今天 12-01"."""
    names = {0: "今天", 1: "明天", 2: "后天"}
    name = names.get((day - today).days, f"周{WEEKDAY_ZH[day.weekday()]}")
    return f"{name} {day:%m-%d}"


def showtime_text(starts_at: datetime, today: date) -> str:
    """ "今天 12-01 19:30"."""
    return f"{day_label(listings.beijing_day(starts_at), today)} {clock_text(starts_at)}"


templates.env.filters["clock"] = clock_text


# -- cinemas near the user --------------------------------------------------------------------


def _position(
    request: Request, session: Session, openid: str, lat: str, lng: str, coord: str, now: datetime
) -> tuple[NearbyQuery | None, str]:
    """Where to look from, and how the page says where that is: the position in the link (the
    page's own "use my position" button puts it there), else the user's last one sent to the
    Official Account while fresh, else none."""
    settings: TianfuSettings = request.app.state.settings
    point: dict[str, Any]
    if lat or lng:
        point, where = {"lat": lat, "lng": lng, "coord": coord or "gcj02"}, "按你的当前位置"
    else:
        last = fresh_location(session, openid, now=now, max_age_s=settings.wechat.location_fresh_s)
        if last is None:
            return None, ""
        point = {"lat": last.lat_gcj02, "lng": last.lng_gcj02, "coord": CoordSystem.GCJ02}
        where = "按你最近发送的位置"
    try:
        query = NearbyQuery.model_validate(
            point
            | {
                "radius_m": NEARBY_RADIUS_M,
                "limit": CINEMAS_LIMIT,
                "category": catalog.CINEMA_CATEGORY,
            }
        )
    except ValidationError:
        return None, "位置无效，已显示全部影院"
    return query, where


def _cinema_item(
    store: Store | NearbyStoreRead, upcoming: listings.Upcoming | None, today: date
) -> dict[str, Any]:
    next_text = ""
    if upcoming is not None and upcoming.next_start is not None:
        next_text = f"最近一场 {showtime_text(upcoming.next_start, today)}"
    return {
        "id": store.id,
        "name": store.name,
        "address": store.address,
        "distance_text": getattr(store, "distance_text", ""),
        "today": upcoming.today if upcoming else 0,
        "next_text": next_text,
        "has_showtimes": upcoming is not None,
    }


@router.get("", response_class=HTMLResponse)
def cinemas_page(
    request: Request,
    session: DbSession,
    openid: WeChatUser,
    lat: str = "",
    lng: str = "",
    coord: str = "",
) -> Response:
    now = utcnow()
    today = listings.beijing_day(now)
    query, where = _position(request, session, openid, lat, lng, coord, now)
    stores: list[Store] | list[NearbyStoreRead]
    if query is not None and request.app.state.store_index.ready:
        stores = find_nearby(session, request.app.state.store_index, query, now=now)
    else:
        stores, where = (
            listings.cinemas_with_showtimes(session, now=now, limit=CINEMAS_LIMIT),
            (where or "未获取到你的位置，显示全部影院"),
        )
    upcoming = listings.upcoming_by_store(session, [store.id for store in stores], now=now)
    cinemas = [_cinema_item(store, upcoming.get(store.id), today) for store in stores]
    # Cinemas showing something first, nearest first within each group (the list's order).
    cinemas.sort(key=lambda cinema: not cinema["has_showtimes"])
    return _render(request, "h5/cinemas.html", {"cinemas": cinemas, "where": where})


# -- my tickets -------------------------------------------------------------------------------


def _order_state(order: Order, refunded_by: set[str]) -> tuple[str, str]:
    """(state, headline) of a ticket order for its page: what the user needs to know."""
    if SHOWTIME_CANCELLED_REFUNDER in refunded_by:
        if order.status is OrderStatus.refunded:
            return "cancelled", "场次已取消，款项已原路退回"
        return "cancelled", "场次已取消，款项正在退回"
    if SEATS_GONE_REFUNDER in refunded_by:  # paid too late for seats taken meanwhile
        if order.status is OrderStatus.refunded:
            return "seats_gone", "座位已被他人购买，款项已原路退回"
        return "seats_gone", "座位已被他人购买，款项正在退回"
    if order.status in (OrderStatus.paid, OrderStatus.partially_refunded):
        return "ticketed", "出票成功"
    if order.status is OrderStatus.refunded:
        return "refunded", "已退款"
    if order.status is OrderStatus.closed:
        return "closed", "订单已关闭，座位已释放"
    return "waiting", "正在确认支付结果"


@router.get("/tickets", response_class=HTMLResponse)
def my_tickets_page(request: Request, session: DbSession, openid: WeChatUser) -> Response:
    today = listings.beijing_day(utcnow())
    orders = [
        {
            "order_no": found.order.order_no,
            "film_title": found.film_title,
            "cinema_name": found.cinema_name,
            "hall_name": found.hall_name,
            "when": showtime_text(found.starts_at, today),
            "seats": " ".join(found.hold.seat_ids),
            "status_zh": STATUS_ZH[found.order.status],
            "status": found.order.status.value,
        }
        for found in listings.ticket_orders(session, openid, limit=MY_TICKETS_LIMIT)
    ]
    return _render(request, "h5/my_tickets.html", {"orders": orders})


@router.get("/orders/{order_no}", response_class=HTMLResponse)
def ticket_page(
    request: Request, session: DbSession, openid: WeChatUser, order_no: str
) -> Response:
    found = listings.ticket_order(session, openid, order_no)
    if found is None:
        return _not_found(request, "订单不存在", "找不到这笔订单。")
    order = found.order
    refunded_by = {refund.requested_by for refund in payments.refunds_of(session, order.id)}
    state, headline = _order_state(order, refunded_by)
    today = listings.beijing_day(utcnow())
    tickets = [
        {
            "seat_id": ticket.seat_id,
            "code": format_ticket_code(ticket.code),
            "used": ticket.status is TicketStatus.used,
            "qr": Markup(ticket_qr_svg(ticket)),  # noqa: S704  # our own SVG of our own code
        }
        for ticket in tickets_of_order(session, order.id)
    ]
    context = {
        "order": {
            "order_no": order.order_no,
            "status": order.status.value,
            "status_zh": STATUS_ZH[order.status],
            "payable_fen": order.payable_fen,
            "discount_fen": order.discount_fen + order.points_fen,
            "final": order.status in FINAL,
        },
        "state": state,
        "headline": headline,
        "film_title": found.film_title,
        "cinema_name": found.cinema_name,
        "hall_name": found.hall_name,
        "when": showtime_text(found.starts_at, today),
        "seats": found.hold.seat_ids,
        "tickets": tickets,
        "showtime_id": found.hold.showtime_id,
        "config": {
            "orderUrl": f"/api/v1/orders/{order.order_no}",
            "final": order.status in FINAL,
            "pollEveryMs": POLL_EVERY_MS,
            "giveUpMs": POLL_GIVE_UP_MS,
        },
    }
    return _render(request, "h5/ticket.html", context)


# -- a cinema's programme ---------------------------------------------------------------------


@router.get("/{store_id}", response_class=HTMLResponse)
def cinema_page(
    request: Request, session: DbSession, openid: WeChatUser, store_id: RowId, day: str = ""
) -> Response:
    found = store_and_merchant(session, store_id)
    if found is None:
        return _not_found(request, "影院不存在", "该影院不存在。")
    store, _merchant = found
    now = utcnow()
    today = listings.beijing_day(now)
    days = [today + timedelta(days=n) for n in range(listings.DAYS_SHOWN)]
    try:
        chosen = date.fromisoformat(day) if day else today
    except ValueError:
        chosen = today
    if chosen not in days:
        chosen = today
    films = listings.programme(session, store_id=store.id, day=chosen, now=now)
    context = {
        "store": store,
        "days": [
            {"value": d.isoformat(), "label": day_label(d, today), "chosen": d == chosen}
            for d in days
        ],
        "films": films,
    }
    return _render(request, "h5/cinema.html", context)


# -- the seat map -----------------------------------------------------------------------------


def _live_hold(session: Session, showtime_id: int, openid: str, now: datetime) -> Hold | None:
    return session.scalars(
        select(Hold).where(
            Hold.showtime_id == showtime_id,
            Hold.openid == openid,
            Hold.status == HoldStatus.held,
            Hold.expires_at > now,
        )
    ).one_or_none()


def remaining_s(expires_at: datetime, now: datetime) -> int:
    """Whole seconds left, rounded down: a countdown never promises time the hold lacks."""
    return max(int((expires_at - now).total_seconds()), 0)


@router.get("/showtimes/{showtime_id}", response_class=HTMLResponse)
def seats_page(
    request: Request, session: DbSession, openid: WeChatUser, showtime_id: RowId
) -> Response:
    try:
        details = catalog.showtime_details(session, showtime_id)
    except ShowtimeNotFoundError:
        return _not_found(request, "场次不存在", "该场次不存在。")
    showtime = details.showtime
    now = utcnow()
    store = session.get_one(Store, details.store_id)
    seat_map = catalog.seat_map_of(session, showtime.hall_id, version=details.hall_version)
    states = service.seat_states(session, showtime.id, now)
    view = seat_map_view(
        seat_map,
        sold=states.sold,
        held_by=states.held_by,
        openid=openid,
        prices_fen=showtime.prices_fen,
    )
    on_sale = showtime.status is ShowtimeStatus.scheduled and now < showtime.sales_close_at
    hold = _live_hold(session, showtime.id, openid, now)
    # The zones this hall has, cheapest first: the legend, and each zone's colour.
    hall_zones = {seat.zone for seat in seat_map.seats.values() if seat.sellable}
    zones = sorted(
        ((zone, fen) for zone, fen in showtime.prices_fen.items() if zone in hall_zones),
        key=lambda item: (item[1], item[0]),
    )
    context = {
        "store": store,
        "film_title": details.film_title,
        "hall_name": details.hall_name,
        "when": showtime_text(showtime.starts_at, listings.beijing_day(now)),
        "ends": clock_text(showtime.ends_at),
        "on_sale": on_sale,
        "view": view,
        "zones": [{"zone": zone, "name": zone_zh(zone), "price_fen": fen} for zone, fen in zones],
        "zone_index": {zone: n % ZONE_COLOURS for n, (zone, _) in enumerate(zones)},
        "hold": hold,
        "config": {
            "seatsUrl": f"/api/v1/showtimes/{showtime.id}/seats",
            "holdsUrl": f"/api/v1/showtimes/{showtime.id}/holds",
            "bestUrl": f"/api/v1/showtimes/{showtime.id}/best",
            "holdPage": PREFIX + "/holds/",
            "maxSeats": MAX_SEATS,
            "prices": showtime.prices_fen,
            "zoneNames": {zone: zone_zh(zone) for zone in showtime.prices_fen},
            "stateNames": STATE_ZH,
            "onSale": on_sale,
            "hold": None
            if hold is None
            else {"id": hold.id, "remainingS": remaining_s(hold.expires_at, now)},
        },
    }
    return _render(request, "h5/seats.html", context)


# -- the checkout of a hold -------------------------------------------------------------------


def coupon_choices(
    session: Session,
    *,
    openid: str,
    amount_fen: int,
    store_id: int,
    merchant_id: int,
    settings: PaymentSettings,
    now: datetime,
) -> tuple[list[dict[str, Any]], str]:
    """The user's coupons of the cinema's merchant, each with what it takes off this amount (or
    why it does not apply), and the code of the one that takes off most ("" if none does)."""
    choices = []
    best, best_fen = "", 0
    coupons = usable_coupons(session, openid, merchant_id)
    # A coupon an unpaid order counts on stays with it until that order is paid or closed.
    pinned = payments.live_orders_of_coupons(session, [coupon["code"] for coupon in coupons])
    for coupon in coupons:
        elsewhere = pinned.get(coupon["code"])
        if elsewhere is not None:
            minutes = max(1, -(-remaining_s(elsewhere.expires_at, now) // 60))
            why_not = f"正在另一笔待支付订单中使用，约 {minutes} 分钟后释放"
            choices.append(coupon | {"discount_fen": 0, "why_not": why_not})
            continue
        request = payments.OrderRequest(
            openid=openid,
            store_id=store_id,
            total_fen=amount_fen,
            idempotency_key="quote",
            coupon_code=coupon["code"],
        )
        try:
            priced = payments.quote(session, request, settings=settings, now=now)
        except TianfuError as exc:
            choices.append(coupon | {"discount_fen": 0, "why_not": exc.message})
            continue
        choices.append(coupon | {"discount_fen": priced.discount_fen, "why_not": ""})
        if priced.discount_fen > best_fen:
            best, best_fen = coupon["code"], priced.discount_fen
    return choices, best


@router.get("/holds/{hold_id}", response_class=HTMLResponse)
def checkout_page(
    request: Request, session: DbSession, openid: WeChatUser, hold_id: RowId
) -> Response:
    hold = session.scalars(
        select(Hold).where(Hold.id == hold_id, Hold.openid == openid)
    ).one_or_none()
    if hold is None:
        return _not_found(request, "锁座不存在", "找不到这次选座。")
    if hold.order_no is not None and hold.status is HoldStatus.converted:
        return RedirectResponse(TICKET_PAGE.format(order_no=hold.order_no), status_code=303)
    now = utcnow()
    seat_page = f"{PREFIX}/showtimes/{hold.showtime_id}"
    if hold.status is not HoldStatus.held or hold.expires_at <= now:
        return message_page(
            request,
            status_code=410,
            title="锁座已失效",
            message="座位已释放，请重新选座。",
            action=seat_page,
        )
    details = catalog.showtime_details(session, hold.showtime_id)
    found = store_and_merchant(session, details.store_id)
    assert found is not None  # a hall's store is a foreign key
    store, merchant = found
    settings: TianfuSettings = request.app.state.settings
    # Ordered already (the user went to pay and came back): the order's choices stand; other
    # ones need a new choice of seats, since an order's sums never change once made.
    order = payments.get_order(session, hold.order_no) if hold.order_no else None
    coupons: list[dict[str, Any]] = []
    best = ""
    if order is None:
        coupons, best = coupon_choices(
            session,
            openid=openid,
            amount_fen=hold.amount_fen,
            store_id=store.id,
            merchant_id=merchant.id,
            settings=settings.payments,
            now=now,
        )
    context = {
        "hold": hold,
        "seats": [seat | {"zone_zh": zone_zh(str(seat["zone"]))} for seat in hold.seats],
        "store": store,
        "film_title": details.film_title,
        "hall_name": details.hall_name,
        "when": showtime_text(details.showtime.starts_at, listings.beijing_day(now)),
        "coupons": coupons,
        "chosen": best,
        "order": order,
        "points_balance": points.balance(session, openid),
        "seat_page": seat_page,
        "config": {
            "holdId": hold.id,
            "storeId": store.id,
            "amountFen": hold.amount_fen,
            "remainingS": remaining_s(hold.expires_at, now),
            "quoteUrl": "/api/v1/orders/quote",
            "checkoutUrl": f"/api/v1/holds/{hold.id}/checkout",
            "releaseUrl": f"/api/v1/holds/{hold.id}",
            "ordersUrl": "/api/v1/orders",
            "resultUrl": PREFIX + "/orders/",
            "seatPage": seat_page,
            "orderNo": order.order_no if order is not None else None,
        },
    }
    return _render(request, "h5/checkout.html", context)
