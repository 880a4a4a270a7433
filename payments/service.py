"""Orders and what happens to them, one transaction at a time (no channel calls here: those are
in `payments.flows`, between these steps).

Every state change goes through `_move_*`: one conditional UPDATE whose WHERE lists the states
`payments.states` allows the move from. Whoever's UPDATE changes the row applies the effects;
everyone else (a duplicate notify, a late query, a second worker) finds nothing to do.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, false, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coupons import claims as coupon_claims
from coupons import points as coupon_points
from coupons.codes import normalise_code
from coupons.errors import PointsEntryNotFoundError, PointsInsufficientError
from coupons.models import Claim, ClaimStatus
from coupons.rules import ApplyContext, evaluate
from coupons.service import get_offer, terms_of
from merchants.models import Merchant, MerchantStatus, Store, StoreStatus
from payments import errors, states
from payments.channels import RefundState, TradeState, TradeStatus
from payments.channels import RefundStatus as ChannelRefundStatus
from payments.config import PaymentSettings
from payments.models import (
    AttemptStatus,
    Order,
    OrderStatus,
    OutboxMessage,
    OutboxStatus,
    PaymentAttempt,
    Refund,
    RefundStatus,
)
from payments.states import S
from tianfu.db import upsert_insert
from tianfu.errors import TianfuError

_ORDERS = cast(Table, Order.__table__)
_ATTEMPTS = cast(Table, PaymentAttempt.__table__)
_REFUNDS = cast(Table, Refund.__table__)
_BEIJING = timedelta(hours=8)
LATE_PAYMENT_REFUNDER = "system:late-payment"


# What a domain selling through orders does when one of its orders is paid or closed, in the same
# transaction (cinema: tickets, or seats back). Registered by kind (`Order.kind`) by the domain
# itself, so payments calls it without importing it: the arrow stays cinema -> payments.
OrderHook = Callable[[Session, Order, datetime], None]


@dataclass(frozen=True)
class OrderHooks:
    paid: OrderHook
    closed: OrderHook


_ORDER_HOOKS: dict[str, OrderHooks] = {}


def register_order_hooks(kind: str, *, paid: OrderHook, closed: OrderHook) -> None:
    """Register (or replace) what happens to `kind` orders when paid or closed unpaid."""
    _ORDER_HOOKS[kind] = OrderHooks(paid=paid, closed=closed)


def _order_hooks(order: Order, *, required: bool) -> OrderHooks | None:
    hooks = _ORDER_HOOKS.get(order.kind)
    if hooks is None and required and order.kind != "store":
        # Money for goods nobody in this process would deliver: not applied (the notify is
        # answered with a failure and sent again), rather than paid without tickets.
        raise RuntimeError(f"no hooks registered for {order.kind!r} orders")
    return hooks


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def lock_for_write(session: Session) -> None:
    """SQLite: take the write lock before reading, so two writers cannot both read a row and
    then decide on what they read (PostgreSQL uses row locks and conditional UPDATEs)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(_ORDERS).where(false()).values(status=_ORDERS.c.status))


def new_order_no(now: datetime) -> str:
    """`TF` + the Beijing date (yymmdd) + 12 random digits: sortable by day, not guessable,
    and 20 characters, the most a WeChat template field shows (lbs.client)."""
    day = (now.astimezone(UTC) + _BEIJING).strftime("%y%m%d")
    return f"TF{day}{secrets.randbelow(10**12):012d}"


# -- moves ------------------------------------------------------------------------------------


def _move(
    session: Session,
    table: Table,
    moves: Mapping[S, frozenset[S]],
    row_id: int,
    target: S,
    **values: Any,
) -> bool:
    """The one way a status changes: a conditional UPDATE from the states `moves` allows."""
    allowed = [state.value for state in states.sources(moves, target)]
    result = session.execute(
        update(table)
        .where(table.c.id == row_id, table.c.status.in_(allowed))
        .values(status=target, updated_at=values.pop("now"), **values)
    )
    return _rowcount(result) == 1


def _move_order(session: Session, order_id: int, target: OrderStatus, **values: Any) -> bool:
    return _move(session, _ORDERS, states.ORDER_MOVES, order_id, target, **values)


def _move_attempt(session: Session, attempt_id: int, target: AttemptStatus, **values: Any) -> bool:
    return _move(session, _ATTEMPTS, states.ATTEMPT_MOVES, attempt_id, target, **values)


