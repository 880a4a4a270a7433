"""The order core on both databases: pricing, idempotency, the state machine applied to what a
channel reports (as the channel interface's own dataclasses), refunds and their give-backs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coupons import claims, points
from coupons.models import Claim, ClaimStatus
from coupons.rules import OfferKind
from payments import errors, service, states
from payments.channels import RefundState, TradeState, TradeStatus
from payments.channels import RefundStatus as ChannelRefund
from payments.config import PaymentSettings
from payments.models import (
    AttemptStatus,
    Order,
    OrderStatus,
    OutboxMessage,
    PaymentAttempt,
    Refund,
    RefundStatus,
)
from tests.builders import make_merchant, make_offer, make_store

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # Tuesday noon in Shanghai
OPENID = "oPayer000000000000000000001"
SETTINGS = PaymentSettings(base_points_per_yuan=1, fen_per_point=1, max_points_permille=500)


def _shop(session: Session) -> tuple[int, Claim]:
    """A store whose merchant runs 满100减20, and a coupon of it in OPENID's hands."""
    merchant = make_merchant(session)
    store = make_store(session, merchant=merchant)
    offer = make_offer(
        session,
        merchant=merchant,
        kind=OfferKind.threshold_off,
        title_zh="满100减20",
        amount_off_fen=2000,
        threshold_fen=10000,
        points_per_yuan=2,
    )
    coupon = claims.claim(
        session, offer_id=offer.id, openid=OPENID, client_request_id="c1", now=NOW
    )
    return store.id, coupon


def _order(session: Session, store_id: int, **kwargs: object) -> Order:
    values: dict[str, object] = {
        "openid": OPENID,
        "store_id": store_id,
        "total_fen": 15000,
        "idempotency_key": "k1",
    }
    values.update(kwargs)
    request = service.OrderRequest(**values)  # type: ignore[arg-type]
    return service.create_order(session, request, settings=SETTINGS, now=NOW)


def _attempt(session: Session, order: Order) -> PaymentAttempt:
    locked = service.lock_order(session, order.order_no)
    return service.begin_attempt(
        session, order=locked, channel="tenpay_v3", account="1900000001", method="jsapi", now=NOW
    )


def _paid(attempt: PaymentAttempt, amount_fen: int | None = None) -> TradeStatus:
    return TradeStatus(
        out_trade_no=attempt.out_trade_no,
        state=TradeState.paid,
        channel_state="SUCCESS",
        channel_trade_no="4200000000202612010000000001",
        amount_fen=attempt.amount_fen if amount_fen is None else amount_fen,
        currency="CNY",
        paid_at=NOW,
    )


def _pay(session: Session, order: Order) -> PaymentAttempt:
    attempt = _attempt(session, order)
    applied = service.apply_trade_status(session, status=_paid(attempt), now=NOW, settings=SETTINGS)
    assert applied.changed
    assert applied.order_status is OrderStatus.paid
    return attempt


def _refund_done(session: Session, refund: Refund) -> bool:
    status = ChannelRefund(
        out_refund_no=refund.out_refund_no,
        state=RefundState.succeeded,
        channel_state="SUCCESS",
        channel_refund_no=f"5030{refund.id:024d}",
    )
    return service.apply_refund_status(session, status=status, now=NOW + timedelta(minutes=5))


def test_an_order_is_priced_with_the_coupon_and_points(db_session: Session) -> None:
    store_id, coupon = _shop(db_session)
    points.earn(db_session, openid=OPENID, points=3000, source_key="gift", now=NOW)
    order = _order(db_session, store_id, coupon_code=coupon.code, points=1000)
    assert (order.total_fen, order.discount_fen, order.points_fen) == (15000, 2000, 1000)
    assert order.payable_fen == 12000
    assert order.status is OrderStatus.created
    assert order.order_no.startswith("TF261201")
    assert len(order.order_no) == 20
    assert order.expires_at == NOW + timedelta(seconds=SETTINGS.order_ttl_s)
    assert points.balance(db_session, OPENID) == 2000  # taken now, given back if it closes


def test_points_may_pay_only_their_share(db_session: Session) -> None:
    store_id, _coupon = _shop(db_session)
    points.earn(db_session, openid=OPENID, points=100_000, source_key="gift", now=NOW)
    with pytest.raises(errors.InvalidOrderError, match="最多可用 7500 积分"):
        _order(db_session, store_id, points=7501)


def test_a_coupon_that_does_not_apply_is_refused_with_the_reason(db_session: Session) -> None:
    store_id, coupon = _shop(db_session)
    with pytest.raises(errors.InvalidOrderError, match="该券暂不可用"):
        _order(db_session, store_id, total_fen=9000, coupon_code=coupon.code)


