"""The simulated gateway's books: trades by out_trade_no, refunds by out_refund_no.

In memory behind one lock: the simulator *is* the channel, so its own memory is the truth the
merchant reconciles against (spec §5, "bills generated from the simulator's own ledger").
Protocol-neutral: the v2 and v3 routes map a `Refusal` onto their own error codes. Every method
hands out copies, so a route can read a trade after the lock is released while the notify
thread settles refunds.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Literal

from tenpay_adapter.timefmt import BEIJING, format_beijing_compact

ApiVersion = Literal["v2", "v3"]
TradeState = Literal["NOTPAY", "USERPAYING", "SUCCESS", "REFUND", "CLOSED", "PAYERROR"]
RefundState = Literal["PROCESSING", "SUCCESS"]
_OPEN: frozenset[str] = frozenset({"NOTPAY", "USERPAYING", "PAYERROR"})
_PAID: frozenset[str] = frozenset({"SUCCESS", "REFUND"})


class Refusal(StrEnum):
    ORDER_NOT_EXIST = "order_not_exist"
    ORDER_PAID = "order_paid"
    ORDER_CLOSED = "order_closed"
    OUT_TRADE_NO_USED = "out_trade_no_used"
    CLOSE_TOO_EARLY = "close_too_early"
    NOT_PAYABLE = "not_payable"  # closed, expired, already paid: the cashier refuses
    NOT_PAID = "not_paid"  # a refund of an unpaid trade
    TOTAL_FEE_MISMATCH = "total_fee_mismatch"
    REFUND_FEE_MISMATCH = "refund_fee_mismatch"
    REFUND_EXCEEDS_PAID = "refund_exceeds_paid"
    TOO_MANY_REFUNDS = "too_many_refunds"
    REFUND_NOT_EXIST = "refund_not_exist"


class TradeRefusedError(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


@dataclass(frozen=True)
class OrderRequest:
    api_version: ApiVersion
    out_trade_no: str
    # What "identical parameters" compares (spec §1.3): the request minus nonce and signature.
    fingerprint: str
    trade_type: str
    amount_fen: int
    description: str
    notify_url: str
    attach: str = ""
    openid: str | None = None
    sign_type: str = "MD5"  # v2: notifies are signed the way the order was
    time_expire: datetime | None = None


@dataclass
class Trade:
    request: OrderRequest
    prepay_id: str
    code_url: str | None
    created_at: datetime
    prepay_expires_at: datetime
    state: TradeState = "NOTPAY"
    transaction_id: str | None = None
    paid_at: datetime | None = None
    payer_openid: str | None = None
    refunded_fen: int = 0
    refund_count: int = 0
    closed_at: datetime | None = None
    # The `notify_before_query` fault: queries show `masked_state` until this monotonic time.
    masked_until: float = 0.0
    masked_state: TradeState = "NOTPAY"

    @property
    def out_trade_no(self) -> str:
        return self.request.out_trade_no

    @property
    def amount_fen(self) -> int:
        return self.request.amount_fen

    def shown_state(self) -> TradeState:
        """What a query says: the truth, unless a fault holds it back for a while."""
        return self.masked_state if time.monotonic() < self.masked_until else self.state

    def payable_at(self, now: datetime) -> bool:
        deadline = self.request.time_expire
        alive = now < self.prepay_expires_at and (deadline is None or now < deadline)
        return self.state in _OPEN and alive


@dataclass(frozen=True)
class RefundRequest:
    api_version: ApiVersion
    out_refund_no: str
    out_trade_no: str | None
    transaction_id: str | None
    total_fen: int
    refund_fen: int
    reason: str = ""
    notify_url: str | None = None


@dataclass
class Refund:
    request: RefundRequest
    refund_id: str
    out_trade_no: str
    transaction_id: str
    created_at: datetime
    settle_due: float  # time.monotonic(): real seconds, whatever the simulated clock says
    state: RefundState = "PROCESSING"
    success_at: datetime | None = None

    @property
    def out_refund_no(self) -> str:
        return self.request.out_refund_no

    @property
    def amount_fen(self) -> int:
        return self.request.refund_fen


@dataclass
class _Books:
    trades: dict[str, Trade] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    serial: int = 0


def beijing_date(moment: datetime) -> date:
    return moment.astimezone(BEIJING).date()


class Ledger:
    def __init__(
        self, *, now: Callable[[], datetime], prepay_ttl_s: float, max_partial_refunds: int
    ) -> None:
        self._now = now
        self._prepay_ttl = timedelta(seconds=prepay_ttl_s)
        self._max_refunds = max_partial_refunds
        self._lock = threading.Lock()
        self._books = _Books()

    def reset(self) -> None:
        with self._lock:
            self._books = _Books()

    def _next_serial(self) -> int:
        self._books.serial += 1
        return self._books.serial

    # -- trades ------------------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> Trade:
        """A new trade, or the same prepay again for identical parameters (spec §1.3, §2.4)."""
        with self._lock:
            now = self._now()
            existing = self._books.trades.get(request.out_trade_no)
            if existing is not None:
                if existing.state in _PAID:
                    raise TradeRefusedError(Refusal.ORDER_PAID)
                same = existing.request.fingerprint == request.fingerprint
                if not same or not existing.payable_at(now):
                    raise TradeRefusedError(Refusal.OUT_TRADE_NO_USED)
                return copy.copy(existing)
            stamp = now.astimezone(BEIJING).strftime("%d%H%M%S")
            native = request.trade_type == "NATIVE"
            trade = Trade(
                request=request,
                prepay_id=f"wx{stamp}{secrets.token_hex(13)}",
                code_url=f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}"
                if native
                else None,
                created_at=now,
                prepay_expires_at=now + self._prepay_ttl,
            )
            self._books.trades[request.out_trade_no] = trade
            return copy.copy(trade)

    def _find(self, out_trade_no: str | None, transaction_id: str | None) -> Trade | None:
        if out_trade_no:
            return self._books.trades.get(out_trade_no)
        if transaction_id:
            for trade in self._books.trades.values():
                if trade.transaction_id == transaction_id:
                    return trade
        return None

    def find(
        self, *, out_trade_no: str | None = None, transaction_id: str | None = None
    ) -> Trade | None:
        with self._lock:
            trade = self._find(out_trade_no, transaction_id)
            return copy.copy(trade) if trade is not None else None

    def find_for_cashier(self, *, prepay_id: str | None, code_url: str | None) -> Trade | None:
        with self._lock:
            for trade in self._books.trades.values():
                if (prepay_id and trade.prepay_id == prepay_id) or (
                    code_url and trade.code_url == code_url
                ):
                    return copy.copy(trade)
        return None

    def _open_trade(self, out_trade_no: str) -> Trade:
        trade = self._books.trades.get(out_trade_no)
        if trade is None:
            raise TradeRefusedError(Refusal.ORDER_NOT_EXIST)
        if not trade.payable_at(self._now()):
            raise TradeRefusedError(Refusal.NOT_PAYABLE)
        return trade

    def pay(
        self, out_trade_no: str, *, openid: str | None, mask: tuple[float, TradeState] | None
    ) -> Trade:
        """The buyer pays. `mask` = (seconds, state): queries keep saying `state` that long."""
        with self._lock:
            trade = self._open_trade(out_trade_no)
            now = self._now()
            trade.state = "SUCCESS"
            trade.paid_at = now.replace(microsecond=0)  # time_end has whole seconds
            trade.payer_openid = trade.request.openid or openid
            trade.transaction_id = f"420000{format_beijing_compact(now)}{self._next_serial():08d}"
            if mask is not None:
                trade.masked_until = time.monotonic() + mask[0]
                trade.masked_state = mask[1]
            return copy.copy(trade)

    def decline(self, out_trade_no: str) -> Trade:
        with self._lock:
            trade = self._open_trade(out_trade_no)
            trade.state = "PAYERROR"
            return copy.copy(trade)

    def close(self, out_trade_no: str, *, min_age_s: float) -> Trade:
        """Closing twice is fine (the second answer is ORDERCLOSED in v2, 204 in v3)."""
        with self._lock:
            trade = self._books.trades.get(out_trade_no)
            if trade is None:
                raise TradeRefusedError(Refusal.ORDER_NOT_EXIST)
            if trade.state in _PAID:
                raise TradeRefusedError(Refusal.ORDER_PAID)
            if trade.state == "CLOSED":
                raise TradeRefusedError(Refusal.ORDER_CLOSED)
            now = self._now()
            if now - trade.created_at < timedelta(seconds=min_age_s):
                raise TradeRefusedError(Refusal.CLOSE_TOO_EARLY)
            trade.state = "CLOSED"
            trade.closed_at = now
            return copy.copy(trade)

    # -- refunds -----------------------------------------------------------------------------

    def refund(self, request: RefundRequest, *, settle_after_s: float) -> tuple[Refund, bool]:
        """The refund and whether it is new. A repeat of an out_refund_no with the same amount
        is the same refund (retry-safe, spec §1.7); another amount is REFUND_FEE_MISMATCH."""
        with self._lock:
            existing = self._books.refunds.get(request.out_refund_no)
            if existing is not None:
                if existing.request.refund_fen != request.refund_fen or (
                    existing.request.total_fen != request.total_fen
                ):
                    raise TradeRefusedError(Refusal.REFUND_FEE_MISMATCH)
                return copy.copy(existing), False
            trade = self._find(request.out_trade_no, request.transaction_id)
            if trade is None:
                raise TradeRefusedError(Refusal.ORDER_NOT_EXIST)
            self._check_refundable(trade, request)
            now = self._now()
            refund = Refund(
                request=request,
                refund_id=f"500000{beijing_date(now):%Y%m%d}{self._next_serial():015d}",
                out_trade_no=trade.out_trade_no,
                transaction_id=trade.transaction_id or "",
                created_at=now,
                settle_due=time.monotonic() + settle_after_s,
            )
            trade.refunded_fen += request.refund_fen
            trade.refund_count += 1
            trade.state = "REFUND"
            self._books.refunds[request.out_refund_no] = refund
            return copy.copy(refund), True

    def _check_refundable(self, trade: Trade, request: RefundRequest) -> None:
        if trade.state not in _PAID:
            raise TradeRefusedError(Refusal.NOT_PAID)
        if request.total_fen != trade.amount_fen:
            raise TradeRefusedError(Refusal.TOTAL_FEE_MISMATCH)
        if trade.refund_count >= self._max_refunds:
            raise TradeRefusedError(Refusal.TOO_MANY_REFUNDS)
        if request.refund_fen <= 0 or trade.refunded_fen + request.refund_fen > trade.amount_fen:
            raise TradeRefusedError(Refusal.REFUND_EXCEEDS_PAID)

    def _settle(self, refund: Refund) -> None:
        if refund.state == "PROCESSING" and time.monotonic() >= refund.settle_due:
            refund.state = "SUCCESS"
            refund.success_at = self._now().replace(microsecond=0)

    def settle_refund(self, out_refund_no: str) -> Refund | None:
        """Moves a due refund to SUCCESS (the notify thread calls this when it is due)."""
        with self._lock:
            refund = self._books.refunds.get(out_refund_no)
            if refund is None:
                return None
            self._settle(refund)
            return copy.copy(refund)

    def find_refund(self, out_refund_no: str) -> Refund | None:
        return self.settle_refund(out_refund_no)

    def find_refund_by_id(self, refund_id: str) -> Refund | None:
        with self._lock:
            for refund in self._books.refunds.values():
                if refund.refund_id == refund_id:
                    self._settle(refund)
                    return copy.copy(refund)
        return None

    def refunds_of(self, out_trade_no: str) -> list[Refund]:
        """In the order they were asked for (v2 refundquery numbers them _0, _1 …)."""
        with self._lock:
            found = [r for r in self._books.refunds.values() if r.out_trade_no == out_trade_no]
            for refund in found:
                self._settle(refund)
            return [copy.copy(refund) for refund in found]

    # -- the bill ----------------------------------------------------------------------------

    def day(self, bill_date: date) -> tuple[list[Trade], list[tuple[Refund, Trade]]]:
        """Payments made and refunds completed on a Beijing calendar day (spec §1.10)."""
        with self._lock:
            for refund in self._books.refunds.values():
                self._settle(refund)
            trades = self._books.trades
            paid = [
                copy.copy(t)
                for t in trades.values()
                if t.paid_at is not None and beijing_date(t.paid_at) == bill_date
            ]
            refunded = [
                (copy.copy(r), copy.copy(trades[r.out_trade_no]))
                for r in self._books.refunds.values()
                if r.success_at is not None and beijing_date(r.success_at) == bill_date
            ]
        paid.sort(key=lambda t: t.paid_at or t.created_at)
        refunded.sort(key=lambda pair: pair[0].success_at or pair[0].created_at)
        return paid, refunded
