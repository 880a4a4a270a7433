"""What the bank owes each merchant for one Beijing day (`tianfu settle`), recomputed from the
orders and refunds of that day and upserted, so computing a day again gives the same rows.

A day's sales are the orders that became paid in our books that day (`Order.paid_at`). A payment
whose notify was lost and that reconciliation settled the next morning is booked on the day it
was settled: a settled day's figures never change afterwards, and nothing is counted twice or
lost (the reconciliation item explains the day's difference from the channel's statement).

Money is integer fen throughout (spec §6); yuan appear only as strings in the CSV.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from merchants.models import Merchant
from payments.flows import family_of
from payments.models import MerchantSettlement, Order, PaymentAttempt, Refund, RefundStatus
from payments.service import LATE_PAYMENT_REFUNDER
from tianfu.csvcells import text_cell
from tianfu.db import upsert_insert

BEIJING = timezone(timedelta(hours=8))  # no DST since 1991: a fixed offset is exact
BP_PER_UNIT = 10_000


def beijing_day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Beijing calendar day, in aware UTC."""
    start = datetime.combine(day, time(0), tzinfo=BEIJING).astimezone(UTC)
    return start, start + timedelta(days=1)


def yuan(fen: int) -> str:
    """Fen as yuan with two decimals, by integer arithmetic (spec §6): -1230 -> "-12.30"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def fee_of(amount_fen: int, bp: int) -> int:
    """amount × bp / 10000, rounded half up, in integers: 12345 fen at 60 bp = 74.07 -> 74."""
    return (amount_fen * bp + BP_PER_UNIT // 2) // BP_PER_UNIT


@dataclass
class _Figures:
    orders: int = 0
    gross_fen: int = 0
    merchant_discount_fen: int = 0
    bank_discount_fen: int = 0
    paid_fen: int = 0
    refunds_fen: int = 0
    fee_fen: int = 0

    def row(self, merchant_id: int, day: date, now: datetime) -> dict[str, Any]:
        net = self.paid_fen + self.bank_discount_fen - self.refunds_fen - self.fee_fen
        figures = asdict(self)
        return {
            "merchant_id": merchant_id,
            "day": day,
            **figures,
            "net_fen": net,
            "computed_at": now,
        }


def _figures(session: Session, *, day: date, fee_bp: Mapping[str, int]) -> dict[int, _Figures]:
    start, end = beijing_day_bounds(day)
    figures: defaultdict[int, _Figures] = defaultdict(_Figures)
    sales = session.execute(
        select(
            Order.merchant_id,
            Order.total_fen,
            Order.discount_fen,
            Order.points_fen,
            Order.payable_fen,
            PaymentAttempt.channel,
            PaymentAttempt.amount_fen,
        )
        .join(PaymentAttempt, PaymentAttempt.id == Order.paid_attempt_id)
        .where(Order.paid_at >= start, Order.paid_at < end)
    )
    for merchant_id, total, discount, points, payable, channel, amount in sales:
        family = family_of(channel)
        if family not in fee_bp:
            raise ValueError(f"no fee rate for channel {family} (TIANFU_PAYMENTS_CHANNEL_FEE_BP)")
        one = figures[merchant_id]
        one.orders += 1
        one.gross_fen += total
        one.merchant_discount_fen += discount  # coupons: merchants fund their own offers
        one.bank_discount_fen += points  # points: the bank pays for them
        one.paid_fen += payable
        # Per attempt, as the channel charges per transaction, then summed.
        one.fee_fen += fee_of(amount, fee_bp[family])
    refunds = session.execute(
        select(Order.merchant_id, func.sum(Refund.amount_fen))
        .join(Order, Order.id == Refund.order_id)
        .where(
            Refund.status == RefundStatus.succeeded,
            Refund.succeeded_at >= start,
            Refund.succeeded_at < end,
            # A payment that arrived after its order closed was never the merchant's sale.
            Refund.requested_by != LATE_PAYMENT_REFUNDER,
        )
        .group_by(Order.merchant_id)
    )
    for merchant_id, refunded in refunds:
        figures[merchant_id].refunds_fen += int(refunded or 0)
    return dict(figures)


def settle_day(
    session: Session, *, day: date, fee_bp: Mapping[str, int], now: datetime
) -> list[MerchantSettlement]:
    """Compute and upsert every merchant's settlement for `day`; rows of merchants with no
    activity left from an earlier computation are removed. Flushes, never commits."""
    figures = _figures(session, day=day, fee_bp=fee_bp)
    table = MerchantSettlement.__table__
    if figures:
        insert = upsert_insert(session.get_bind().dialect.name)(table)
        rows = [one.row(merchant_id, day, now) for merchant_id, one in figures.items()]
        keys = ("merchant_id", "day")
        session.execute(
            insert.values(rows).on_conflict_do_update(
                index_elements=list(keys),
                set_={name: insert.excluded[name] for name in rows[0] if name not in keys},
            )
        )
    session.execute(
        delete(MerchantSettlement).where(
            MerchantSettlement.day == day, MerchantSettlement.merchant_id.not_in(list(figures))
        )
    )
    return list(
        session.scalars(
            select(MerchantSettlement)
            .where(MerchantSettlement.day == day)
            .order_by(MerchantSettlement.merchant_id)
            .execution_options(populate_existing=True)
        )
    )


CSV_HEADER = (
    "day",
    "merchant_id",
    "merchant_name",
    "orders",
    "gross_yuan",
    "merchant_discount_yuan",
    "bank_discount_yuan",
    "paid_yuan",
    "refunds_yuan",
    "fee_yuan",
    "net_yuan",
)


def settlements_csv(session: Session, *, day: date, merchant_id: int | None = None) -> str:
    statement = (
        select(MerchantSettlement, Merchant.name)
        .join(Merchant, Merchant.id == MerchantSettlement.merchant_id)
        .where(MerchantSettlement.day == day)
        .order_by(MerchantSettlement.merchant_id)
    )
    if merchant_id is not None:
        statement = statement.where(MerchantSettlement.merchant_id == merchant_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row, name in session.execute(statement):
        writer.writerow(
            [
                row.day.isoformat(),
                row.merchant_id,
                text_cell(name),
                row.orders,
                *(
                    yuan(fen)
                    for fen in (
                        row.gross_fen,
                        row.merchant_discount_fen,
                        row.bank_discount_fen,
                        row.paid_fen,
                        row.refunds_fen,
                        row.fee_fen,
                        row.net_fen,
                    )
                ),
            ]
        )
    return out.getvalue()
