"""Merchant settlement on both databases: one Beijing day's sales, discounts, refunds and fees
per merchant, in integer fen, recomputed to the same rows."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants.models import Store
from payments.models import (
    AttemptStatus,
    MerchantSettlement,
    Order,
    OrderStatus,
    PaymentAttempt,
    Refund,
    RefundStatus,
)
from payments.service import LATE_PAYMENT_REFUNDER
from payments.settlement import (
    BEIJING,
    beijing_day_bounds,
    fee_of,
    settle_day,
    settlements_csv,
    yuan,
)
from tests.builders import make_merchant, make_store

DAY = date(2026, 3, 14)
FEES = {"tenpay": 60, "alipay": 55}
NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)


def _at(day: date, hh_mm: str) -> datetime:
    """A Beijing wall-clock time on `day`, as aware UTC (what the database holds)."""
    hour, minute = (int(part) for part in hh_mm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=BEIJING).astimezone(UTC)


def _sale(
    session: Session,
    store: Store,
    *,
    total_fen: int,
    paid_at: datetime,
    discount_fen: int = 0,
    points_fen: int = 0,
    channel: str = "tenpay_v3",
    closed: bool = False,
) -> tuple[Order, PaymentAttempt]:
    """An order paid through one attempt; `closed`: the order had closed and the payment came
    late (the attempt is paid, the order never was)."""
    order_no = f"TF{secrets.token_hex(9)}"
    payable = total_fen - discount_fen - points_fen
    order = Order(
        order_no=order_no,
        openid="oSettle0000000000000000001",
        idempotency_key=order_no,
        merchant_id=store.merchant_id,
        store_id=store.id,
        description=store.name,
        total_fen=total_fen,
        discount_fen=discount_fen,
        points_used=points_fen,
        points_fen=points_fen,
        payable_fen=payable,
        status=OrderStatus.closed if closed else OrderStatus.paid,
        expires_at=paid_at,
        paid_at=None if closed else paid_at,
        late_payment_fen=payable if closed else 0,
    )
    session.add(order)
    session.flush()
    attempt = PaymentAttempt(
        order_id=order.id,
        seq=1,
        out_trade_no=f"{order_no}P1",
        channel=channel,
        account="1900009191",
        method="jsapi",
        amount_fen=payable,
        status=AttemptStatus.paid,
        paid_at=paid_at,
    )
    session.add(attempt)
    session.flush()
    if not closed:
        order.paid_attempt_id = attempt.id
    session.flush()
    return order, attempt


def _refund(
    session: Session,
    sale: tuple[Order, PaymentAttempt],
    *,
    amount_fen: int,
    at: datetime,
    status: RefundStatus = RefundStatus.succeeded,
    requested_by: str = "staff@merchant",
) -> Refund:
    order, attempt = sale
    seq = len(list(session.scalars(select(Refund.id).where(Refund.attempt_id == attempt.id)))) + 1
    refund = Refund(
        order_id=order.id,
        attempt_id=attempt.id,
        seq=seq,
        out_refund_no=f"{attempt.out_trade_no}R{seq}",
        idempotency_key=f"r{seq}",
        amount_fen=amount_fen,
        requested_by=requested_by,
        status=status,
        succeeded_at=at if status is RefundStatus.succeeded else None,
    )
    session.add(refund)
    session.flush()
    return refund


def _figures(row: MerchantSettlement) -> tuple[int, ...]:
    return (
        row.orders,
        row.gross_fen,
        row.merchant_discount_fen,
        row.bank_discount_fen,
        row.paid_fen,
        row.refunds_fen,
        row.fee_fen,
        row.net_fen,
    )


@pytest.mark.parametrize(
    ("amount_fen", "bp", "fee_fen"),
    [
        (12345, 60, 74),  # 74.07
        (250, 60, 2),  # 1.5: half rounds up
        (249, 60, 1),  # 1.494
        (8500, 55, 47),  # 46.75
        (84, 60, 1),  # 0.504
        (83, 60, 0),  # 0.498
        (1, 60, 0),
        (13000, 0, 0),
    ],
)
def test_fees_round_half_up_in_integers(amount_fen: int, bp: int, fee_fen: int) -> None:
    assert fee_of(amount_fen, bp) == fee_fen


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (5, "0.05"), (1230, "12.30"), (-29, "-0.29"), (-12345, "-123.45")],
)
def test_yuan_is_integer_arithmetic(fen: int, text: str) -> None:
    assert yuan(fen) == text


def test_a_beijing_day_starts_at_16_utc_the_day_before() -> None:
    start, end = beijing_day_bounds(DAY)
    assert start == datetime(2026, 3, 13, 16, 0, tzinfo=UTC)
    assert end - start == timedelta(days=1)


def test_a_day_is_settled_per_merchant_with_discounts_refunds_and_fees(
    db_session: Session,
) -> None:
    session = db_session
    shop = make_store(session, merchant=make_merchant(session, name="蜀味老灶火锅"))
    other = make_store(session, merchant=make_merchant(session, name="宽窄茶馆"))
    plain = _sale(session, shop, total_fen=12345, paid_at=_at(DAY, "10:00"))
    coupon = _sale(session, shop, total_fen=15000, discount_fen=2000, paid_at=_at(DAY, "11:00"))
    points = _sale(
        session, shop, total_fen=10000, points_fen=1500, paid_at=_at(DAY, "12:00"), channel="alipay"
    )
    _sale(session, shop, total_fen=2000, paid_at=_at(DAY, "00:00"))  # the day's first second
    _sale(session, shop, total_fen=7000, paid_at=_at(DAY + timedelta(days=1), "00:00"))
    yesterday = _sale(session, shop, total_fen=3000, paid_at=_at(DAY - timedelta(days=1), "23:59"))
    _refund(session, plain, amount_fen=2345, at=_at(DAY, "15:00"))  # partial, the same day
    _refund(session, coupon, amount_fen=1000, at=_at(DAY + timedelta(days=1), "09:00"))
    _refund(session, yesterday, amount_fen=3000, at=_at(DAY, "09:00"))  # an earlier sale's
    _refund(session, points, amount_fen=500, at=_at(DAY, "16:00"), status=RefundStatus.processing)
    # Money that came after its order closed, sent straight back: never the merchant's sale.
    late = _sale(session, shop, total_fen=4000, paid_at=_at(DAY, "13:00"), closed=True)
    _refund(
        session, late, amount_fen=4000, at=_at(DAY, "13:01"), requested_by=LATE_PAYMENT_REFUNDER
    )
    _sale(session, other, total_fen=5000, paid_at=_at(DAY, "12:00"), channel="tenpay_v2")

    rows = {row.merchant_id: row for row in settle_day(session, day=DAY, fee_bp=FEES, now=NOW)}

    gross = 12345 + 15000 + 10000 + 2000
    paid = 12345 + 13000 + 8500 + 2000
    refunds = 2345 + 3000
    fees = 74 + 78 + 47 + 12  # 60 bp on 123.45, 130.00, 20.00; 55 bp on 85.00
    net = paid + 1500 - refunds - fees
    assert _figures(rows[shop.merchant_id]) == (4, gross, 2000, 1500, paid, refunds, fees, net)
    assert _figures(rows[other.merchant_id]) == (1, 5000, 0, 0, 5000, 0, 30, 4970)
    assert rows[shop.merchant_id].computed_at == NOW

    next_day = settle_day(session, day=DAY + timedelta(days=1), fee_bp=FEES, now=NOW)
    by_merchant = {row.merchant_id: _figures(row) for row in next_day}
    assert by_merchant[shop.merchant_id] == (1, 7000, 0, 0, 7000, 1000, 42, 7000 - 1000 - 42)
    assert other.merchant_id not in by_merchant


def test_settling_a_day_again_gives_the_same_rows_and_drops_stale_ones(
    db_session: Session,
) -> None:
    session = db_session
    shop = make_store(session)
    quiet = make_merchant(session, name="昨日商户")
    sale = _sale(session, shop, total_fen=9900, paid_at=_at(DAY, "18:30"))
    _refund(session, sale, amount_fen=900, at=_at(DAY, "20:00"))
    figures = dict.fromkeys(("gross_fen", "paid_fen", "net_fen"), 1) | dict.fromkeys(
        ("merchant_discount_fen", "bank_discount_fen", "refunds_fen", "fee_fen"), 0
    )
    session.add(
        MerchantSettlement(merchant_id=quiet.id, day=DAY, orders=1, computed_at=NOW, **figures)
    )
    session.flush()

    first = [
        (r.merchant_id, _figures(r)) for r in settle_day(session, day=DAY, fee_bp=FEES, now=NOW)
    ]
    later = NOW + timedelta(hours=3)
    second = settle_day(session, day=DAY, fee_bp=FEES, now=later)

    assert first == [(r.merchant_id, _figures(r)) for r in second]
    assert first == [(shop.merchant_id, (1, 9900, 0, 0, 9900, 900, 59, 8941))]
    assert second[0].computed_at == later
    stored = session.scalars(select(MerchantSettlement).where(MerchantSettlement.day == DAY)).all()
    assert [row.merchant_id for row in stored] == [shop.merchant_id]


def test_a_channel_without_a_fee_rate_is_refused(db_session: Session) -> None:
    _sale(db_session, make_store(db_session), total_fen=1000, paid_at=_at(DAY, "10:00"))
    with pytest.raises(ValueError, match="no fee rate for channel tenpay"):
        settle_day(db_session, day=DAY, fee_bp={"alipay": 60}, now=NOW)


def test_the_settlement_csv_lists_yuan_per_merchant(db_session: Session) -> None:
    session = db_session
    shop = make_store(session, merchant=make_merchant(session, name="蜀味老灶火锅"))
    other = make_store(session, merchant=make_merchant(session, name="宽窄茶馆"))
    _sale(session, shop, total_fen=12345, discount_fen=45, paid_at=_at(DAY, "10:00"))
    _sale(session, other, total_fen=29, paid_at=_at(DAY, "10:00"))
    settle_day(session, day=DAY, fee_bp=FEES, now=NOW)

    lines = settlements_csv(session, day=DAY).splitlines()
    assert lines[0] == (
        "day,merchant_id,merchant_name,orders,gross_yuan,merchant_discount_yuan,"
        "bank_discount_yuan,paid_yuan,refunds_yuan,fee_yuan,net_yuan"
    )
    # 12300 at 60 bp = 73.8 -> 74 fen; 0.29 yuan stays 0.29 (spec §6: int(0.29*100) == 28).
    assert lines[1:] == [
        f"2026-03-14,{shop.merchant_id},蜀味老灶火锅,1,123.45,0.45,0.00,123.00,0.00,0.74,122.26",
        f"2026-03-14,{other.merchant_id},宽窄茶馆,1,0.29,0.00,0.00,0.29,0.00,0.00,0.29",
    ]
    only = settlements_csv(session, day=DAY, merchant_id=other.merchant_id).splitlines()
    assert only == [lines[0], lines[2]]


def test_a_merchant_name_that_looks_like_a_formula_stays_text(db_session: Session) -> None:
    session = db_session
    name = "=1+2 火锅"
    shop = make_store(session, merchant=make_merchant(session, name=name))
    _sale(session, shop, total_fen=1000, paid_at=_at(DAY, "10:00"))
    settle_day(session, day=DAY, fee_bp=FEES, now=NOW)
    [_header, row] = settlements_csv(session, day=DAY).splitlines()
    assert row.split(",")[2] == "'=1+2 火锅"