def test_someone_elses_coupon_is_not_found(db_session: Session) -> None:
    store_id, coupon = _shop(db_session)
    with pytest.raises(errors.InvalidOrderError, match="找不到这张券"):
        _order(db_session, store_id, openid="oSomeoneElse", coupon_code=coupon.code)


def test_the_same_key_returns_the_same_order_and_another_request_is_refused(
    db_session: Session,
) -> None:
    store_id, _coupon = _shop(db_session)
    first = _order(db_session, store_id)
    assert _order(db_session, store_id).id == first.id
    with pytest.raises(errors.IdempotencyKeyReusedError):
        _order(db_session, store_id, total_fen=15001)
    assert db_session.scalar(select(func.count()).select_from(Order)) == 1


def test_one_coupon_backs_one_live_order(db_session: Session) -> None:
    store_id, coupon = _shop(db_session)
    first = _order(db_session, store_id, coupon_code=coupon.code)
    with pytest.raises(errors.CouponInUseError):
        _order(db_session, store_id, coupon_code=coupon.code, idempotency_key="k2")
    assert service.close_order(db_session, order=first, now=NOW)
    second = _order(db_session, store_id, coupon_code=coupon.code, idempotency_key="k3")
    assert second.discount_fen == 2000


def test_attempt_numbers_derive_from_the_order(db_session: Session) -> None:
    store_id, _coupon = _shop(db_session)
    order = _order(db_session, store_id)
    first = _attempt(db_session, order)
    second = _attempt(db_session, order)
    assert (first.out_trade_no, second.out_trade_no) == (
        f"{order.order_no}P1",
        f"{order.order_no}P2",
    )
    assert service.get_order(db_session, order.order_no).status is OrderStatus.paying


def test_a_payment_is_applied_once_with_its_effects(db_session: Session) -> None:
    store_id, coupon = _shop(db_session)
    order = _order(db_session, store_id, coupon_code=coupon.code)
    attempt = _pay(db_session, order)
    again = service.apply_trade_status(
        db_session, status=_paid(attempt), now=NOW, settings=SETTINGS
    )
    assert not again.changed
    paid = service.get_order(db_session, order.order_no)
    assert paid.status is OrderStatus.paid
    assert paid.paid_attempt_id == attempt.id
    used = db_session.scalars(select(Claim).where(Claim.code == coupon.code)).one()
    assert used.status is ClaimStatus.redeemed
    assert used.order_ref == order.order_no
    # 130 yuan paid, 1 base + 2 from the offer per yuan.
    assert points.balance(db_session, OPENID) == 130 * 3
    notices = db_session.scalars(select(OutboxMessage.dedup_key)).all()
    assert notices == [f"paid:{order.order_no}"]


def test_a_payment_for_another_amount_changes_nothing(db_session: Session) -> None:
    store_id, _coupon = _shop(db_session)
    order = _order(db_session, store_id)
    attempt = _attempt(db_session, order)
    with pytest.raises(errors.AmountMismatchError):
        service.apply_trade_status(
            db_session, status=_paid(attempt, amount_fen=1), now=NOW, settings=SETTINGS
        )
    assert service.get_attempt(db_session, attempt.out_trade_no).status is AttemptStatus.created
    assert service.get_order(db_session, order.order_no).status is OrderStatus.paying


def test_news_of_a_closed_trade_never_undoes_a_payment(db_session: Session) -> None:
    store_id, _coupon = _shop(db_session)
    order = _order(db_session, store_id)
    attempt = _pay(db_session, order)
    closed = TradeStatus(attempt.out_trade_no, TradeState.closed, "CLOSED")
    applied = service.apply_trade_status(db_session, status=closed, now=NOW, settings=SETTINGS)
    assert not applied.changed
    assert (applied.order_status, applied.attempt_status) == (OrderStatus.paid, AttemptStatus.paid)


def test_money_for_a_closed_order_goes_back_by_itself(db_session: Session) -> None:
    store_id, _coupon = _shop(db_session)
    order = _order(db_session, store_id)
    attempt = _attempt(db_session, order)
    assert service.close_order(
        db_session, order=service.lock_order(db_session, order.order_no), now=NOW
    )
    applied = service.apply_trade_status(
        db_session, status=_paid(attempt), now=NOW, settings=SETTINGS
    )
    assert applied.order_status is OrderStatus.closed
    assert applied.attempt_status is AttemptStatus.paid
    refund = db_session.scalars(select(Refund)).one()
    assert (refund.amount_fen, refund.status, refund.requested_by) == (
        attempt.amount_fen,
        RefundStatus.pending,
        service.LATE_PAYMENT_REFUNDER,
    )
    assert service.get_order(db_session, order.order_no).late_payment_fen == attempt.amount_fen


