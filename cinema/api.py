"""The cinema API the seat-map H5 page calls: the seats of a showtime, holding seats, giving them
back, and the order for a hold. Thin: the rules are cinema.service's and cinema.booking's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from cinema import booking, catalog, service
from cinema.models import ShowtimeStatus
from cinema.schemas import BestSeatsRead, CheckoutCreate, HoldCreate, HoldRead, ShowtimeSeatsRead
from cinema.seating import MAX_SEATS, best_available
from coupons.api import ApiUser
from payments.schemas import OrderRead
from tianfu.deps import DbSession, RowId
from tianfu.orm import utcnow
from tianfu.settings import TianfuSettings

router = APIRouter(prefix="/api/v1", tags=["cinema"])


def _now(request: Request) -> datetime:
    """The app's clock: `app.state.cinema_clock` if a test set one, else the wall clock."""
    clock: Callable[[], datetime] = getattr(request.app.state, "cinema_clock", utcnow)
    return clock()


def _settings(request: Request) -> TianfuSettings:
    settings: TianfuSettings = request.app.state.settings
    return settings


@router.get("/showtimes/{showtime_id}/seats", response_model=ShowtimeSeatsRead)
def showtime_seats(
    showtime_id: RowId, openid: ApiUser, request: Request, session: DbSession
) -> ShowtimeSeatsRead:
    now = _now(request)
    details = catalog.showtime_details(session, showtime_id)
    showtime = details.showtime
    seat_map = catalog.seat_map_of(session, showtime.hall_id, version=details.hall_version)
    states = service.seat_states(session, showtime_id, now)
    return ShowtimeSeatsRead(
        showtime_id=showtime.id,
        film_title=details.film_title,
        hall_name=details.hall_name,
        starts_at=showtime.starts_at,
        sales_close_at=showtime.sales_close_at,
        on_sale=showtime.status is ShowtimeStatus.scheduled and now < showtime.sales_close_at,
        prices_fen=showtime.prices_fen,
        rows=ShowtimeSeatsRead.rows_of(
            seat_map, sold=states.sold, held_by=dict(states.held_by), openid=openid
        ),
    )


@router.get("/showtimes/{showtime_id}/best", response_model=BestSeatsRead)
def best_seats(
    showtime_id: RowId,
    openid: ApiUser,
    request: Request,
    session: DbSession,
    count: Annotated[int, Query(ge=1, le=MAX_SEATS)] = 2,
) -> BestSeatsRead:
    """`count` adjacent seats to suggest (cinema.seating.best_available) against what others
    hold now; the user's own held seats count as free, since a new hold replaces them."""
    details = catalog.showtime_details(session, showtime_id)
    seat_map = catalog.seat_map_of(session, details.showtime.hall_id, version=details.hall_version)
    states = service.seat_states(session, showtime_id, _now(request))
    taken = states.sold | {seat for seat, holder in states.held_by.items() if holder != openid}
    seats = best_available(seat_map, count=count, taken=taken)
    return BestSeatsRead(count=count, seats=list(seats or ()))


@router.post("/showtimes/{showtime_id}/holds", response_model=HoldRead, status_code=201)
def hold_seats(
    showtime_id: RowId, body: HoldCreate, openid: ApiUser, request: Request, session: DbSession
) -> HoldRead:
    hold = booking.hold_seats(
        session,
        showtime_id=showtime_id,
        openid=openid,
        seat_ids=body.seats,
        now=_now(request),
        # As long as an order may stay unpaid: the hold and its order run out together.
        ttl_s=_settings(request).payments.order_ttl_s,
    )
    return HoldRead.of(hold)


@router.delete("/holds/{hold_id}", response_model=HoldRead)
def release_hold(hold_id: RowId, openid: ApiUser, request: Request, session: DbSession) -> HoldRead:
    return HoldRead.of(
        booking.release_hold(session, hold_id=hold_id, openid=openid, now=_now(request))
    )


@router.post("/holds/{hold_id}/checkout", response_model=OrderRead, status_code=201)
def checkout(
    hold_id: RowId, body: CheckoutCreate, openid: ApiUser, request: Request, session: DbSession
) -> OrderRead:
    order = booking.checkout_hold(
        session,
        hold_id=hold_id,
        openid=openid,
        settings=_settings(request).payments,
        now=_now(request),
        coupon_code=body.coupon_code,
        points=body.points,
    )
    return OrderRead.of(order)
