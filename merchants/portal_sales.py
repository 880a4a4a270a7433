"""A merchant's sales on the portal: one Beijing day's paid orders and refunds of its stores
(staff: of their stores), the day's totals, a CSV of both, and for the owner the settlement the
bank computed for the day (`tianfu settle`), with its CSV.

A day's sales are the orders that became paid that day and the refunds that succeeded that day,
as payments.settlement counts them, so the page's totals and the settlement agree; refunds still
under way are listed by the day they were asked for. Refunds of a payment that reached an order
already closed were never the merchant's sale, and are left out here as they are there.
Money is integer fen; yuan appear only as text (payments.settlement.yuan).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from merchants.auth import OwnerScope, Principal, Scope, portal_router
from merchants.errors import OutOfScopeError
from merchants.models import Store
from merchants.portal_counter import mask_user
from merchants.portal_reports import beijing_time, csv_response, day_of, text_cell, today
from merchants.portal_web import message_page, render
from merchants.scope import NOT_FOUND_ZH, MerchantScope
from payments.models import MerchantSettlement, Order, OrderStatus, Refund, RefundStatus
from payments.service import LATE_PAYMENT_REFUNDER
from payments.settlement import beijing_day_bounds, settlements_csv, yuan
from tianfu.deps import DbSession

router = portal_router("/portal")

ROW_LIMIT = 500  # on the page; the CSV has every row
ORDER_STATUS_ZH = {
    OrderStatus.created: "待支付",
    OrderStatus.paying: "支付中",
    OrderStatus.paid: "已支付",
    OrderStatus.partially_refunded: "部分退款",
    OrderStatus.refunded: "已退款",
    OrderStatus.closed: "已关闭",
}
REFUND_STATUS_ZH = {
    RefundStatus.pending: "退款中",
    RefundStatus.processing: "退款中",
    RefundStatus.succeeded: "已退款",
    RefundStatus.closed: "退款失败",
    RefundStatus.abnormal: "退款异常",
}
CSV_HEADER = (
    "record",
    "number",
    "order_no",
    "store_id",
    "store_name",
    "time",
    "status",
    "total_yuan",
    "coupon_discount_yuan",
    "points_yuan",
    "paid_yuan",
    "refund_yuan",
)


@dataclass(frozen=True)
class SalesTotals:
    orders: int
    gross_fen: int
    coupon_fen: int  # merchant-funded: the offers' discounts
    points_fen: int  # bank-funded
    paid_fen: int
    refunded_fen: int


@dataclass(frozen=True)
class Sales:
    day: date
    clause: ColumnElement[bool]  # the orders this account may see, of the chosen store if any
    start: datetime
    end: datetime

    def orders(self) -> Select[Order, str]:
        return (
            select(Order, Store.name)
            .join(Store, Store.id == Order.store_id)
            .where(self.clause, Order.paid_at >= self.start, Order.paid_at < self.end)
            .order_by(Order.paid_at, Order.id)
        )

    def refunds(self) -> Select[Refund, str, int, str]:
        on_day = and_(Refund.succeeded_at >= self.start, Refund.succeeded_at < self.end)
        asked = and_(
            Refund.succeeded_at.is_(None),
            Refund.created_at >= self.start,
            Refund.created_at < self.end,
        )
        return (
            select(Refund, Order.order_no, Store.id, Store.name)
            .join(Order, Order.id == Refund.order_id)
            .join(Store, Store.id == Order.store_id)
            .where(self.clause, Refund.requested_by != LATE_PAYMENT_REFUNDER, or_(on_day, asked))
            .order_by(Refund.created_at, Refund.id)
        )

    def totals(self, db: Session) -> SalesTotals:
        def total(column: Any) -> Any:
            return func.coalesce(func.sum(column), 0)

        sums = db.execute(
            select(
                func.count(),
                total(Order.total_fen),
                total(Order.discount_fen),
                total(Order.points_fen),
                total(Order.payable_fen),
            ).where(self.clause, Order.paid_at >= self.start, Order.paid_at < self.end)
        ).one()
        refunded = db.scalar(
            select(total(Refund.amount_fen))
            .join(Order, Order.id == Refund.order_id)
            .where(
                self.clause,
                Refund.status == RefundStatus.succeeded,
                Refund.succeeded_at >= self.start,
                Refund.succeeded_at < self.end,
                Refund.requested_by != LATE_PAYMENT_REFUNDER,
            )
        )
        count, gross, coupons, points, paid = (int(value) for value in sums)
        return SalesTotals(count, gross, coupons, points, paid, refunded_fen=int(refunded or 0))


def _sales(db: Session, scope: MerchantScope, day: date, store: Store | None) -> Sales:
    clause = scope.store_clause(Order.store_id, Order.merchant_id)
    if store is not None:
        clause = clause & (Order.store_id == store.id)
    start, end = beijing_day_bounds(day)
    return Sales(day, clause, start, end)


def _store(db: Session, scope: MerchantScope, value: str) -> Store | None:
    if not value:
        return None
    if not value.isdigit() or len(value) >= 10:
        raise OutOfScopeError(f"门店{NOT_FOUND_ZH}")
    return scope.get_store(db, int(value))


def _bad_day(request: Request) -> Response:
    return message_page(
        request,
        status_code=422,
        title="日期有误",
        message="日期格式应为 YYYY-MM-DD",
        link=("/portal/sales", "返回"),
    )


@router.get("/sales", response_class=HTMLResponse)
def sales_page(
    request: Request, db: DbSession, scope: Scope, day: str = "", store_id: str = ""
) -> Response:
    chosen = day_of(day, today(request))
    if chosen is None:
        return _bad_day(request)
    store = _store(db, scope, store_id)
    sales = _sales(db, scope, chosen, store)
    orders = list(db.execute(sales.orders().limit(ROW_LIMIT + 1)))
    refunds = list(db.execute(sales.refunds().limit(ROW_LIMIT + 1)))
    settlement = db.get(MerchantSettlement, (scope.merchant_id, chosen)) if scope.is_owner else None
    context = {
        "day": chosen.isoformat(),
        "stores": list(db.scalars(scope.stores())),
        "store": store,
        "orders": orders[:ROW_LIMIT],
        "refunds": refunds[:ROW_LIMIT],
        "truncated": len(orders) > ROW_LIMIT or len(refunds) > ROW_LIMIT,
        "totals": sales.totals(db),
        "settlement": settlement,
        "is_owner": scope.is_owner,
        "order_status": ORDER_STATUS_ZH,
        "refund_status": REFUND_STATUS_ZH,
        "mask": mask_user,
        "yuan": yuan,
    }
    user: Principal = request.state.portal_principal
    return render(request, "portal/sales.html", context, user=user)


def sales_csv(db: Session, sales: Sales) -> str:
    """The day's orders, then its refunds; amounts in yuan from integer fen, never a float."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for order, store_name in db.execute(sales.orders()):
        writer.writerow(
            [
                "order",
                order.order_no,
                order.order_no,
                order.store_id,
                text_cell(store_name),
                beijing_time(order.paid_at),
                order.status.value,
                yuan(order.total_fen),
                yuan(order.discount_fen),
                yuan(order.points_fen),
                yuan(order.payable_fen),
                "",
            ]
        )
    for refund, order_no, store_id, store_name in db.execute(sales.refunds()):
        when = refund.succeeded_at or refund.created_at
        writer.writerow(
            [
                "refund",
                refund.out_refund_no,
                order_no,
                store_id,
                text_cell(store_name),
                beijing_time(when),
                refund.status.value,
                "",
                "",
                "",
                "",
                yuan(refund.amount_fen),
            ]
        )
    return out.getvalue()


@router.get("/sales.csv")
def sales_download(
    request: Request, db: DbSession, scope: Scope, day: str = "", store_id: str = ""
) -> Response:
    chosen = day_of(day, today(request))
    if chosen is None:
        return _bad_day(request)
    sales = _sales(db, scope, chosen, _store(db, scope, store_id))
    return csv_response(sales_csv(db, sales), f"sales-{chosen.isoformat()}.csv")


@router.get("/sales/settlement.csv")
def settlement_download(
    request: Request, db: DbSession, scope: OwnerScope, day: str = ""
) -> Response:
    chosen = day_of(day, today(request))
    if chosen is None:
        return _bad_day(request)
    text = settlements_csv(db, day=chosen, merchant_id=scope.merchant_id)
    return csv_response(text, f"settlement-{chosen.isoformat()}.csv")