def test_closing_gives_points_back_once(db_session: Session) -> None:
    store_id, _coupon = _shop(db_session)
    points.earn(db_session, openid=OPENID, points=500, source_key="gift", now=NOW)
    order = _order(db_session, store_id, points=500)
    assert points.balance(db_session, OPENID) == 0
    assert service.close_order(db_session, order=order, now=NOW)
    assert not service.close_order(db_session, order=order, now=NOW)
    assert points.balance(db_session, OPENID) == 500


def test_refunds_never_exceed_what_was_paid(db_session: Session) -> None:
    store_id, _coupon = _shop(db_session)
    order = _order(db_session, store_id)
    _pay(db_session, order)
    first = service.request_refund(
        db_session,
        order_no=order.order_no,
        amount_fen=10000,
        idempotency_key="r1",
        reason="菜品问题",
        requested_by="staff",
        now=NOW,
    )
    assert first.out_refund_no.endswith("P1R1")
    repeat = service.request_refund(
        db_session,
        order_no=order.order_no,
        amount_fen=10000,
        idempotency_key="r1",
        reason="菜品问题",
        requested_by="staff",
        now=NOW,
    )
    assert repeat.id == first.id
    with pytest.raises(errors.RefundExceedsPaidError, match=r"50\.00"):
        service.request_refund(
            db_session,
            order_no=order.order_no,
            amount_fen=5001,
            idempotency_key="r2",
            reason="",
            requested_by="staff",
            now=NOW,
        )


def test_partial_then_full_refund_gives_coupon_and_points_back_once(db_session: Session) -> None:
    store_id, coupon = _shop(db_session)
    points.earn(db_session, openid=OPENID, points=1000, source_key="gift", now=NOW)
    order = _order(db_session, store_id, coupon_code=coupon.code, points=1000)
    _pay(db_session, order)  # 120 yuan paid: 360 points earned
    assert points.balance(db_session, OPENID) == 360
    refunds = [
        service.request_refund(
            db_session,
            order_no=order.order_no,
            amount_fen=amount,
            idempotency_key=key,
            reason="退菜",
            requested_by="staff",
            now=NOW,
        )
        for amount, key in ((2000, "r1"), (10000, "r2"))
    ]
    assert _refund_done(db_session, refunds[0])
    assert not _refund_done(db_session, refunds[0])  # a duplicate notify
    partial = service.get_order(db_session, order.order_no)
    assert (partial.status, partial.refunded_fen) == (OrderStatus.partially_refunded, 2000)
    assert db_session.scalars(select(Claim).where(Claim.code == coupon.code)).one().status is (
        ClaimStatus.redeemed
    )
    assert _refund_done(db_session, refunds[1])
    assert not _refund_done(db_session, refunds[1])
    done = service.get_order(db_session, order.order_no)
    assert (done.status, done.refunded_fen) == (OrderStatus.refunded, 12000)
    back = db_session.scalars(select(Claim).where(Claim.code == coupon.code)).one()
    assert back.status is ClaimStatus.claimed
    assert back.restore_count == 1
    # The 360 earned are taken back, the 1000 spent come back.
    assert points.balance(db_session, OPENID) == 1000


def test_a_failed_refund_frees_its_amount(db_session: Session) -> None:
    store_id, _coupon = _shop(db_session)
    order = _order(db_session, store_id)
    _pay(db_session, order)
    refund = service.request_refund(
        db_session,
        order_no=order.order_no,
        amount_fen=15000,
        idempotency_key="r1",
        reason="",
        requested_by="staff",
        now=NOW,
    )
    closed = ChannelRefund(refund.out_refund_no, RefundState.closed, "REFUNDCLOSE")
    assert service.apply_refund_status(db_session, status=closed, now=NOW)
    again = service.request_refund(
        db_session,
        order_no=order.order_no,
        amount_fen=15000,
        idempotency_key="r2",
        reason="",
        requested_by="staff",
        now=NOW,
    )
    assert again.out_refund_no.endswith("R2")


def test_unpaid_orders_cannot_be_refunded(db_session: Session) -> None:
    store_id, _coupon = _shop(db_session)
    order = _order(db_session, store_id)
    with pytest.raises(errors.OrderNotRefundableError):
        service.request_refund(
            db_session,
            order_no=order.order_no,
            amount_fen=1,
            idempotency_key="r1",
            reason="",
            requested_by="staff",
            now=NOW,
        )


@pytest.mark.parametrize("terminal", sorted(states.TERMINAL_ORDER))
def test_terminal_order_states_have_no_way_out(terminal: OrderStatus) -> None:
    assert not any(states.can_move(states.ORDER_MOVES, terminal, t) for t in OrderStatus)


def test_a_paid_order_can_never_be_closed() -> None:
    assert not states.can_move(states.ORDER_MOVES, OrderStatus.paid, OrderStatus.closed)
    assert not states.can_move(states.ATTEMPT_MOVES, AttemptStatus.paid, AttemptStatus.closed)
    assert not states.can_move(states.REFUND_MOVES, RefundStatus.succeeded, RefundStatus.closed)
