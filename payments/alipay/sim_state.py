"""What the simulated Alipay remembers beyond its books: the simulated clock, the faults a test
switched on, bill files handed out, and every notify delivery; and the buyer's actions, each
followed by the notify its product calls for (spec §3.3). Routes run on the server's event
loop, tests and the notify threads call in from other threads: every method holds a lock.

Two clocks, as in the WeChat Pay simulator: business times (gmt_*, trade timeouts, bill dates)
follow the simulated clock, which `/sim/clock` moves; the request `timestamp` window follows the
real one, because the merchant's own clock stamps it.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from payments.alipay.sim_config import AlipaySimConfig
from payments.alipay.sim_ledger import Ledger
from payments.alipay.sim_notify import Delivery, Notifier, NotifyEvent
from payments.alipay.sim_trades import Refund, Trade, TradeRefusedError

# Logical endpoints: one per gateway method, plus the notifies.
FaultEndpoint = Literal[
    "precreate",  # alipay.trade.precreate
    "create",  # alipay.trade.create
    "pay",  # alipay.trade.pay (bar code)
    "wap",  # alipay.trade.wap.pay
    "page",  # alipay.trade.page.pay
    "query",
    "close",
    "cancel",
    "refund",
    "refund_query",  # alipay.trade.fastpay.refund.query
    "bill",  # alipay.data.dataservice.bill.downloadurl.query
    "notify",
    "*",
]
RequestFault = Literal[
    "timeout",  # the effect happens, the answer is held back `delay_s`
    "http_500",  # a bare HTTP 500, no effect
    "system_error",  # 40004 ACQ.SYSTEM_ERROR, signed, no effect
    "service_unavailable",  # 20000 isp.unknow-error, signed, no effect
    "unsigned_response",  # the effect happens, the answer carries no sign
    "bad_response_signature",  # the effect happens, the sign does not verify
    "paying_10003",  # trade.pay: 10003 and WAIT_BUYER_PAY; query: a 10003 answer
]
NotifyFault = Literal[
    "lost_notify",
    "duplicate_notify",
    "notify_before_query",  # queries say WAIT_BUYER_PAY for `delay_s` after the notify
    "bad_notify_signature",  # one attempt badly signed; the redelivery is good
]
FaultMode = Literal[RequestFault, NotifyFault]
REQUEST_FAULTS: frozenset[str] = frozenset(get_args(RequestFault))
NOTIFY_FAULTS: frozenset[str] = frozenset(get_args(NotifyFault))
DEFAULT_MASK_S = 2.0


@dataclass
class Fault:
    endpoint: str
    mode: str
    remaining: int
    # timeout: how long the caller waits (default config.timeout_fault_s);
    # notify_before_query: how long queries keep saying WAIT_BUYER_PAY (default 2 s).
    delay_s: float | None = None


class AlipaySimState:
    def __init__(self, config: AlipaySimConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._clock_offset = timedelta(0)
        self._faults: list[Fault] = []
        self._deliveries: list[Delivery] = []
        self._lost: list[str] = []
        self._bill_files: dict[str, tuple[str, str]] = {}
        self._generation = 0
        self._stop = threading.Event()
        self.ledger = Ledger(now=self.now, default_timeout_s=config.trade_timeout_s)
        self.notifier = Notifier(self)

    def reset(self) -> None:
        """Forget trades, faults, deliveries, pending notifies and clock moves."""
        self.notifier.reset()
        self.ledger.reset()
        with self._lock:
            self._generation += 1
            self._clock_offset = timedelta(0)
            self._faults.clear()
            self._deliveries.clear()
            self._lost.clear()
            self._bill_files.clear()

    def close(self) -> None:
        self._stop.set()
        self.notifier.close()

    # -- clock -------------------------------------------------------------------------------

    def now(self) -> datetime:
        with self._lock:
            offset = self._clock_offset
        return datetime.now(UTC) + offset

    def advance_clock(self, seconds: float) -> None:
        with self._lock:
            self._clock_offset += timedelta(seconds=seconds)
        self.sweep()

    def sweep(self) -> None:
        """TRADE_CLOSED notifies for trades their timeout closed (where the product says so).
        Called before every gateway call, buyer action and cashier page, and after a clock
        move: the ledger closes such trades whenever it looks, this sends what it owes."""
        for trade in self.ledger.take_expired():
            self._notify(trade, "TRADE_CLOSED")

    # -- faults ------------------------------------------------------------------------------

    def add_fault(
        self,
        endpoint: FaultEndpoint,
        mode: FaultMode,
        *,
        count: int = 1,
        delay_s: float | None = None,
    ) -> None:
        if endpoint not in get_args(FaultEndpoint) or mode not in REQUEST_FAULTS | NOTIFY_FAULTS:
            raise ValueError(f"unknown fault {mode!r} on {endpoint!r}")
        with self._lock:
            self._faults.append(Fault(endpoint, mode, count, delay_s))

    def take_fault(self, endpoint: str, modes: frozenset[str]) -> Fault | None:
        """The first matching fault, one use of it spent."""
        with self._lock:
            for fault in self._faults:
                if fault.endpoint in (endpoint, "*") and fault.mode in modes:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def timeout_s(self, fault: Fault) -> float:
        return fault.delay_s if fault.delay_s is not None else self.config.timeout_fault_s

    # -- the buyer ---------------------------------------------------------------------------

    def scan(self, out_trade_no: str, *, buyer_id: str | None = None) -> Trade:
        """The buyer scans a precreate QR code: the trade exists, WAIT_BUYER_PAY (no notify)."""
        self.sweep()
        config = self.config
        return self.ledger.scan(
            out_trade_no, buyer_id=buyer_id or config.buyer_id, logon_id=config.buyer_logon_id
        )

    def pay(self, out_trade_no: str, *, buyer_id: str | None = None) -> Trade:
        """The buyer pays (the cashier's button, a test, or a 10003 trade settling):
        TRADE_SUCCESS, then its notify."""
        self.sweep()
        masking = self.take_fault("notify", frozenset({"notify_before_query"}))
        mask_s = None if masking is None else (masking.delay_s or DEFAULT_MASK_S)
        trade = self.ledger.pay(
            out_trade_no,
            buyer_id=buyer_id or self.config.buyer_id,
            logon_id=self.config.buyer_logon_id,
            mask_s=mask_s,
        )
        self._notify(trade, "TRADE_SUCCESS")
        return trade

    def decline(self, out_trade_no: str) -> Trade:
        """The buyer gives up: TRADE_CLOSED (notified where the product says so)."""
        self.sweep()
        config = self.config
        trade = self.ledger.decline(
            out_trade_no, buyer_id=config.buyer_id, logon_id=config.buyer_logon_id
        )
        self._notify(trade, "TRADE_CLOSED")
        return trade

    def finish(self, out_trade_no: str) -> Trade:
        """The refund window passes: TRADE_FINISHED (notified where the product says so)."""
        self.sweep()
        trade = self.ledger.finish(out_trade_no)
        self._notify(trade, "TRADE_FINISHED")
        return trade

    def settle_paying_later(self, out_trade_no: str) -> None:
        """A 10003 trade: the buyer enters the password `paying_settle_s` later."""
        delay = self.config.paying_settle_s
        if delay is not None:
            self._later(delay, lambda: self._settle_paying(out_trade_no))

    def _settle_paying(self, out_trade_no: str) -> None:
        # Cancelled, closed or paid by a test in the meantime: nothing to settle.
        with contextlib.suppress(TradeRefusedError):
            self.pay(out_trade_no)

    def _later(self, delay_s: float, action: Callable[[], None]) -> None:
        with self._lock:
            generation = self._generation

        def run() -> None:
            if self._stop.wait(delay_s):
                return
            with self._lock:
                current = generation == self._generation
            if current:
                action()

        threading.Thread(target=run, name="alipay-sim-later", daemon=True).start()

    # -- what the merchant's calls cause -----------------------------------------------------

    def closed(self, trade: Trade) -> None:
        self._notify(trade, "TRADE_CLOSED")

    def refunded(self, refund: Refund, trade: Trade) -> None:
        """A full refund closes the trade (TRADE_CLOSED with refund_fee and gmt_refund); a
        partial one notifies TRADE_SUCCESS again only when the config asks."""
        if refund.closes_trade:
            self._notify(trade, "TRADE_CLOSED", refund=refund)
        elif self.config.notify_partial_refunds:
            self._notify(trade, "TRADE_SUCCESS", refund=refund)

    def _notify(self, trade: Trade, status: str, *, refund: Refund | None = None) -> None:
        if trade.request.notify_url and self.config.notifies(trade.product, status):
            self.notifier.send(NotifyEvent(trade=trade, status=status, refund=refund))

    # -- bill files --------------------------------------------------------------------------

    def keep_bill_file(self, name: str, content: str) -> str:
        """A download token for a bill file, as it was when its URL was asked for."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._bill_files[token] = (name, content)
        return token

    def bill_file(self, token: str) -> tuple[str, str] | None:
        with self._lock:
            return self._bill_files.get(token)

    # -- what tests read ---------------------------------------------------------------------

    def record_delivery(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def record_lost_notify(self, notify_id: str) -> None:
        with self._lock:
            self._lost.append(notify_id)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def lost_notifies(self) -> list[str]:
        """notify_ids the `lost_notify` fault swallowed."""
        with self._lock:
            return list(self._lost)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "clock": (datetime.now(UTC) + self._clock_offset).isoformat(),
                "faults": [vars(fault).copy() for fault in self._faults],
                "lost_notifies": list(self._lost),
                "deliveries": [delivery.as_json() for delivery in self._deliveries],
            }