def _move_refund(session: Session, refund_id: int, target: RefundStatus, **values: Any) -> bool:
    return _move(session, _REFUNDS, states.REFUND_MOVES, refund_id, target, **values)


# -- reading ----------------------------------------------------------------------------------


def get_order(session: Session, order_no: str, *, openid: str | None = None) -> Order:
    """The order; with `openid`, only if it is that user's (anyone else gets "not found")."""
    statement = select(Order).where(Order.order_no == order_no)
    if openid is not None:
        statement = statement.where(Order.openid == openid)
    order = session.scalars(statement.execution_options(populate_existing=True)).one_or_none()
    if order is None:
        raise errors.OrderNotFoundError(f"订单 {order_no} 不存在")
    return order


def get_attempt(session: Session, out_trade_no: str) -> PaymentAttempt:
    attempt = session.scalars(
        select(PaymentAttempt)
        .where(PaymentAttempt.out_trade_no == out_trade_no)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if attempt is None:
        raise errors.AttemptNotFoundError(f"支付单 {out_trade_no} 不存在")
    return attempt


def get_refund(session: Session, out_refund_no: str) -> Refund:
    refund = session.scalars(
        select(Refund)
        .where(Refund.out_refund_no == out_refund_no)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if refund is None:
        raise errors.RefundNotFoundError(f"退款单 {out_refund_no} 不存在")
    return refund


def attempts_of(session: Session, order_id: int) -> list[PaymentAttempt]:
    return list(
        session.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.order_id == order_id)
            .order_by(PaymentAttempt.seq)
            .execution_options(populate_existing=True)
        )
    )


def refunds_of(session: Session, order_id: int) -> list[Refund]:
    return list(
        session.scalars(
            select(Refund)
            .where(Refund.order_id == order_id)
            .order_by(Refund.id)
            .execution_options(populate_existing=True)
        )
    )


# -- creating an order ------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderRequest:
    openid: str
    store_id: int
    total_fen: int
    idempotency_key: str
    coupon_code: str | None = None
    points: int = 0
    description: str | None = None
    items: tuple[dict[str, Any], ...] = ()
    kind: str = "store"


@dataclass(frozen=True)
class Quote:
    """What an order would cost: shown before paying, and what create_order charges."""

    total_fen: int
    discount_fen: int
    points: int
    points_fen: int
    payable_fen: int
    offer_id: int | None
    offer_title_zh: str | None
    points_per_yuan: int
    explanation_zh: str


def _payable_store(session: Session, store_id: int) -> tuple[Store, Merchant]:
    row = session.execute(
        select(Store, Merchant).join(Merchant).where(Store.id == store_id)
    ).one_or_none()
    if row is None:
        raise errors.InvalidOrderError(f"门店 {store_id} 不存在")
    store, merchant = row
    if merchant.status is not MerchantStatus.approved or store.status is not StoreStatus.open:
        raise errors.StoreNotPayableError("该门店暂不支持付款")
    return store, merchant


