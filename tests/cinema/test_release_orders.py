"""What becomes of a hold's order when the user chooses again (重新选座, or new seats on the same
showtime): an order nobody tried to pay closes at once, giving its coupon and points back; one
that went to the cashier ends at once and keeps its coupon until the jobs close it at the
channel (their next round)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from cinema import booking, service
from cinema.models import HoldStatus, Showtime
from coupons import claims, points
from merchants.models import Merchant
from payments import errors as payment_errors
from payments import service as payments
from payments.config import PaymentSettings
from payments.models import Order, OrderStatus
from tests.builders import make_offer
from tests.cinema.builders import NOW, make_cinema, make_hall, make_showtime

ALICE = "oAlice00000000000000000000001"
SETTINGS = PaymentSettings()
TTL_S = SETTINGS.order_ttl_s


@pytest.fixture(autouse=True)
def hooks() -> None:
    booking.install_payment_hooks()


def _cinema_with_coupon(session: Session) -> tuple[Showtime, str]:
    store = make_cinema(session)
    showtime = make_showtime(session, hall=make_hall(session, store=store))
    merchant = session.get_one(Merchant, store.merchant_id)
    offer = make_offer(session, merchant=merchant, title_zh="立减10元", amount_off_fen=1000)
    code = claims.claim(
        session, offer_id=offer.id, openid=ALICE, client_request_id="c1", now=NOW
    ).code
    points.earn(session, openid=ALICE, points=200, source_key="gift:1", now=NOW)
    return showtime, code


def _ordered(session: Session, showtime: Showtime, code: str, *seats: str) -> tuple[int, Order]:
    hold = booking.hold_seats(
        session, showtime_id=showtime.id, openid=ALICE, seat_ids=list(seats), now=NOW,
        ttl_s=TTL_S,
    )  # fmt: skip
    order = booking.checkout_hold(
        session, hold_id=hold.id, openid=ALICE, settings=SETTINGS, now=NOW, coupon_code=code,
        points=100,
    )  # fmt: skip
    return hold.id, order


def _status(session: Session, order: Order) -> OrderStatus:
    return payments.get_order(session, order.order_no).status


def test_giving_the_seats_back_closes_an_untried_order_and_frees_its_coupon(
    db_session: Session,
) -> None:
    showtime, code = _cinema_with_coupon(db_session)
    hold_id, order = _ordered(db_session, showtime, code, "A1", "A2")
    assert points.balance(db_session, ALICE) == 100
    released = booking.release_hold(db_session, hold_id=hold_id, openid=ALICE, now=NOW)
    assert released.status is HoldStatus.released
    assert _status(db_session, order) is OrderStatus.closed
    assert points.balance(db_session, ALICE) == 200
    _again, second = _ordered(db_session, showtime, code, "B1", "B2")  # the coupon at once
    assert second.coupon_code == order.coupon_code
    assert second.discount_fen == 1000


def test_new_seats_on_the_same_showtime_close_the_untried_order_of_the_old_ones(
    db_session: Session,
) -> None:
    showtime, code = _cinema_with_coupon(db_session)
    first_hold, first = _ordered(db_session, showtime, code, "A1", "A2")
    _hold_id, second = _ordered(db_session, showtime, code, "A3", "A4")
    assert service.get_hold(db_session, first_hold).status is HoldStatus.released
    assert _status(db_session, first) is OrderStatus.closed
    assert _status(db_session, second) is OrderStatus.created
    assert second.discount_fen == 1000


def test_an_order_that_went_to_the_cashier_keeps_its_coupon_until_it_closes(
    db_session: Session,
) -> None:
    showtime, code = _cinema_with_coupon(db_session)
    hold_id, order = _ordered(db_session, showtime, code, "A1", "A2")
    payments.begin_attempt(
        db_session, order=payments.lock_order(db_session, order.order_no), channel="tenpay_v3",
        account="1900000001", method="jsapi", now=NOW + timedelta(seconds=5),
    )  # fmt: skip
    released_at = NOW + timedelta(minutes=1)
    booking.release_hold(db_session, hold_id=hold_id, openid=ALICE, now=released_at)
    # Money may still come for it: the seats are free, the order and its coupon are not yet.
    # It ends now, so the jobs' next round closes it at the channel and frees the coupon.
    assert _status(db_session, order) is OrderStatus.paying
    assert payments.get_order(db_session, order.order_no).expires_at == released_at
    assert not service.seat_states(db_session, showtime.id, NOW + timedelta(minutes=1)).taken
    pinned = payments.live_orders_of_coupons(db_session, [code])
    assert pinned[code].order_no == order.order_no
    with pytest.raises(payment_errors.CouponInUseError):
        _ordered(db_session, showtime, code, "B1", "B2")
    assert not payments.close_untried(db_session, order_no=order.order_no, now=NOW)
