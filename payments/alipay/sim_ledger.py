"""The simulated Alipay's books: trades by out_trade_no, refunds by (out_trade_no,
out_request_no).

In memory behind one lock: the simulator *is* the channel, so its memory is the truth the
merchant reconciles against (spec §5). Every method hands out copies. A `Refusal` names an
ACQ.* business failure; the gateway renders it.

A precreate trade is "not scanned" until the buyer scans its QR code: it exists for nobody but
the simulator until then (spec §3.4: query and close answer ACQ.TRADE_NOT_EXIST).
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from payments.alipay.signing import BEIJING
from payments.alipay.sim_trades import (
    Cancelled,
    Refund,
    Refusal,
    Trade,
    TradeRefusedError,
    TradeRequest,
)


@dataclass
class _Books:
    trades: dict[str, Trade] = field(default_factory=dict)
    refunds: dict[tuple[str, str], Refund] = field(default_factory=dict)
    serial: int = 0
    # Trades closed by their timeout whose TRADE_CLOSED notify is still to be sent.
    expired: list[Trade] = field(default_factory=list)


def beijing_date(moment: datetime) -> date:
    return moment.astimezone(BEIJING).date()


class Ledger:
    def __init__(self, *, now: Callable[[], datetime], default_timeout_s: float) -> None:
        self._now = now
        self._default_timeout = default_timeout_s
        self._lock = threading.Lock()
        self._books = _Books()

    def reset(self) -> None:
        with self._lock:
            self._books = _Books()

    def _trade_no(self, now: datetime) -> str:
        # 28 digits like the real ones: the Beijing date, 22001, then a serial.
        self._books.serial += 1
        middle = f"22001{secrets.randbelow(10**4):04d}"
        return f"{beijing_date(now):%Y%m%d}{middle}{self._books.serial:011d}"

    def _give_buyer(self, trade: Trade, buyer_id: str, logon_id: str) -> None:
        trade.buyer_id = trade.request.buyer_id or buyer_id
        trade.buyer_logon_id = logon_id

    def _make_exist(self, trade: Trade, now: datetime) -> None:
        if not trade.trade_no:
            trade.trade_no = self._trade_no(now)
            trade.gmt_create = now.replace(microsecond=0)
        trade.scanned = True

    # -- creating ----------------------------------------------------------------------------

    def open_trade(
        self, request: TradeRequest, *, buyer: tuple[str, str] | None = None
    ) -> tuple[Trade, bool]:
        """A new trade, or the same one again for a repeat with the same amount and subject
        (whether new is the second value). A precreate trade is born unscanned. `buyer`:
        (buyer_id, logon id) when the payer is known up front (a bar code)."""
        with self._lock:
            self._expire_due()
            existing = self._books.trades.get(request.out_trade_no)
            if existing is not None:
                if existing.paid_at is not None:
                    raise TradeRefusedError(Refusal.TRADE_HAS_SUCCESS)
                if existing.status == "TRADE_CLOSED":
                    raise TradeRefusedError(Refusal.TRADE_HAS_CLOSE)
                if existing.request.fingerprint != request.fingerprint:
                    raise TradeRefusedError(Refusal.CONTEXT_INCONSISTENT)
                return copy.copy(existing), False
            now = self._now()
            expires_at = now + timedelta(seconds=request.timeout_s or self._default_timeout)
            if request.time_expire is not None:  # both given: the earlier one
                relative = now + timedelta(seconds=request.timeout_s) if request.timeout_s else None
                expires_at = min(request.time_expire, relative or request.time_expire)
            trade = Trade(
                request=request,
                created_at=now,
                expires_at=expires_at,
                scanned=request.product != "precreate",
            )
            if request.product == "precreate":
                trade.qr_code = f"https://qr.alipay.com/bax0{secrets.token_hex(10)}"
            else:
                self._make_exist(trade, now)
                trade.buyer_id = request.buyer_id
                if buyer is not None:
                    self._give_buyer(trade, *buyer)
            self._books.trades[request.out_trade_no] = trade
            return copy.copy(trade), True

    # -- finding -----------------------------------------------------------------------------

    def _find(self, out_trade_no: str | None, trade_no: str | None) -> Trade | None:
        trade = self._books.trades.get(out_trade_no) if out_trade_no else None
        if trade is None and trade_no:
            trade = next((t for t in self._books.trades.values() if t.trade_no == trade_no), None)
        if trade is not None and trade_no and trade.trade_no != trade_no:
            return None  # both given and they disagree
        return trade

    def _existing(self, out_trade_no: str | None, trade_no: str | None) -> Trade:
        trade = self._find(out_trade_no, trade_no)
        if trade is None or not trade.visible:
            raise TradeRefusedError(Refusal.TRADE_NOT_EXIST)
        return trade

    def find(
        self, *, out_trade_no: str | None = None, trade_no: str | None = None, hidden: bool = False
    ) -> Trade | None:
        """A trade the merchant can see; `hidden=True` also finds an unscanned precreate."""
        with self._lock:
            self._expire_due()
            trade = self._find(out_trade_no, trade_no)
            if trade is None or not (trade.visible or hidden):
                return None
            return copy.copy(trade)

    def find_by_qr(self, qr_code: str) -> Trade | None:
        with self._lock:
            found = next((t for t in self._books.trades.values() if t.qr_code == qr_code), None)
            return copy.copy(found) if found is not None else None

    # -- the buyer ---------------------------------------------------------------------------

    def scan(self, out_trade_no: str, *, buyer_id: str, logon_id: str) -> Trade:
        """The buyer scans a precreate QR code: the trade exists from now (WAIT_BUYER_PAY)."""
        with self._lock:
            self._expire_due()
            trade = self._books.trades.get(out_trade_no)
            if trade is None or trade.status != "WAIT_BUYER_PAY":
                raise TradeRefusedError(Refusal.TRADE_NOT_EXIST if trade is None else _why(trade))
            if not trade.scanned:
                self._make_exist(trade, self._now())
                self._give_buyer(trade, buyer_id, logon_id)
            return copy.copy(trade)

    def pay(
        self,
        out_trade_no: str,
        *,
        buyer_id: str,
        logon_id: str,
        mask_s: float | None = None,
    ) -> Trade:
        """The buyer pays (scanning first if need be). `mask_s`: queries keep saying
        WAIT_BUYER_PAY that long (the `notify_before_query` fault)."""
        with self._lock:
            self._expire_due()
            trade = self._books.trades.get(out_trade_no)
            if trade is None:
                raise TradeRefusedError(Refusal.TRADE_NOT_EXIST)
            if trade.status != "WAIT_BUYER_PAY":
                raise TradeRefusedError(_why(trade))
            now = self._now()
            self._make_exist(trade, now)
            if trade.buyer_id is None:
                self._give_buyer(trade, buyer_id, logon_id)
            trade.buyer_logon_id = trade.buyer_logon_id or logon_id
            trade.status = "TRADE_SUCCESS"
            trade.paid_at = now.replace(microsecond=0)
            if mask_s is not None:
                trade.masked_until = time.monotonic() + mask_s
                trade.masked_status = "WAIT_BUYER_PAY"
            return copy.copy(trade)

    def decline(self, out_trade_no: str, *, buyer_id: str, logon_id: str) -> Trade:
        """The buyer gives up: Alipay has no failed state, the trade is closed."""
        with self._lock:
            self._expire_due()
            trade = self._books.trades.get(out_trade_no)
            if trade is None:
                raise TradeRefusedError(Refusal.TRADE_NOT_EXIST)
            if trade.status != "WAIT_BUYER_PAY":
                raise TradeRefusedError(_why(trade))
            now = self._now()
            self._make_exist(trade, now)
            if trade.buyer_id is None:
                self._give_buyer(trade, buyer_id, logon_id)
            self._close(trade, now)
            return copy.copy(trade)

    def finish(self, out_trade_no: str) -> Trade:
        """TRADE_SUCCESS → TRADE_FINISHED: the refund window has passed."""
        with self._lock:
            trade = self._existing(out_trade_no, None)
            if trade.status != "TRADE_SUCCESS":
                raise TradeRefusedError(Refusal.TRADE_STATUS_ERROR)
            trade.status = "TRADE_FINISHED"
            return copy.copy(trade)

    # -- the merchant ------------------------------------------------------------------------

    def _close(self, trade: Trade, now: datetime) -> None:
        trade.status = "TRADE_CLOSED"
        trade.closed_at = now.replace(microsecond=0)

    def close(self, *, out_trade_no: str | None, trade_no: str | None) -> tuple[Trade, bool]:
        """Closes a WAIT_BUYER_PAY trade (spec §3.4); whether it was closed just now. Closing
        an unpaid closed trade again answers as the first time did, so a retry after a timeout
        is harmless; a paid trade is ACQ.TRADE_STATUS_ERROR (§6: treat that as paid)."""
        with self._lock:
            self._expire_due()
            trade = self._existing(out_trade_no, trade_no)
            if trade.paid_at is not None:
                raise TradeRefusedError(Refusal.TRADE_STATUS_ERROR)
            if trade.status == "TRADE_CLOSED":
                return copy.copy(trade), False
            self._close(trade, self._now())
            return copy.copy(trade), True

    def refund(
        self,
        *,
        out_trade_no: str | None,
        trade_no: str | None,
        out_request_no: str | None,
        amount_fen: int,
        reason: str = "",
    ) -> tuple[Refund, Trade, bool]:
        """The refund, the trade after it, and whether money moved (fund_change). A repeat of
        an out_request_no is the same refund and moves nothing (spec §3.4)."""
        with self._lock:
            self._expire_due()
            trade = self._existing(out_trade_no, trade_no)
            # spec §3.4: without out_request_no the request number is the out_trade_no.
            request_no = out_request_no or trade.out_trade_no
            existing = self._books.refunds.get((trade.out_trade_no, request_no))
            if existing is not None:
                if existing.amount_fen != amount_fen:
                    raise TradeRefusedError(Refusal.CONTEXT_INCONSISTENT)
                return existing, copy.copy(trade), False
            refund = self._refund(trade, request_no, amount_fen, reason)
            return refund, copy.copy(trade), True

    def _refund(self, trade: Trade, request_no: str, amount_fen: int, reason: str) -> Refund:
        if trade.status == "TRADE_FINISHED":
            raise TradeRefusedError(Refusal.TRADE_HAS_FINISHED)
        if trade.status != "TRADE_SUCCESS":
            raise TradeRefusedError(Refusal.TRADE_STATUS_ERROR)
        if amount_fen <= 0 or trade.refunded_fen + amount_fen > trade.amount_fen:
            raise TradeRefusedError(Refusal.OVER_REFUND)
        now = self._now().replace(microsecond=0)
        trade.refunded_fen += amount_fen
        trade.refunded_at = now
        full = trade.refunded_fen == trade.amount_fen
        if full:  # spec §3.3: a fully refunded trade is TRADE_CLOSED
            self._close(trade, now)
        refund = Refund(
            out_trade_no=trade.out_trade_no,
            trade_no=trade.trade_no,
            out_request_no=request_no,
            amount_fen=amount_fen,
            reason=reason,
            refunded_at=now,
            refunded_total_fen=trade.refunded_fen,
            closes_trade=full,
        )
        self._books.refunds[(trade.out_trade_no, request_no)] = refund
        return refund

    def cancel(self, *, out_trade_no: str | None, trade_no: str | None) -> Cancelled:
        """alipay.trade.cancel (bar code, spec §3.4): an unpaid trade is closed, a paid one
        refunded in full (under its out_trade_no as the request number). Idempotent: a repeat
        answers the first action again with no new effect."""
        with self._lock:
            self._expire_due()
            trade = self._existing(out_trade_no, trade_no)
            earlier = self._books.refunds.get((trade.out_trade_no, trade.out_trade_no))
            if trade.status == "WAIT_BUYER_PAY":
                self._close(trade, self._now())
                return Cancelled(copy.copy(trade), "close", changed=True)
            if trade.status == "TRADE_CLOSED" and trade.paid_at is None:
                return Cancelled(copy.copy(trade), "close", changed=False)
            if trade.status == "TRADE_CLOSED" and earlier is not None and earlier.closes_trade:
                return Cancelled(copy.copy(trade), "refund", changed=False, refund=earlier)
            if trade.status != "TRADE_SUCCESS" or trade.refunded_fen:
                raise TradeRefusedError(Refusal.TRADE_STATUS_ERROR)
            refund = self._refund(trade, trade.out_trade_no, trade.amount_fen, "撤销")
            return Cancelled(copy.copy(trade), "refund", changed=True, refund=refund)

    def find_refund(
        self, *, out_trade_no: str | None, trade_no: str | None, out_request_no: str
    ) -> tuple[Trade, Refund | None]:
        with self._lock:
            trade = self._existing(out_trade_no, trade_no)
            refund = self._books.refunds.get((trade.out_trade_no, out_request_no))
            return copy.copy(trade), refund

    # -- time --------------------------------------------------------------------------------

    def _expire_due(self) -> None:
        """Every call looks first: a trade past its timeout is closed before anyone sees it."""
        now = self._now()
        for trade in self._books.trades.values():
            if trade.status == "WAIT_BUYER_PAY" and now >= trade.expires_at:
                self._close(trade, trade.expires_at)
                if trade.visible:
                    self._books.expired.append(copy.copy(trade))

    def take_expired(self) -> list[Trade]:
        """Trades closed by their timeout since the last call (for their TRADE_CLOSED notify);
        the simulator asks after every request and clock move."""
        with self._lock:
            self._expire_due()
            expired, self._books.expired = self._books.expired, []
            return expired

    # -- the bill ----------------------------------------------------------------------------

    def day(self, bill_date: date) -> tuple[list[Trade], list[tuple[Refund, Trade]]]:
        """Payments made and refunds made on a Beijing calendar day."""
        with self._lock:
            trades = self._books.trades
            paid = [
                copy.copy(t)
                for t in trades.values()
                if t.paid_at is not None and beijing_date(t.paid_at) == bill_date
            ]
            refunded = [
                (r, copy.copy(trades[r.out_trade_no]))
                for r in self._books.refunds.values()
                if beijing_date(r.refunded_at) == bill_date
            ]
        paid.sort(key=lambda t: t.paid_at or t.created_at)
        refunded.sort(key=lambda pair: pair[0].refunded_at)
        return paid, refunded


def _why(trade: Trade) -> Refusal:
    """Why a trade cannot be paid, declined or scanned any more."""
    if trade.paid_at is not None:
        return Refusal.TRADE_HAS_SUCCESS
    return Refusal.TRADE_HAS_CLOSE