def quote(
    session: Session, request: OrderRequest, *, settings: PaymentSettings, now: datetime
) -> Quote:
    """Price an order: the coupon's discount (if it applies here, now, at this amount), then
    points, within their share of what is left. Refusals say why, in Chinese."""
    if request.total_fen < 1:
        raise errors.InvalidOrderError("金额必须大于 0")
    if request.points < 0:
        raise errors.InvalidOrderError("积分不能为负")
    store, merchant = _payable_store(session, request.store_id)
    discount_fen, offer_id, title, per_yuan = 0, None, None, settings.base_points_per_yuan
    explanation = "无优惠"
    if request.coupon_code:
        coupon = session.scalars(
            select(Claim).where(Claim.code == normalise_code(request.coupon_code))
        ).one_or_none()
        if coupon is None or coupon.openid != request.openid:
            raise errors.InvalidOrderError("找不到这张券")
        if coupon.status is not ClaimStatus.claimed or (
            coupon.expires_at is not None and coupon.expires_at <= now
        ):
            raise errors.InvalidOrderError("该券已使用或已过期")
        offer = get_offer(session, coupon.offer_id)
        # As at the counter: new-customer status and the points price were settled at claim.
        terms = replace(terms_of(offer), new_customers_only=False, points_cost=0)
        context = ApplyContext(now, store.id, merchant.id, request.total_fen, points_balance=0)
        verdict = evaluate(terms, context)
        if not verdict.applies:
            raise errors.InvalidOrderError(f"该券暂不可用：{verdict.reason_zh}")
        discount_fen = min(verdict.discount_fen, request.total_fen - 1)
        offer_id, title = offer.id, offer.title_zh
        per_yuan += offer.points_per_yuan
        explanation = f"{offer.title_zh}，优惠 {discount_fen / 100:.2f} 元"
    left_fen = request.total_fen - discount_fen
    points_fen = request.points * settings.fen_per_point
    cap_fen = min(left_fen - 1, left_fen * settings.max_points_permille // 1000)
    if points_fen > cap_fen:
        raise errors.InvalidOrderError(f"本单最多可用 {cap_fen // settings.fen_per_point} 积分")
    if request.points and coupon_points.balance(session, request.openid) < request.points:
        raise errors.InvalidOrderError("积分不足")
    return Quote(
        total_fen=request.total_fen,
        discount_fen=discount_fen,
        points=request.points,
        points_fen=points_fen,
        payable_fen=left_fen - points_fen,
        offer_id=offer_id,
        offer_title_zh=title,
        points_per_yuan=per_yuan,
        explanation_zh=explanation,
    )


def _same_request(order: Order, request: OrderRequest) -> bool:
    return (
        order.store_id == request.store_id
        and order.total_fen == request.total_fen
        and (order.coupon_code or None)
        == (normalise_code(request.coupon_code) if request.coupon_code else None)
        and order.points_used == request.points
    )


def _by_key(session: Session, openid: str, key: str) -> Order | None:
    return session.scalars(
        select(Order).where(Order.openid == openid, Order.idempotency_key == key)
    ).one_or_none()


def create_order(
    session: Session, request: OrderRequest, *, settings: PaymentSettings, now: datetime
) -> Order:
    """Create an order, or return the one this idempotency key made before (same request).

    Points are taken now (given back if the order closes unpaid); the coupon is held by the
    order (the partial unique index) and used when the payment arrives.
    """
    if not 1 <= len(request.idempotency_key) <= 64:
        raise errors.InvalidOrderError("idempotency_key 须为 1..64 个字符")
    lock_for_write(session)
    existing = _by_key(session, request.openid, request.idempotency_key)
    if existing is not None:
        if not _same_request(existing, request):
            raise errors.IdempotencyKeyReusedError("该请求号已用于另一笔订单")
        return existing
    priced = quote(session, request, settings=settings, now=now)
    store, _merchant = _payable_store(session, request.store_id)
    order = Order(
        order_no=new_order_no(now),
        openid=request.openid,
        idempotency_key=request.idempotency_key,
        merchant_id=store.merchant_id,
        store_id=store.id,
        kind=request.kind,
        description=(request.description or store.name)[:127],
        items=list(request.items),
        total_fen=priced.total_fen,
        discount_fen=priced.discount_fen,
        points_used=priced.points,
        points_fen=priced.points_fen,
        payable_fen=priced.payable_fen,
        coupon_code=(normalise_code(request.coupon_code) if request.coupon_code else None),
        offer_id=priced.offer_id,
        points_per_yuan=priced.points_per_yuan,
        status=OrderStatus.created,
        expires_at=now + timedelta(seconds=settings.order_ttl_s),
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(order)
            session.flush()
    except IntegrityError as exc:
        again = _by_key(session, request.openid, request.idempotency_key)
        if again is not None:  # the same request, a moment earlier, from another worker
            if not _same_request(again, request):
                raise errors.IdempotencyKeyReusedError("该请求号已用于另一笔订单") from exc
            return again
        raise errors.CouponInUseError("这张券正在另一笔待支付订单中使用") from exc
    if priced.points:
        coupon_points.spend(
            session,
            openid=request.openid,
            points=priced.points,
            source_key=f"order:{order.order_no}:spend",
            now=now,
        )
    return order


# -- attempts ---------------------------------------------------------------------------------


def lock_order(session: Session, order_no: str, *, openid: str | None = None) -> Order:
    lock_for_write(session)
    statement = select(Order).where(Order.order_no == order_no).with_for_update()
    if openid is not None:
        statement = statement.where(Order.openid == openid)
    order = session.scalars(statement.execution_options(populate_existing=True)).one_or_none()
    if order is None:
        raise errors.OrderNotFoundError(f"订单 {order_no} 不存在")
    return order


def open_attempts(session: Session, order_id: int) -> list[PaymentAttempt]:
    """Attempts that may still take money: the channel holds them, or we do not know."""
    live = (AttemptStatus.created, AttemptStatus.prepaid, AttemptStatus.unknown)
    return [a for a in attempts_of(session, order_id) if a.status in live]


def begin_attempt(
    session: Session,
    *,
    order: Order,
    channel: str,
    account: str,
    method: str,
    now: datetime,
) -> PaymentAttempt:
    """A new attempt for a locked order (which moves to paying). The caller has closed any
    attempt still open at a channel first: two live trades could both be paid."""
    if order.status not in states.sources(states.ORDER_MOVES, OrderStatus.paying):
        raise errors.OrderNotPayableError(f"订单状态为 {order.status.value}，不能支付")
    if order.expires_at <= now:
        raise errors.OrderNotPayableError("订单已超时，请重新下单")
    seq = (
        session.scalar(
            select(func.max(PaymentAttempt.seq)).where(PaymentAttempt.order_id == order.id)
        )
        or 0
    ) + 1
    attempt = PaymentAttempt(
        order_id=order.id,
        seq=seq,
        out_trade_no=f"{order.order_no}P{seq}",
        channel=channel,
        account=account,
        method=method,
        amount_fen=order.payable_fen,
        currency=order.currency,
        status=AttemptStatus.created,
        created_at=now,
        updated_at=now,
    )
    session.add(attempt)
    session.flush()
    _move_order(session, order.id, OrderStatus.paying, now=now)
    return attempt


def record_prepay(
    session: Session,
    *,
    attempt_id: int,
    prepay_id: str | None,
    client_params: dict[str, Any],
    now: datetime,
) -> bool:
    return _move_attempt(
        session,
        attempt_id,
        AttemptStatus.prepaid,
        now=now,
        prepay_id=prepay_id,
        client_params=client_params,
        error_code="",
        error_message="",
    )


def record_attempt_problem(
    session: Session, *, attempt_id: int, retryable: bool, code: str, message: str, now: datetime
) -> bool:
    """A prepay that failed: declined (final) or with an unknown outcome (settled by query)."""
    target = AttemptStatus.unknown if retryable else AttemptStatus.failed
    return _move_attempt(
        session, attempt_id, target, now=now, error_code=code[:64], error_message=message[:255]
    )


def mark_attempt_closed(
    session: Session, *, attempt_id: int, channel_state: str, now: datetime
) -> bool:
    return _move_attempt(
        session, attempt_id, AttemptStatus.closed, now=now, channel_state=channel_state[:32]
    )


# -- news from a channel ----------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """What applying a channel's news did: `changed` is False for a duplicate or stale event."""

    changed: bool
    order_status: OrderStatus
    attempt_status: AttemptStatus


def apply_trade_status(
    session: Session, *, status: TradeStatus, now: datetime, settings: PaymentSettings
) -> Applied:
    """Apply what a channel says about a trade (a verified notify or a query answer), once.

    A payment whose amount or currency differs from the attempt's is never applied
    (AmountMismatchError); the caller answers the channel with a failure and people look.
    """
    lock_for_write(session)
    # The order row is locked before the attempt is read, so what is read below is current:
    # every change to an order's attempts happens under this same lock.
    order = session.scalars(
        select(Order)
        .join(PaymentAttempt, PaymentAttempt.order_id == Order.id)
        .where(PaymentAttempt.out_trade_no == status.out_trade_no)
        .with_for_update(of=Order)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if order is None:
        raise errors.AttemptNotFoundError(f"支付单 {status.out_trade_no} 不存在")
    attempt = get_attempt(session, status.out_trade_no)
    target: AttemptStatus | None = None
    order_status = order.status
    values: dict[str, Any] = {"channel_state": status.channel_state[:32], "last_queried_at": now}
    if status.state is TradeState.paid:
        if (
            status.amount_fen != attempt.amount_fen
            or (status.currency or "CNY") != attempt.currency
        ):
            raise errors.AmountMismatchError(
                f"{attempt.out_trade_no}: channel says {status.amount_fen} {status.currency}, "
                f"attempt is {attempt.amount_fen} {attempt.currency}"
            )
        target = AttemptStatus.paid
        values |= {
            "channel_trade_no": status.channel_trade_no,
            "paid_at": status.paid_at or now,
            "payer_id": status.payer_id,
        }
    elif status.state in (TradeState.closed, TradeState.failed):
        target = AttemptStatus.closed if status.state is TradeState.closed else AttemptStatus.failed
    if target is None:
        session.execute(update(_ATTEMPTS).where(_ATTEMPTS.c.id == attempt.id).values(**values))
        return Applied(False, order_status, attempt.status)
    if not _move_attempt(session, attempt.id, target, now=now, **values):
        return Applied(False, order_status, attempt.status)
    if target is AttemptStatus.paid and _after_attempt_paid(
        session, order=order, attempt=attempt, now=now, settings=settings
    ):
        order_status = OrderStatus.paid
    return Applied(True, order_status, target)


def _after_attempt_paid(
    session: Session,
    *,
    order: Order,
    attempt: PaymentAttempt,
    now: datetime,
    settings: PaymentSettings,
) -> bool:
    """The order moves to paid with its effects (True), or, paid or closed already, the money
    is sent back (False)."""
    paid_at = now
    if _move_order(
        session,
        order.id,
        OrderStatus.paid,
        now=now,
        paid_at=paid_at,
        paid_attempt_id=attempt.id,
    ):
        _use_coupon_and_points(session, order=order, now=now, settings=settings)
        hooks = _order_hooks(order, required=True)
        if hooks is not None:
            hooks.paid(session, order, now)
        queue(
            session,
            topic="payment_notice",
            dedup_key=f"paid:{order.order_no}",
            payload={"order_no": order.order_no, "kind": "paid"},
            now=now,
        )
        return True
    # The order was closed, or paid by another attempt, before this money arrived: it goes
    # back to the payer automatically, and the order keeps a record for the bank.
    session.execute(
        update(_ORDERS)
        .where(_ORDERS.c.id == order.id)
        .values(late_payment_fen=_ORDERS.c.late_payment_fen + attempt.amount_fen, updated_at=now)
    )
    _add_refund(
        session,
        order_id=order.id,
        attempt=attempt,
        amount_fen=attempt.amount_fen,
        idempotency_key=f"late:{attempt.out_trade_no}",
        reason="订单已关闭，款项自动退回",
        requested_by=LATE_PAYMENT_REFUNDER,
        now=now,
    )
    return False


def _use_coupon_and_points(
    session: Session, *, order: Order, now: datetime, settings: PaymentSettings
) -> None:
    if order.coupon_code:
        try:
            with session.begin_nested():
                # Judged at the checkout's time: the user chose it then, and it was held since.
                coupon_claims.redeem(
                    session,
                    code=order.coupon_code,
                    store_id=order.store_id,
                    now=order.created_at,
                    order_ref=order.order_no,
                )
        except TianfuError as exc:
            # Used at a counter meanwhile: the discount was given; people decide what next.
            queue(
                session,
                topic="review",
                dedup_key=f"coupon:{order.order_no}",
                payload={"order_no": order.order_no, "problem": exc.message},
                now=now,
            )
    earned = coupon_points.points_for_payment(order.payable_fen, order.points_per_yuan)
    if earned:
        coupon_points.earn(
            session,
            openid=order.openid,
            points=earned,
            source_key=f"order:{order.order_no}:earn",
            now=now,
        )


def close_order(session: Session, *, order: Order, now: datetime) -> bool:
    """Close an unpaid order whose attempts are all settled as unpaid; points come back."""
    if not _move_order(session, order.id, OrderStatus.closed, now=now, closed_at=now):
        return False
    for attempt in open_attempts(session, order.id):
        _move_attempt(session, attempt.id, AttemptStatus.closed, now=now)
    if order.points_used:
        coupon_points.reverse(
            session, source_key_of_original=f"order:{order.order_no}:spend", now=now
        )
    # Without hooks nothing is lost here: what an order held (seats) runs out with its own time.
    hooks = _order_hooks(order, required=False)
    if hooks is not None:
        hooks.closed(session, order, now)
    return True


def close_untried(session: Session, *, order_no: str, now: datetime) -> bool:
    """Close an order nobody has tried to pay yet (created, no attempt at all): no channel has a
    trade for it, so no money can come for it, and its coupon and points are free at once. An
    order with any attempt waits for the jobs, which close it at the channel first."""
    order = lock_order(session, order_no)
    if order.status is not OrderStatus.created:
        return False
    tried = session.scalar(
        select(func.count()).select_from(PaymentAttempt).where(PaymentAttempt.order_id == order.id)
    )
    if tried:
        return False
    return close_order(session, order=order, now=now)


def expire_now(session: Session, *, order_no: str, now: datetime) -> bool:
    """Bring an unpaid order's end forward to now, for goods that are gone (a cinema hold given
    back after the cashier opened): the jobs then close it, at the channel first, and its coupon
    and points come back within a round instead of at the end of its TTL. No new attempt can
    start from now on; a payment already under way is still settled by its query or notify."""
    moved = session.execute(
        update(_ORDERS)
        .where(
            _ORDERS.c.order_no == order_no,
            _ORDERS.c.status.in_([OrderStatus.created.value, OrderStatus.paying.value]),
            _ORDERS.c.expires_at > now,
        )
        .values(expires_at=now, updated_at=now)
    )
    return _rowcount(moved) == 1


def live_orders_of_coupons(session: Session, codes: list[str]) -> dict[str, Order]:
    """The unpaid orders (created or paying) that count on these coupons, by coupon code: each
    coupon backs at most one (uq_orders_live_coupon)."""
    if not codes:
        return {}
    orders = session.scalars(
        select(Order).where(
            Order.coupon_code.in_([normalise_code(code) for code in codes]),
            Order.status.in_([OrderStatus.created, OrderStatus.paying]),
        )
    )
    return {str(order.coupon_code): order for order in orders}


# -- refunds ----------------------------------------------------------------------------------


def _add_refund(
    session: Session,
    *,
    order_id: int,
    attempt: PaymentAttempt,
    amount_fen: int,
    idempotency_key: str,
    reason: str,
    requested_by: str,
    now: datetime,
) -> Refund:
    seq = (
        session.scalar(select(func.max(Refund.seq)).where(Refund.attempt_id == attempt.id)) or 0
    ) + 1
    refund = Refund(
        order_id=order_id,
        attempt_id=attempt.id,
        seq=seq,
        out_refund_no=f"{attempt.out_trade_no}R{seq}",
        idempotency_key=idempotency_key,
        amount_fen=amount_fen,
        reason=reason[:80],
        requested_by=requested_by[:64],
        status=RefundStatus.pending,
        next_try_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    session.flush()
    return refund


def request_refund(
    session: Session,
    *,
    order_no: str,
    amount_fen: int,
    idempotency_key: str,
    reason: str,
    requested_by: str,
    now: datetime,
) -> Refund:
    """Write a refund and reserve its amount on the order, or return the one this key made.

    The reservation is one conditional UPDATE (and a CHECK backs it), so two refunds racing
    can never together exceed what was paid.
    """
    if amount_fen < 1:
        raise errors.InvalidOrderError("退款金额必须大于 0")
    if not 1 <= len(idempotency_key) <= 64:
        raise errors.InvalidOrderError("idempotency_key 须为 1..64 个字符")
    order = lock_order(session, order_no)
    existing = session.scalars(
        select(Refund).where(Refund.order_id == order.id, Refund.idempotency_key == idempotency_key)
    ).one_or_none()
    if existing is not None:
        if existing.amount_fen != amount_fen:
            raise errors.IdempotencyKeyReusedError("该请求号已用于另一笔退款")
        return existing
    if order.status not in (OrderStatus.paid, OrderStatus.partially_refunded):
        raise errors.OrderNotRefundableError(f"订单状态为 {order.status.value}，不能退款")
    reserved = session.execute(
        update(_ORDERS)
        .where(
            _ORDERS.c.id == order.id,
            _ORDERS.c.status.in_([OrderStatus.paid.value, OrderStatus.partially_refunded.value]),
            _ORDERS.c.refund_reserved_fen + amount_fen <= _ORDERS.c.payable_fen,
        )
        .values(refund_reserved_fen=_ORDERS.c.refund_reserved_fen + amount_fen, updated_at=now)
    )
    if _rowcount(reserved) == 0:
        left = order.payable_fen - order.refund_reserved_fen
        raise errors.RefundExceedsPaidError(f"可退金额仅剩 {left / 100:.2f} 元")
    assert order.paid_attempt_id is not None
    attempt = session.get_one(PaymentAttempt, order.paid_attempt_id)
    return _add_refund(
        session,
        order_id=order.id,
        attempt=attempt,
        amount_fen=amount_fen,
        idempotency_key=idempotency_key,
        reason=reason,
        requested_by=requested_by,
        now=now,
    )


def record_refund_problem(
    session: Session,
    *,
    refund_id: int,
    code: str,
    message: str,
    retry_at: datetime | None,
    now: datetime,
) -> None:
    """A refund call that failed: retried later with the same out_refund_no."""
    session.execute(
        update(_REFUNDS)
        .where(_REFUNDS.c.id == refund_id)
        .values(
            error_code=code[:64],
            error_message=message[:255],
            tries=_REFUNDS.c.tries + 1,
            next_try_at=retry_at,
            updated_at=now,
        )
    )


def apply_refund_status(session: Session, *, status: ChannelRefundStatus, now: datetime) -> bool:
    """Apply a channel's news about a refund once. A refund that succeeds adds to the order's
    refunded amount; the one that completes it gives the coupon and the points back."""
    lock_for_write(session)
    refund = get_refund(session, status.out_refund_no)
    order = session.scalars(
        select(Order)
        .where(Order.id == refund.order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    common = {
        "channel_state": status.channel_state[:32],
        "channel_refund_no": status.channel_refund_no or refund.channel_refund_no,
    }
    if status.state is RefundState.processing:
        return _move_refund(session, refund.id, RefundStatus.processing, now=now, **common)
    if status.state is RefundState.abnormal:
        return _move_refund(session, refund.id, RefundStatus.abnormal, now=now, **common)
    automatic = refund.requested_by == LATE_PAYMENT_REFUNDER
    if status.state is RefundState.closed:
        moved = _move_refund(session, refund.id, RefundStatus.closed, now=now, **common)
        if moved and not automatic:
            session.execute(
                update(_ORDERS)
                .where(_ORDERS.c.id == order.id)
                .values(refund_reserved_fen=_ORDERS.c.refund_reserved_fen - refund.amount_fen)
            )
        return moved
    moved = _move_refund(
        session,
        refund.id,
        RefundStatus.succeeded,
        now=now,
        succeeded_at=status.succeeded_at or now,
        **common,
    )
    if not moved or automatic:
        return moved
    refunded = order.refunded_fen + refund.amount_fen
    complete = refunded >= order.payable_fen
    _move_order(
        session,
        order.id,
        OrderStatus.refunded if complete else OrderStatus.partially_refunded,
        now=now,
        refunded_fen=_ORDERS.c.refunded_fen + refund.amount_fen,
    )
    if complete:
        _give_back_coupon_and_points(session, order=order, now=now)
    queue(
        session,
        topic="payment_notice",
        dedup_key=f"refund:{refund.out_refund_no}",
        payload={
            "order_no": order.order_no,
            "kind": "refunded",
            "out_refund_no": refund.out_refund_no,
        },
        now=now,
    )
    return True


def _give_back_coupon_and_points(session: Session, *, order: Order, now: datetime) -> None:
    if order.coupon_code:
        try:
            with session.begin_nested():
                coupon_claims.restore(
                    session, code=order.coupon_code, now=now, order_ref=order.order_no
                )
        except TianfuError as exc:
            queue(
                session,
                topic="review",
                dedup_key=f"coupon-back:{order.order_no}",
                payload={"order_no": order.order_no, "problem": exc.message},
                now=now,
            )
    for key in (f"order:{order.order_no}:earn", f"order:{order.order_no}:spend"):
        try:
            with session.begin_nested():
                coupon_points.reverse(session, source_key_of_original=key, now=now)
        except PointsEntryNotFoundError:
            continue  # nothing earned (or spent) on this order
        except PointsInsufficientError as exc:
            # The points earned were spent since: the bank decides, the refund still stands.
            queue(
                session,
                topic="review",
                dedup_key=f"points-back:{order.order_no}",
                payload={"order_no": order.order_no, "problem": exc.message},
                now=now,
            )


# -- outbox -----------------------------------------------------------------------------------


def queue(
    session: Session, *, topic: str, dedup_key: str, payload: dict[str, Any], now: datetime
) -> None:
    """Queue work for after the commit; queuing the same key twice is a no-op."""
    session.execute(
        upsert_insert(session.get_bind().dialect.name)(OutboxMessage.__table__)
        .values(
            topic=topic,
            dedup_key=dedup_key,
            payload=payload,
            status=OutboxStatus.pending,
            tries=0,
            next_try_at=now,
            last_error="",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedup_key"])
    )
