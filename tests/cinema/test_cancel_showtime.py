"""Calling a showtime off, on both databases: sales stop, live holds end (an untried order
closes), every paid order is refunded in full of what is left of it, once however often it is
run, and money that arrives afterwards for a hold of that showtime goes back too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cinema import booking, errors, service
from cinema.models import Hold, HoldStatus, Showtime, ShowtimeStatus
from cinema.tickets import tickets_of_order, verify_ticket
from payments import service as payments
from payments.channels import TradeState, TradeStatus
from payments.config import PaymentSettings
from payments.models import Order, OrderStatus, Refund, RefundStatus
from tests.cinema.builders import NOW, make_cinema, make_hall, make_showtime

SETTINGS = PaymentSettings()
TTL_S = SETTINGS.order_ttl_s


@pytest.fixture(autouse=True)
def hooks() -> None:
    booking.install_payment_hooks()


def _order(session: Session, showtime: Showtime, openid: str, *seats: str) -> tuple[Hold, Order]:
    hold = booking.hold_seats(
        session, showtime_id=showtime.id, openid=openid, seat_ids=list(seats), now=NOW,
        ttl_s=TTL_S,
    )  # fmt: skip
    order = booking.checkout_hold(
        session, hold_id=hold.id, openid=openid, settings=SETTINGS, now=NOW
    )
    return hold, order


def _pay(session: Session, order: Order, *, at: timedelta) -> None:
    attempt = payments.begin_attempt(
        session, order=payments.lock_order(session, order.order_no), channel="tenpay_v3",
        account="1900000001", method="jsapi", now=NOW,
    )  # fmt: skip
    paid = TradeStatus(
        out_trade_no=attempt.out_trade_no, state=TradeState.paid, channel_state="SUCCESS",
        channel_trade_no=f"42000000002026120100{order.id:08d}", amount_fen=attempt.amount_fen,
        currency="CNY", paid_at=NOW + at,
    )  # fmt: skip
    payments.apply_trade_status(session, status=paid, now=NOW + at, settings=SETTINGS)


def _refunds(session: Session, order: Order) -> list[Refund]:
    return list(session.scalars(select(Refund).where(Refund.order_id == order.id)))


def test_a_cancelled_showtime_refunds_every_paid_order_once_and_frees_the_rest(
    db_session: Session,
) -> None:
    store = make_cinema(db_session)
    showtime = make_showtime(db_session, hall=make_hall(db_session, store=store))
    _sold_hold, sold = _order(db_session, showtime, "oSold0000000000000000000001", "B1", "B2")
    _pay(db_session, sold, at=timedelta(minutes=1))
    _part_hold, part = _order(db_session, showtime, "oPart0000000000000000000001", "A1")
    _pay(db_session, part, at=timedelta(minutes=1))
    payments.request_refund(
        db_session, order_no=part.order_no, amount_fen=1000, idempotency_key="goodwill",
        reason="补偿", requested_by="staff:1", now=NOW + timedelta(minutes=2),
    )  # fmt: skip
    waiting, untried = _order(db_session, showtime, "oWait0000000000000000000001", "C3", "C4")
    ticket = tickets_of_order(db_session, sold.id)[0]

    at = NOW + timedelta(minutes=5)
    done = booking.cancel_showtime(db_session, showtime_id=showtime.id, now=at)
    assert (done.holds_released, done.refunds_requested) == (1, 2)
    assert done.refunded_fen == 11800 + (3900 - 1000)  # B is zone G at 59.00; A is F at 39.00
    assert db_session.get_one(Showtime, showtime.id).status is ShowtimeStatus.cancelled
    assert service.get_hold(db_session, waiting.id).status is HoldStatus.released
    assert payments.get_order(db_session, untried.order_no).status is OrderStatus.closed
    (full,) = _refunds(db_session, sold)
    assert (full.amount_fen, full.status) == (11800, RefundStatus.pending)
    assert full.requested_by == booking.SHOWTIME_CANCELLED_REFUNDER
    assert sorted(r.amount_fen for r in _refunds(db_session, part)) == [1000, 2900]
    # Nothing more on a second run; no new holds; no entry on the day.
    again = booking.cancel_showtime(db_session, showtime_id=showtime.id, now=at)
    assert (again.refunds_requested, again.refunded_fen) == (0, 0)
    assert len(_refunds(db_session, sold)) == 1
    with pytest.raises(errors.SalesClosedError):
        service.hold_seats(
            db_session, showtime_id=showtime.id, openid="oLate", seat_ids=["D1", "D2"], now=at
        )
    with pytest.raises(errors.TicketNotValidHereError, match="已取消"):
        verify_ticket(db_session, code=ticket.code, store_id=store.id, now=at, by="staff:1")


def test_money_for_a_hold_of_a_cancelled_showtime_goes_back(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    hold, order = _order(db_session, showtime, "oSlow0000000000000000000001", "B5", "B6")
    attempt = payments.begin_attempt(
        db_session, order=payments.lock_order(db_session, order.order_no), channel="tenpay_v3",
        account="1900000001", method="jsapi", now=NOW,
    )  # fmt: skip
    booking.cancel_showtime(db_session, showtime_id=showtime.id, now=NOW + timedelta(minutes=1))
    assert payments.get_order(db_session, order.order_no).status is OrderStatus.paying
    paid = TradeStatus(
        out_trade_no=attempt.out_trade_no, state=TradeState.paid, channel_state="SUCCESS",
        channel_trade_no="4200000000202612019999999999", amount_fen=attempt.amount_fen,
        currency="CNY", paid_at=NOW + timedelta(minutes=2),
    )  # fmt: skip
    at = NOW + timedelta(minutes=2)
    payments.apply_trade_status(db_session, status=paid, now=at, settings=SETTINGS)
    assert tickets_of_order(db_session, order.id) == []
    (refund,) = _refunds(db_session, order)
    assert (refund.amount_fen, refund.requested_by) == (11800, booking.SHOWTIME_CANCELLED_REFUNDER)
    assert service.get_hold(db_session, hold.id).status is HoldStatus.released
    assert not service.seat_states(db_session, showtime.id, at).taken


def test_an_unknown_showtime_cannot_be_cancelled(db_session: Session) -> None:
    with pytest.raises(errors.ShowtimeNotFoundError):
        booking.cancel_showtime(db_session, showtime_id=987654, now=NOW)
