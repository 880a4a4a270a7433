"""The shapes of the simulated Alipay's books: a trade as requested and as it stands, a refund,
the outcome of a cancel, and the ACQ.* refusals the ledger raises (the gateway renders them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from payments.alipay.sim_config import Product, TradeStatus

CancelAction = Literal["close", "refund"]


class Refusal(StrEnum):
    TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
    TRADE_HAS_SUCCESS = "ACQ.TRADE_HAS_SUCCESS"
    TRADE_HAS_CLOSE = "ACQ.TRADE_HAS_CLOSE"
    TRADE_HAS_FINISHED = "ACQ.TRADE_HAS_FINISHED"
    TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"
    CONTEXT_INCONSISTENT = "ACQ.CONTEXT_INCONSISTENT"
    OVER_REFUND = "over_refund"  # the config says which ACQ code


class TradeRefusedError(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


@dataclass(frozen=True)
class TradeRequest:
    product: Product
    out_trade_no: str
    amount_fen: int
    subject: str
    notify_url: str = ""
    return_url: str = ""
    body: str = ""
    passback_params: str = ""
    timeout_s: float | None = None  # timeout_express; None: the config's default
    time_expire: datetime | None = None  # an absolute deadline
    buyer_id: str | None = None  # create: the payer is known up front

    @property
    def fingerprint(self) -> tuple[int, str]:
        """What a repeat of the same out_trade_no must not change."""
        return self.amount_fen, self.subject


@dataclass
class Trade:
    request: TradeRequest
    created_at: datetime  # the request; gmt_create is the scan for a precreate
    expires_at: datetime
    status: TradeStatus = "WAIT_BUYER_PAY"
    scanned: bool = True
    qr_code: str | None = None
    trade_no: str = ""
    gmt_create: datetime | None = None
    buyer_id: str | None = None
    buyer_logon_id: str | None = None
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    refunded_fen: int = 0
    refunded_at: datetime | None = None
    # The `notify_before_query` fault: queries show `masked_status` until this monotonic time.
    masked_until: float = 0.0
    masked_status: TradeStatus = "WAIT_BUYER_PAY"

    @property
    def out_trade_no(self) -> str:
        return self.request.out_trade_no

    @property
    def amount_fen(self) -> int:
        return self.request.amount_fen

    @property
    def product(self) -> Product:
        return self.request.product

    @property
    def visible(self) -> bool:
        return self.scanned

    def shown_status(self) -> TradeStatus:
        return self.masked_status if time.monotonic() < self.masked_until else self.status


@dataclass(frozen=True)
class Refund:
    out_trade_no: str
    trade_no: str
    out_request_no: str
    amount_fen: int
    reason: str
    refunded_at: datetime
    refunded_total_fen: int  # the trade's refunds so far, this one included (refund_fee)
    closes_trade: bool  # the trade is fully refunded by it


@dataclass(frozen=True)
class Cancelled:
    trade: Trade
    action: CancelAction
    changed: bool  # False: a repeat, nothing happened this time
    refund: Refund | None = None
