"""What payments needs from a payment channel, and nothing more (ARCHITECTURE.md, STYLE.md §4).

A channel adapter (`tenpay_adapter`, the Alipay channel) implements :class:`PaymentChannel`;
payments never sees a channel's wire format. Every call is keyed by *our* numbers
(`out_trade_no`, `out_refund_no`), so an ambiguous outcome can always be settled by asking again.

Errors come in two kinds, and the difference is what keeps money moving exactly once:

- :class:`ChannelRetryableError`: the outcome is unknown (a timeout, a 5xx, SYSTEMERROR). The
  money may or may not have moved; settle it by *querying the same channel with the same number*,
  never by paying again or elsewhere.
- :class:`ChannelDeclinedError`: the channel gave a final answer; the call had no effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol


class PayMethod(StrEnum):
    jsapi = "jsapi"  # inside WeChat's browser: the page calls the payment sheet with our params
    native = "native"  # a QR code the user scans (`code_url`)
    page = "page"  # a page the user's browser is sent to (`page_url`)


class TradeState(StrEnum):
    """A channel's view of one trade, closed over every channel's own words."""

    not_found = "not_found"  # the channel has no such trade (never prepaid, or not yet scanned)
    unpaid = "unpaid"  # prepaid, waiting for the payer
    paying = "paying"  # the payer is confirming (USERPAYING, Alipay 10003)
    paid = "paid"  # money taken; also after refunds started (WeChat's REFUND state)
    closed = "closed"  # closed or expired unpaid, or revoked: no money moved
    failed = "failed"  # the payment failed (PAYERROR): no money moved


class RefundState(StrEnum):
    processing = "processing"
    succeeded = "succeeded"
    closed = "closed"  # the refund failed for good; the money stays with the merchant
    abnormal = "abnormal"  # the buyer's account refused it; needs a person (WeChat's CHANGE)


@dataclass(frozen=True)
class PrepayRequest:
    out_trade_no: str
    description: str
    amount_fen: int
    method: PayMethod
    notify_url: str
    expires_at: datetime
    client_ip: str
    payer_openid: str | None = None  # required for JSAPI
    attach: str = ""
    currency: str = "CNY"
    return_url: str | None = None  # page payments: where the payer's browser comes back to


@dataclass(frozen=True)
class Prepay:
    """What the client needs to pay: one of JSAPI parameters, a QR code URL or a page URL."""

    method: PayMethod
    prepay_id: str | None = None
    jsapi_params: Mapping[str, str] | None = None
    code_url: str | None = None
    page_url: str | None = None


@dataclass(frozen=True)
class TradeStatus:
    out_trade_no: str
    state: TradeState
    channel_state: str  # the channel's own word, for people and logs
    channel_trade_no: str | None = None
    amount_fen: int | None = None  # what the channel says the trade is for
    currency: str | None = None
    paid_at: datetime | None = None
    payer_id: str | None = None


@dataclass(frozen=True)
class RefundRequest:
    out_trade_no: str
    out_refund_no: str
    refund_fen: int
    total_fen: int
    reason: str
    notify_url: str


@dataclass(frozen=True)
class RefundStatus:
    out_refund_no: str
    state: RefundState
    channel_state: str
    channel_refund_no: str | None = None
    amount_fen: int | None = None
    out_trade_no: str | None = None
    succeeded_at: datetime | None = None


@dataclass(frozen=True)
class PaymentNotice:
    """A verified payment notify. `event_id` identifies this notify for deduplication."""

    event_id: str
    status: TradeStatus
    account: str  # the merchant account (mchid, Alipay app_id) it was sent to


@dataclass(frozen=True)
class RefundNotice:
    event_id: str
    status: RefundStatus
    account: str


Notice = PaymentNotice | RefundNotice


@dataclass(frozen=True)
class NotifyAnswer:
    """The HTTP answer a channel expects to a notify, in its own protocol."""

    status_code: int
    body: bytes
    media_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StatementLine:
    """One row of a channel's daily statement: a payment or a refund, amounts in fen."""

    kind: str  # "payment" | "refund"
    out_trade_no: str
    channel_trade_no: str
    amount_fen: int
    channel_state: str
    at: datetime
    out_refund_no: str | None = None
    fee_fen: int = 0


@dataclass(frozen=True)
class Statement:
    channel: str
    account: str
    bill_date: date
    lines: tuple[StatementLine, ...]


class ChannelError(Exception):
    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ChannelRetryableError(ChannelError):
    """Outcome unknown: settle by querying the same channel with the same number."""


class ChannelUnreachableError(ChannelRetryableError):
    """No connection could be made (refused, or no answer to connecting): the request never
    left, so nothing happened at the channel and another channel may be tried."""


class ChannelDeclinedError(ChannelError):
    """A final answer: the call had no effect."""


class TradeAlreadyPaidError(ChannelDeclinedError):
    """A close (or repeat prepay) refused because the trade is paid: treat the order as paid."""


class OrderNumberUsedError(ChannelDeclinedError):
    """The `out_trade_no` was used with other parameters, or closed: open a new attempt."""


class NotifyRejectedError(Exception):
    """A notify that cannot be verified or read; answered with the protocol's failure reply."""


class PaymentChannel(Protocol):
    """One channel account (one mchid / app_id); the router holds one per account."""

    @property
    def name(self) -> str:
        """Stable channel name stored on attempts: `tenpay_v3`, `tenpay_v2`, `alipay`."""
        ...

    @property
    def account(self) -> str:
        """The merchant account at the channel (mchid, app_id)."""
        ...

    def prepay(self, request: PrepayRequest) -> Prepay: ...

    def query(self, out_trade_no: str) -> TradeStatus: ...

    def close(self, out_trade_no: str) -> None:
        """Close an unpaid trade. Already closed is success; paid raises TradeAlreadyPaidError."""
        ...

    def refund(self, request: RefundRequest) -> RefundStatus:
        """Ask for a refund; repeating with the same `out_refund_no` never refunds twice."""
        ...

    def query_refund(self, out_refund_no: str, *, out_trade_no: str | None = None) -> RefundStatus:
        """A refund's state; `out_trade_no` for channels that look refunds up under their trade
        (Alipay)."""
        ...

    def parse_notify(self, headers: Mapping[str, str], body: bytes) -> Notice:
        """Verify and decode a notify (signature, decryption, account); NotifyRejectedError if
        any of it fails. Amounts are checked against the order by payments, not here."""
        ...

    def notify_ack(self) -> NotifyAnswer: ...

    def notify_nack(self, reason: str) -> NotifyAnswer: ...

    def download_statement(self, bill_date: date) -> Statement: ...
