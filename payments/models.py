"""Orders, payment attempts, refunds, channel events and the outbox.

What keeps money moving exactly once is in the schema (STYLE.md §7-8):

* Every state change is a conditional UPDATE (`payments.states` says which moves are allowed),
  so a late or duplicate event finds nothing to change.
* `out_trade_no` and `out_refund_no` are UNIQUE and derived from our own rows, so a retry after
  a timeout asks about the same trade instead of opening another.
* One live order per coupon: a partial UNIQUE index on the coupon code over unpaid orders.
* Refunds reserve their amount on the order with one conditional UPDATE, and a CHECK keeps the
  reserved total within what was paid.
* A verified channel event is inserted into `payment_events` with its channel's id; a duplicate
  meets the unique key and changes nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tianfu.orm import Base, TimestampMixin, UTCDateTime, enum_column, model_repr


class OrderStatus(StrEnum):
    created = "created"
    paying = "paying"
    paid = "paid"
    partially_refunded = "partially_refunded"
    refunded = "refunded"
    closed = "closed"


class AttemptStatus(StrEnum):
    created = "created"  # row written, channel not asked yet
    prepaid = "prepaid"  # the channel holds the trade; the payer can pay it
    unknown = "unknown"  # the prepay's outcome is unknown (timeout, 5xx): settle by query
    paid = "paid"
    failed = "failed"  # declined, or the payment failed at the channel
    closed = "closed"  # closed at the channel (or never reached it): no money moved


class RefundStatus(StrEnum):
    pending = "pending"  # written; the channel has not accepted it yet (or we do not know)
    processing = "processing"  # accepted by the channel
    succeeded = "succeeded"
    closed = "closed"  # failed for good: the amount is free to refund again
    abnormal = "abnormal"  # the buyer's account refused it: a person must act


class OutboxStatus(StrEnum):
    pending = "pending"
    done = "done"
    dead = "dead"  # gave up after the last retry; listed for people


LIVE_ORDER_STATUSES = (OrderStatus.created, OrderStatus.paying)


class Order(TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        # A client retrying "create order" with its key gets the same order back.
        UniqueConstraint("openid", "idempotency_key"),
        CheckConstraint(
            "total_fen > 0 AND discount_fen >= 0 AND points_fen >= 0 AND points_used >= 0 "
            "AND payable_fen >= 1 AND refunded_fen >= 0 AND refund_reserved_fen >= 0",
            name="amounts_valid",
        ),
        CheckConstraint(
            "payable_fen = total_fen - discount_fen - points_fen", name="payable_adds_up"
        ),
        CheckConstraint("refunded_fen <= refund_reserved_fen", name="refunded_within_reserved"),
        CheckConstraint("refund_reserved_fen <= payable_fen", name="refunds_within_paid"),
        # One live order per coupon: two checkouts cannot both count on the same coupon.
        Index(
            "uq_orders_live_coupon",
            "coupon_code",
            unique=True,
            sqlite_where=text("status IN ('created', 'paying') AND coupon_code IS NOT NULL"),
            postgresql_where=text("status IN ('created', 'paying') AND coupon_code IS NOT NULL"),
        ),
        Index("ix_orders_status_expires_at", "status", "expires_at"),
        Index("ix_orders_merchant_id_created_at", "merchant_id", "created_at"),
        Index("ix_orders_openid_created_at", "openid", "created_at"),
        # A day's sales: settlement over every merchant, the portal over one merchant's.
        Index("ix_orders_paid_at", "paid_at"),
        Index("ix_orders_merchant_id_paid_at", "merchant_id", "paid_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_no: Mapped[str] = mapped_column(String(24), unique=True)  # shown to people; unguessable
    openid: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16), default="store")  # store | cinema
    description: Mapped[str] = mapped_column(String(127))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    total_fen: Mapped[int] = mapped_column(Integer)
    discount_fen: Mapped[int] = mapped_column(Integer, default=0)
    points_used: Mapped[int] = mapped_column(Integer, default=0)
    points_fen: Mapped[int] = mapped_column(Integer, default=0)  # what the points paid
    payable_fen: Mapped[int] = mapped_column(Integer)
    coupon_code: Mapped[str | None] = mapped_column(String(16))
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id", ondelete="RESTRICT"))
    points_per_yuan: Mapped[int] = mapped_column(Integer, default=0)  # earned when paid
    status: Mapped[OrderStatus] = mapped_column(
        enum_column(OrderStatus, "order_status"), default=OrderStatus.created
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_attempt_id: Mapped[int | None] = mapped_column(Integer)
    refund_reserved_fen: Mapped[int] = mapped_column(Integer, default=0)
    refunded_fen: Mapped[int] = mapped_column(Integer, default=0)
    # Money that arrived for an order already closed (a payment racing its close): refunded
    # automatically and kept here for the bank's eyes.
    late_payment_fen: Mapped[int] = mapped_column(Integer, default=0)

    def __repr__(self) -> str:
        return model_repr(self, "order_no", "status", "payable_fen")


class PaymentAttempt(TimestampMixin, Base):
    __tablename__ = "payment_attempts"
    __table_args__ = (
        UniqueConstraint("order_id", "seq"),
        CheckConstraint("amount_fen >= 1", name="amount_positive"),
        Index("ix_payment_attempts_status_updated_at", "status", "updated_at"),
        Index("ix_payment_attempts_paid_at", "paid_at"),  # a day's payments, for reconciliation
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ... within the order
    # `<order_no>P<seq>`: ours, unique, and known before the channel is called.
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    status: Mapped[AttemptStatus] = mapped_column(
        enum_column(AttemptStatus, "attempt_status"), default=AttemptStatus.created
    )
    prepay_id: Mapped[str | None] = mapped_column(String(128))
    # What the client needs to pay (JSAPI params, code_url): shown again on a reload without
    # asking the channel for another prepay.
    client_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    channel_trade_no: Mapped[str | None] = mapped_column(String(64), index=True)
    channel_state: Mapped[str] = mapped_column(String(32), default="")
    payer_id: Mapped[str | None] = mapped_column(String(128))
    error_code: Mapped[str] = mapped_column(String(64), default="")
    error_message: Mapped[str] = mapped_column(String(255), default="")
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_queried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return model_repr(self, "out_trade_no", "channel", "status")


class Refund(TimestampMixin, Base):
    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("order_id", "idempotency_key"),
        UniqueConstraint("attempt_id", "seq"),
        CheckConstraint("amount_fen >= 1", name="amount_positive"),
        Index("ix_refunds_status_next_try_at", "status", "next_try_at"),
        Index("ix_refunds_succeeded_at", "succeeded_at"),  # a day's refunds: recon, settlement
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"), index=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("payment_attempts.id", ondelete="RESTRICT"))
    seq: Mapped[int] = mapped_column(Integer)
    # `<out_trade_no>R<seq>`: reused on every retry, so the buyer is never refunded twice.
    out_refund_no: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(80), default="")
    requested_by: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[RefundStatus] = mapped_column(
        enum_column(RefundStatus, "refund_status"), default=RefundStatus.pending
    )
    channel_refund_no: Mapped[str | None] = mapped_column(String(64))
    channel_state: Mapped[str] = mapped_column(String(32), default="")
    error_code: Mapped[str] = mapped_column(String(64), default="")
    error_message: Mapped[str] = mapped_column(String(255), default="")
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return model_repr(self, "out_refund_no", "amount_fen", "status")


class PaymentEvent(Base):
    """A verified notify, once per channel event id: the duplicate filter, and a record of what
    each channel told us."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("channel", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # payment | refund
    reference: Mapped[str] = mapped_column(String(64))  # out_trade_no or out_refund_no
    channel_state: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxMessage(Base):
    """Work that must happen after a commit, at least once, with retries (a payment notice to
    the user's WeChat). `dedup_key` makes queuing it twice a no-op."""

    __tablename__ = "payment_outbox"
    __table_args__ = (Index("ix_payment_outbox_status_next_try_at", "status", "next_try_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(32))
    dedup_key: Mapped[str] = mapped_column(String(128), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[OutboxStatus] = mapped_column(
        enum_column(OutboxStatus, "outbox_status"), default=OutboxStatus.pending
    )
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MerchantPayAccount(Base):
    """Which channel account takes a merchant's payments (the default account otherwise)."""

    __tablename__ = "merchant_pay_accounts"

    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)  # tenpay | alipay
    account: Mapped[str] = mapped_column(String(32), default="")  # "": the default account
    # False: this merchant does not take payments through this channel at all.
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class ChannelHealth(Base):
    """The circuit breaker of one channel account, shared by every worker: after repeated
    failures to reach it, routing skips it until `open_until` (only failures where nothing can
    have reached the channel count, so skipping it never strands money)."""

    __tablename__ = "channel_health"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    account: Mapped[str] = mapped_column(String(32), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    open_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReconciliationRun(Base):
    """One run of `tianfu reconcile` over one channel account's statement for one day."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (Index("ix_reconciliation_runs_bill_date", "bill_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bill_date: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # ok | failed
    statement_lines: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    new_items: Mapped[int] = mapped_column(Integer, default=0)
    settled: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReconciliationItem(Base):
    """A difference between a channel's statement and our books, found once (the unique key
    makes a second run of the same day add nothing) and either settled or left for people."""

    __tablename__ = "reconciliation_items"
    __table_args__ = (
        UniqueConstraint("bill_date", "channel", "account", "kind", "reference"),
        Index("ix_reconciliation_items_resolution", "resolution", "bill_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bill_date: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(32))
    # missing_here | missing_at_channel | amount_mismatch | status_mismatch
    kind: Mapped[str] = mapped_column(String(24))
    reference: Mapped[str] = mapped_column(String(64))  # out_trade_no or out_refund_no
    order_id: Mapped[int | None] = mapped_column(Integer)
    our_state: Mapped[str] = mapped_column(String(32), default="")
    channel_state: Mapped[str] = mapped_column(String(32), default="")
    our_amount_fen: Mapped[int | None] = mapped_column(Integer)
    channel_amount_fen: Mapped[int | None] = mapped_column(Integer)
    resolution: Mapped[str] = mapped_column(String(16), default="open")  # open | settled
    detail: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MerchantSettlement(Base):
    """What the bank owes a merchant for one Beijing day, recomputed (idempotently) from the
    orders and refunds of that day."""

    __tablename__ = "merchant_settlements"
    __table_args__ = (
        CheckConstraint(
            "orders >= 0 AND gross_fen >= 0 AND merchant_discount_fen >= 0 "
            "AND bank_discount_fen >= 0 AND refunds_fen >= 0 AND fee_fen >= 0",
            name="figures_not_negative",
        ),
    )

    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    gross_fen: Mapped[int] = mapped_column(Integer)  # list price of the day's paid orders
    merchant_discount_fen: Mapped[int] = mapped_column(Integer)  # coupons: the merchant's offers
    bank_discount_fen: Mapped[int] = mapped_column(Integer)  # points: the bank pays for them
    paid_fen: Mapped[int] = mapped_column(Integer)  # what the payers paid through channels
    refunds_fen: Mapped[int] = mapped_column(Integer)
    fee_fen: Mapped[int] = mapped_column(Integer)
    net_fen: Mapped[int] = mapped_column(Integer)  # paid + bank discount - refunds - fees
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
