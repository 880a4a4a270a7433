"""What the simulated WeChat Pay remembers beyond its books: the simulated clock, the faults a
test switched on, and every notify delivery. Routes run on the server's event loop, tests and
the notify threads call in from other threads: every method holds a lock.

Two clocks: business times (created_at, time_end, success_time, the 5-minute close rule, prepay
expiry, bill dates) follow the simulated clock, which `/sim/clock` moves; signature timestamps
(Authorization window, Wechatpay-Timestamp) follow the real one, because the merchant's own
clock signs them and checks them.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from tenpay_adapter.sim_config import TenpaySimConfig
from tenpay_adapter.sim_ledger import Ledger, Refund, Trade, TradeState
from tenpay_adapter.sim_notify import Delivery, Notifier

# Logical endpoints, shared by both API versions: a test says "the order call times out"
# whether the client speaks v2 (/pay/unifiedorder) or v3 (/v3/pay/transactions/jsapi).
FaultEndpoint = Literal[
    "order",  # v2 unifiedorder; v3 jsapi and native
    "query",  # v2 orderquery; v3 GET transactions
    "close",
    "refund",
    "refund_query",
    "bill",  # v2 downloadbill; v3 tradebill and the file download
    "certificates",
    "payment_notify",
    "refund_notify",
    "*",
]
RequestFault = Literal["timeout", "http_500", "system_error"]
NotifyFault = Literal[
    "lost_notify",
    "duplicate_notify",
    "notify_before_query",
    "stale_notify_timestamp",  # v3 only
    "signtest_probe",  # v3 only
    "bad_notify_signature",  # v3, and v2 payment notifies (refund notifies carry no sign)
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
    # timeout: how long the caller waits (default: config.timeout_fault_s);
    # notify_before_query: how long queries keep showing `masked_state`.
    delay_s: float | None = None
    masked_state: TradeState = "NOTPAY"


class TenpaySimState:
    def __init__(self, config: TenpaySimConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._clock_offset = timedelta(0)
        self._faults: list[Fault] = []
        self._deliveries: list[Delivery] = []
        self._lost: list[str] = []
        self._bill_files: dict[str, bytes] = {}
        self.ledger = Ledger(
            now=self.now,
            prepay_ttl_s=config.prepay_ttl_s,
            max_partial_refunds=config.max_partial_refunds,
        )
        self.notifier = Notifier(self)

    def reset(self) -> None:
        """Forget trades, faults, deliveries, pending notifies and clock moves."""
        self.notifier.reset()
        self.ledger.reset()
        with self._lock:
            self._clock_offset = timedelta(0)
            self._faults.clear()
            self._deliveries.clear()
            self._lost.clear()
            self._bill_files.clear()

    def close(self) -> None:
        self.notifier.close()

    # -- clock -------------------------------------------------------------------------------

    def now(self) -> datetime:
        with self._lock:
            offset = self._clock_offset
        return datetime.now(UTC) + offset

    def advance_clock(self, seconds: float) -> None:
        with self._lock:
            self._clock_offset += timedelta(seconds=seconds)

    # -- faults ------------------------------------------------------------------------------

    def add_fault(
        self,
        endpoint: FaultEndpoint,
        mode: FaultMode,
        *,
        count: int = 1,
        delay_s: float | None = None,
        masked_state: TradeState = "NOTPAY",
    ) -> None:
        if endpoint not in get_args(FaultEndpoint) or mode not in REQUEST_FAULTS | NOTIFY_FAULTS:
            raise ValueError(f"unknown fault {mode!r} on {endpoint!r}")
        with self._lock:
            self._faults.append(Fault(endpoint, mode, count, delay_s, masked_state))

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

    def pay(self, out_trade_no: str, *, openid: str | None = None) -> Trade:
        """The buyer pays (the cashier's button, or a test): SUCCESS, then the notify."""
        masking = self.take_fault("payment_notify", frozenset({"notify_before_query"}))
        mask = None
        if masking is not None:
            mask = (masking.delay_s or DEFAULT_MASK_S, masking.masked_state)
        trade = self.ledger.pay(
            out_trade_no, openid=openid or self.config.default_payer_openid, mask=mask
        )
        self.notifier.payment(trade)
        return trade

    def decline(self, out_trade_no: str) -> Trade:
        """The payment fails (PAYERROR). WeChat notifies successful payments only (v3 sends
        TRANSACTION.SUCCESS events alone), so nothing is sent."""
        return self.ledger.decline(out_trade_no)

    def refund_accepted(self, refund: Refund) -> None:
        url = refund.request.notify_url or self.config.default_refund_notify_url
        if url:
            self.notifier.refund(refund, url)

    # -- v3 bill files ------------------------------------------------------------------------

    def keep_bill_file(self, content: bytes) -> str:
        """A download token for a v3 bill file (spec §2.4: tradebill, then a signed GET)."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._bill_files[token] = content
        return token

    def bill_file(self, token: str) -> bytes | None:
        with self._lock:
            return self._bill_files.get(token)

    # -- what tests read ---------------------------------------------------------------------

    def record_delivery(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def record_lost_notify(self, event_id: str) -> None:
        with self._lock:
            self._lost.append(event_id)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def lost_notifies(self) -> list[str]:
        """Event ids (v3) or order/refund numbers (v2) the `lost_notify` fault swallowed."""
        with self._lock:
            return list(self._lost)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "clock": (datetime.now(UTC) + self._clock_offset).isoformat(),
                "faults": [vars(fault).copy() for fault in self._faults],
                "lost_notifies": list(self._lost),
                "deliveries": [
                    {
                        "kind": d.kind,
                        "api_version": d.api_version,
                        "event_id": d.event_id,
                        "url": d.url,
                        "attempt": d.attempt,
                        "status": d.status,
                        "answered_ok": d.answered_ok,
                        "at": d.at.isoformat(),
                        "error": d.error,
                        "body": d.body.decode("utf-8", "replace"),
                    }
                    for d in self._deliveries
                ],
            }
