"""From a hold to tickets on both databases, through the payments service's own steps: paid in
time, paid late with the seats still free, paid late with the seats gone (refunded by itself),
closed unpaid, and the ticket checked at the entrance once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cinema import booking, errors, service
from cinema.models import (
    Hold,
    HoldStatus,
    SeatHold,
    SeatHoldStatus,
    Showtime,
    ShowtimeStatus,
    TicketStatus,
)
from cinema.tickets import (
    TICKET_ALPHABET,
    format_ticket_code,
    ticket_qr_svg,
    tickets_of_order,
    verify_ticket,
)
from payments import service as payments
from payments.channels import RefundState, TradeState, TradeStatus
from payments.channels import RefundStatus as ChannelRefund
from payments.config import PaymentSettings
from payments.models import Order, OrderStatus, Refund, RefundStatus
from tests.cinema.builders import NOW, make_cinema, make_hall, make_showtime

ALICE = "oAlice00000000000000000000001"
BOB = "oBob0000000000000000000000001"
SETTINGS = PaymentSettings()
TTL = timedelta(seconds=SETTINGS.order_ttl_s)


@pytest.fixture(autouse=True)
def hooks() -> None:
    booking.install_payment_hooks()  # as tianfu.wiring does for the app and the CLI


def _checkout(session: Session, showtime: Showtime, *seats: str) -> tuple[Hold, Order]:
    hold = service.hold_seats(
        session, showtime_id=showtime.id, openid=ALICE, seat_ids=list(seats), now=NOW
    )
    order = booking.checkout_hold(
        session, hold_id=hold.id, openid=ALICE, settings=SETTINGS, now=NOW + timedelta(seconds=30)
    )
    return hold, order


def _pay(session: Session, order: Order, *, at: timedelta) -> OrderStatus:
    locked = payments.lock_order(session, order.order_no)
    attempt = payments.begin_attempt(
        session, order=locked, channel="tenpay_v3", account="1900000001", method="jsapi", now=NOW
    )
    paid = TradeStatus(
        out_trade_no=attempt.out_trade_no,
        state=TradeState.paid,
        channel_state="SUCCESS",
        channel_trade_no="4200000000202612010000000001",
        amount_fen=attempt.amount_fen,
        currency="CNY",
        paid_at=NOW + at,
    )
    applied = payments.apply_trade_status(session, status=paid, now=NOW + at, settings=SETTINGS)
    return applied.order_status


def _hold_now(session: Session, hold_id: int) -> Hold:
    return service.get_hold(session, hold_id)


def test_checkout_makes_an_order_that_runs_out_with_the_hold(db_session: Session) -> None:
    hold, order = _checkout(db_session, make_showtime(db_session), "B1", "B2")
    assert (order.kind, order.total_fen, order.payable_fen) == ("cinema", 11800, 11800)
    assert order.items == hold.seats
    assert "《熊猫归来》1号厅 B1 B2" in order.description
    assert hold.expires_at - timedelta(seconds=1) < order.expires_at <= hold.expires_at
    assert _hold_now(db_session, hold.id).order_no == order.order_no
    again = booking.checkout_hold(
        db_session, hold_id=hold.id, openid=ALICE, settings=SETTINGS, now=NOW + TTL / 2
    )
    assert again.id == order.id


def test_an_expired_hold_cannot_be_checked_out(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    hold = service.hold_seats(
        db_session, showtime_id=showtime.id, openid=ALICE, seat_ids=["A1", "A2"], now=NOW
    )
    with pytest.raises(errors.HoldExpiredError):
        booking.checkout_hold(
            db_session, hold_id=hold.id, openid=ALICE, settings=SETTINGS, now=NOW + TTL
        )


def test_a_paid_order_turns_its_hold_into_tickets(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    hold, order = _checkout(db_session, showtime, "D1", "D2")
    assert _pay(db_session, order, at=timedelta(minutes=2)) is OrderStatus.paid
    assert _hold_now(db_session, hold.id).status is HoldStatus.converted
    tickets = tickets_of_order(db_session, order.id)
    assert [t.seat_id for t in tickets] == ["D1", "D2"]
    assert all(len(t.code) == 16 and set(t.code) <= set(TICKET_ALPHABET) for t in tickets)
    assert len({t.code for t in tickets}) == 2
    assert 'aria-label="电影票二维码"' in ticket_qr_svg(tickets[0])
    rows = db_session.execute(
        select(SeatHold.seat_id, SeatHold.status, SeatHold.expires_at, SeatHold.order_id).where(
            SeatHold.showtime_id == showtime.id
        )
    ).all()
    assert sorted(rows) == [(s, SeatHoldStatus.sold, None, order.id) for s in ("D1", "D2")]
    # Sold seats never expire.
    later = NOW + timedelta(days=1)
    assert service.seat_states(db_session, showtime.id, later).sold == {"D1", "D2"}


def test_a_late_payment_takes_the_seats_if_still_there(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    hold, order = _checkout(db_session, showtime, "A1", "A2")
    assert _pay(db_session, order, at=TTL + timedelta(minutes=1)) is OrderStatus.paid
    assert _hold_now(db_session, hold.id).status is HoldStatus.converted
    assert len(tickets_of_order(db_session, order.id)) == 2


def test_a_late_payment_takes_the_seats_again_if_free(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    hold, order = _checkout(db_session, showtime, "A1", "A2")
    assert service.expire_holds(db_session, NOW + TTL) == 1  # rows gone, seats free
    assert _pay(db_session, order, at=TTL + timedelta(minutes=1)) is OrderStatus.paid
    assert _hold_now(db_session, hold.id).status is HoldStatus.converted
    assert [t.seat_id for t in tickets_of_order(db_session, order.id)] == ["A1", "A2"]
    sold = service.seat_states(db_session, showtime.id, NOW + TTL * 2).sold
    assert sold == {"A1", "A2"}


def test_a_late_payment_takes_back_a_seat_someone_held_and_let_go(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    _hold, order = _checkout(db_session, showtime, "A1", "A2")
    # Bob's hold deletes Alice's expired A2 row (her A1 row stays), then he lets go.
    bobs = service.hold_seats(
        db_session, showtime_id=showtime.id, openid=BOB, seat_ids=["A2", "A3", "A4"], now=NOW + TTL
    )
    service.release_hold(db_session, hold_id=bobs.id, openid=BOB, now=NOW + TTL)
    assert _pay(db_session, order, at=TTL + timedelta(minutes=1)) is OrderStatus.paid
    assert [t.seat_id for t in tickets_of_order(db_session, order.id)] == ["A1", "A2"]
    states = service.seat_states(db_session, showtime.id, NOW + TTL)
    assert states.sold == {"A1", "A2"}
    assert not states.held_by


def test_a_late_payment_for_seats_taken_since_is_refunded_by_itself(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    hold, order = _checkout(db_session, showtime, "A1", "A2")
    service.hold_seats(
        db_session, showtime_id=showtime.id, openid=BOB, seat_ids=["A2", "A3", "A4"], now=NOW + TTL
    )
    assert _pay(db_session, order, at=TTL + timedelta(minutes=1)) is OrderStatus.paid
    assert tickets_of_order(db_session, order.id) == []
    assert _hold_now(db_session, hold.id).status is HoldStatus.expired
    refund = db_session.scalars(select(Refund).where(Refund.order_id == order.id)).one()
    assert (refund.amount_fen, refund.status) == (order.payable_fen, RefundStatus.pending)
    assert refund.requested_by == booking.SEATS_GONE_REFUNDER
    # Bob keeps his seats; Alice's A1 was never sold.
    states = service.seat_states(db_session, showtime.id, NOW + TTL)
    assert states.held_by == {"A2": BOB, "A3": BOB, "A4": BOB}
    assert not states.sold
    done = ChannelRefund(
        out_refund_no=refund.out_refund_no,
        state=RefundState.succeeded,
        channel_state="SUCCESS",
        channel_refund_no="50300000000000000000000001",
    )
    assert payments.apply_refund_status(db_session, status=done, now=NOW + TTL * 2)
    assert payments.get_order(db_session, order.order_no).status is OrderStatus.refunded


def test_an_order_closed_unpaid_gives_the_seats_back_at_once(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    hold, order = _checkout(db_session, showtime, "B1", "B2")
    at = NOW + timedelta(minutes=2)
    locked = payments.lock_order(db_session, order.order_no)
    assert payments.close_order(db_session, order=locked, now=at)
    assert _hold_now(db_session, hold.id).status is HoldStatus.released
    assert not service.seat_states(db_session, showtime.id, at).taken


def test_a_ticket_lets_its_holder_in_once(db_session: Session) -> None:
    store = make_cinema(db_session)
    showtime = make_showtime(db_session, hall=make_hall(db_session, store=store))
    _hold, order = _checkout(db_session, showtime, "B1", "B2")
    _pay(db_session, order, at=timedelta(minutes=1))
    ticket = tickets_of_order(db_session, order.id)[0]
    typed = format_ticket_code(ticket.code).lower()  # as a person types it off the screen
    entrance = showtime.starts_at - timedelta(minutes=5)
    other = make_cinema(db_session, name="光影电影城(太古里店)")
    with pytest.raises(errors.TicketNotValidHereError):
        verify_ticket(db_session, code=typed, store_id=other.id, now=entrance, by="staff:9")
    used = verify_ticket(db_session, code=typed, store_id=store.id, now=entrance, by="staff:1")
    assert (used.status, used.used_at, used.used_by) == (TicketStatus.used, entrance, "staff:1")
    with pytest.raises(errors.TicketAlreadyUsedError, match="已于 12-01 14:55 检票"):
        verify_ticket(db_session, code=ticket.code, store_id=store.id, now=entrance, by="staff:2")
    with pytest.raises(errors.TicketNotFoundError):
        verify_ticket(db_session, code="2" * 16, store_id=store.id, now=entrance, by="staff:1")
    second = tickets_of_order(db_session, order.id)[1]
    with pytest.raises(errors.TicketNotValidHereError, match="已结束"):
        verify_ticket(
            db_session, code=second.code, store_id=store.id, now=showtime.ends_at, by="staff:1"
        )
    showtime.status = ShowtimeStatus.cancelled  # called off: the ticket is refunded, not used
    db_session.flush()
    with pytest.raises(errors.TicketNotValidHereError, match="已取消"):
        verify_ticket(db_session, code=second.code, store_id=store.id, now=entrance, by="staff:1")
    assert tickets_of_order(db_session, order.id)[1].status is TicketStatus.valid


def test_money_for_a_kind_of_order_nobody_delivers_is_not_applied(db_session: Session) -> None:
    """Without its hooks (a process that never registered them) a cinema order must not turn
    paid without tickets: applying the payment fails, and the channel's notify comes again."""
    request = payments.OrderRequest(
        openid=ALICE, store_id=make_cinema(db_session).id, total_fen=100, idempotency_key="k",
        kind="opera",
    )  # fmt: skip
    order = payments.create_order(db_session, request, settings=SETTINGS, now=NOW)
    with pytest.raises(RuntimeError, match="no hooks registered for 'opera' orders"):
        _pay(db_session, order, at=timedelta(minutes=1))
