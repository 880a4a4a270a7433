"""From a hold to tickets: the order, and what its payment (or its closing) does to the seats.

The hold and its order run out together: the order's TTL is the hold's remaining time, so an
order is never payable for seats nobody holds any more. Payments calls back through the hooks it
exposes (`payments.service.register_order_hooks`), in the transaction that moves the order.

A payment that arrives after its hold expired (the channel's news came late, or the payer paid
in the last second) is still honoured when it can be: if the seats are free, they are taken and
ticketed as if the hold had lasted. If any of them was taken meanwhile, the whole amount is
refunded automatically (`payments.service.request_refund`, requester `SEATS_GONE_REFUNDER`) and
the order ends refunded, its coupon and points given back when the refund succeeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cinema import errors, service
from cinema.models import (
    Film,
    Hall,
    Hold,
    HoldStatus,
    SeatHold,
    SeatHoldStatus,
    Showtime,
    ShowtimeStatus,
)
from cinema.service import end_hold
from cinema.tickets import issue_tickets
from payments import service as payments
from payments.config import PaymentSettings
from payments.models import Order, OrderStatus, Refund

ORDER_KIND = "cinema"
# Not payments' LATE_PAYMENT_REFUNDER: that one is for money reaching an order already closed,
# which has nothing left to give back. This order was paid (its coupon used, its points moved),
# so its refund runs the ordinary way and gives them back when it succeeds.
SEATS_GONE_REFUNDER = "system:cinema-seats-gone"
SHOWTIME_CANCELLED_REFUNDER = "system:cinema-showtime-cancelled"
_SEATS = cast(Table, SeatHold.__table__)
_HOLDS = cast(Table, Hold.__table__)


def install_payment_hooks() -> None:
    """Have payments call this module when a cinema order is paid or closed (idempotent)."""
    payments.register_order_hooks(ORDER_KIND, paid=on_order_paid, closed=on_order_closed)


def checkout_hold(
    session: Session,
    *,
    hold_id: int,
    openid: str,
    settings: PaymentSettings,
    now: datetime,
    coupon_code: str | None = None,
    points: int = 0,
) -> Order:
    """The order for a live hold (the same one again if asked twice with the same choices)."""
    payments.lock_for_write(session)
    hold = session.scalars(
        select(Hold)
        .where(Hold.id == hold_id, Hold.openid == openid)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if hold is None:
        raise errors.HoldNotFoundError(f"锁座 {hold_id} 不存在")
    remaining_s = int((hold.expires_at - now).total_seconds())  # rounded down: never longer
    if hold.status is not HoldStatus.held or remaining_s < 1:
        raise errors.HoldExpiredError("锁座已失效，请重新选座")
    store_id, hall_name, title = session.execute(
        select(Hall.store_id, Hall.name, Film.title)
        .select_from(Showtime)
        .join(Hall, Hall.id == Showtime.hall_id)
        .join(Film, Film.id == Showtime.film_id)
        .where(Showtime.id == hold.showtime_id)
    ).one()
    request = payments.OrderRequest(
        openid=openid,
        store_id=store_id,
        total_fen=hold.amount_fen,
        idempotency_key=f"hold:{hold.id}",
        coupon_code=coupon_code,
        points=points,
        description=f"《{title}》{hall_name} {' '.join(hold.seat_ids)}",
        items=tuple(hold.seats),
        kind=ORDER_KIND,
    )
    aligned = settings.model_copy(update={"order_ttl_s": remaining_s})
    order = payments.create_order(session, request, settings=aligned, now=now)
    if hold.order_no is None:
        hold.order_no = order.order_no
        session.flush()
    return order


def hold_seats(
    session: Session,
    *,
    showtime_id: int,
    openid: str,
    seat_ids: Sequence[str],
    now: datetime,
    ttl_s: int,
) -> Hold:
    """cinema.service.hold_seats, and the order of the hold it replaces closed if nobody tried
    to pay it yet: its coupon and points are then free for the new choice at once."""
    return service.hold_seats(
        session,
        showtime_id=showtime_id,
        openid=openid,
        seat_ids=seat_ids,
        now=now,
        ttl_s=ttl_s,
        on_replaced_order=_close_if_untried,
    )


def _close_if_untried(session: Session, order_no: str, now: datetime) -> None:
    """The order of a hold given up: closed now if nobody tried to pay it, else ended now so
    that the jobs close it (at the channel first) within a round, freeing its coupon."""
    if not payments.close_untried(session, order_no=order_no, now=now):
        payments.expire_now(session, order_no=order_no, now=now)


def release_hold(session: Session, *, hold_id: int, openid: str, now: datetime) -> Hold:
    """The user gives the seats back (重新选座): the hold ends, and its order with it (at once
    if nobody tried to pay it, else by the jobs' next round, at the channel first)."""
    hold = service.release_hold(session, hold_id=hold_id, openid=openid, now=now)
    if hold.order_no is not None:
        _close_if_untried(session, hold.order_no, now)
    return service.get_hold(session, hold_id)


def _hold_of(session: Session, order: Order) -> Hold:
    hold = session.scalars(
        select(Hold)
        .where(Hold.order_no == order.order_no)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if hold is None:  # checkout writes both in one transaction: this is a bug, not a case
        raise RuntimeError(f"cinema order {order.order_no} has no hold")
    return hold


def on_order_paid(session: Session, order: Order, now: datetime) -> None:
    """Sell the hold's seats to the order and issue tickets, or refund (module docstring)."""
    hold = _hold_of(session, order)
    if hold.status is HoldStatus.converted:
        return
    showtime_status = session.scalar(select(Showtime.status).where(Showtime.id == hold.showtime_id))
    if showtime_status is ShowtimeStatus.cancelled:  # paid after the showtime was called off
        end_hold(session, hold=hold, status=HoldStatus.released, now=now)
        _refund_cancelled(session, order, now)
        return
    if _sell(session, hold, order.id, now):
        session.execute(
            update(_HOLDS)
            .where(_HOLDS.c.id == hold.id)
            .values(status=HoldStatus.converted, updated_at=now)
        )
        issue_tickets(session, hold=hold, order_id=order.id, now=now)
        return
    end_hold(session, hold=hold, status=HoldStatus.expired, now=now)
    payments.request_refund(
        session,
        order_no=order.order_no,
        amount_fen=order.payable_fen,
        idempotency_key=f"seats-gone:{order.order_no}",
        reason="所选座位已被他人购买，款项自动退回",
        requested_by=SEATS_GONE_REFUNDER,
        now=now,
    )


class _SeatsMissingError(Exception):
    """Some of a hold's seat rows are gone."""


def _sell(session: Session, hold: Hold, order_id: int, now: datetime) -> bool:
    """Turn the hold's seat rows into sold ones; if some are gone (expired and deleted, or moved
    to the user's next hold), take the seats afresh if they are free. False: some are not."""
    sold = {"status": SeatHoldStatus.sold, "expires_at": None, "order_id": order_id}
    mine = _SEATS.c.hold_id == hold.id, _SEATS.c.status == SeatHoldStatus.held
    try:
        with session.begin_nested():
            converted = session.execute(update(_SEATS).where(*mine).values(**sold))
            assert isinstance(converted, CursorResult)
            # An expired row may have been deleted by the next holder of its seat, even while
            # this ran: then this savepoint goes and the seats are taken afresh below.
            if converted.rowcount != len(hold.seats):
                raise _SeatsMissingError
        return True  # the usual case, expired or not: nobody needed them
    except _SeatsMissingError:
        pass
    try:
        with session.begin_nested():
            session.execute(delete(_SEATS).where(*mine))
            session.execute(
                delete(_SEATS).where(
                    _SEATS.c.showtime_id == hold.showtime_id,
                    _SEATS.c.seat_id.in_(hold.seat_ids),
                    _SEATS.c.status == SeatHoldStatus.held,
                    _SEATS.c.expires_at <= now,
                )
            )
            rows = [
                {
                    "showtime_id": hold.showtime_id,
                    "seat_id": seat_id,
                    "hold_id": hold.id,
                    "openid": hold.openid,
                    **sold,
                }
                for seat_id in hold.seat_ids
            ]
            session.execute(insert(_SEATS).values(rows))  # all the seats, or none
    except IntegrityError:
        return False
    return True


def on_order_closed(session: Session, order: Order, now: datetime) -> None:
    """An order closed unpaid: its hold ends and the seats are free at once."""
    hold = _hold_of(session, order)
    end_hold(session, hold=hold, status=HoldStatus.released, now=now)


# -- calling a showtime off -------------------------------------------------------------------


@dataclass(frozen=True)
class Cancellation:
    holds_released: int
    refunds_requested: int
    refunded_fen: int


def cancel_showtime(session: Session, *, showtime_id: int, now: datetime) -> Cancellation:
    """Call a showtime off: no more holds or sales, live holds end (their untried orders close),
    and every paid order is refunded in full of what is left of it, its coupon and points given
    back when the refund succeeds. The jobs push the refunds to the channel. Running it again
    changes nothing (the refunds are keyed by order); a payment that arrives afterwards for a
    hold of this showtime is refunded too (`on_order_paid`)."""
    payments.lock_for_write(session)
    found = session.execute(
        update(Showtime)
        .where(Showtime.id == showtime_id)
        .values(status=ShowtimeStatus.cancelled)
        .returning(Showtime.id)
    ).scalar_one_or_none()
    if found is None:
        raise errors.ShowtimeNotFoundError(f"场次 {showtime_id} 不存在")
    released = 0
    live = session.scalars(
        select(Hold).where(Hold.showtime_id == showtime_id, Hold.status == HoldStatus.held)
    ).all()
    for hold in live:
        if end_hold(session, hold=hold, status=HoldStatus.released, now=now):
            released += 1
            if hold.order_no is not None:
                _close_if_untried(session, hold.order_no, now)
    sold = session.scalars(
        select(Order)
        .join(Hold, Hold.order_no == Order.order_no)
        .where(
            Hold.showtime_id == showtime_id,
            Hold.status == HoldStatus.converted,
            Order.status.in_([OrderStatus.paid, OrderStatus.partially_refunded]),
        )
        .order_by(Order.id)
        .execution_options(populate_existing=True)  # refunds reserved since it was loaded
    ).all()
    refunds = refunded = 0
    for order in sold:
        amount = _refund_cancelled(session, order, now)
        refunds += amount > 0
        refunded += amount
    return Cancellation(released, refunds, refunded)


def _refund_cancelled(session: Session, order: Order, now: datetime) -> int:
    """Refund what is left of a paid order of a cancelled showtime; the fen asked for now."""
    key = f"showtime-cancelled:{order.order_no}"
    already = session.scalar(
        select(Refund.id).where(Refund.order_id == order.id, Refund.idempotency_key == key)
    )
    left = order.payable_fen - order.refund_reserved_fen
    if already is not None or left < 1:
        return 0
    payments.request_refund(
        session,
        order_no=order.order_no,
        amount_fen=left,
        idempotency_key=key,
        reason="场次取消，款项自动退回",
        requested_by=SHOWTIME_CANCELLED_REFUNDER,
        now=now,
    )
    return left
