"""What the Alipay simulator is told at start (`AlipaySimConfig`) and the keys it derives.

The simulator plays Alipay's open platform for one application: it holds the application's
*public* key (to verify our requests, spec §3.2) and an Alipay key pair of its own (to sign
answers, notifies and return URLs); Tianfu is given the matching Alipay public key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from types import MappingProxyType
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from payments.alipay.signing import load_private_key, load_public_key, public_key_pem

# How a trade came to be, which decides which statuses are notified (spec §3.3).
Product = Literal["precreate", "create", "pay", "wap", "page"]
TradeStatus = Literal["WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED"]
PRODUCTS: tuple[Product, ...] = ("precreate", "create", "pay", "wap", "page")
TRADE_STATUSES: tuple[TradeStatus, ...] = (
    "WAIT_BUYER_PAY",
    "TRADE_SUCCESS",
    "TRADE_FINISHED",
    "TRADE_CLOSED",
)

# Redelivery after a failed notify, in seconds (spec §3.3: 4m, 10m, 10m, 1h, 2h, 6h, 15h; with
# the first attempt that is 8 in about 25 hours).
NOTIFY_RETRY_S: tuple[float, ...] = (240, 600, 600, 3600, 7200, 21600, 54000)

# spec §3.3: face-to-face (precreate, pay) and PC page pay notify TRADE_SUCCESS only; wap pay
# also TRADE_CLOSED (an unpaid trade closed, or a full refund). WAIT_BUYER_PAY never notifies.
DEFAULT_NOTIFY_STATUSES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "precreate": frozenset({"TRADE_SUCCESS"}),
        "create": frozenset({"TRADE_SUCCESS"}),
        "pay": frozenset({"TRADE_SUCCESS"}),
        "wap": frozenset({"TRADE_SUCCESS", "TRADE_CLOSED"}),
        "page": frozenset({"TRADE_SUCCESS"}),
    }
)

_APP_ID_RE = re.compile(r"[0-9]{16}")
_PID_RE = re.compile(r"2088[0-9]{12}")


@dataclass(frozen=True)
class AlipaySimConfig:
    app_id: str  # 16 digits
    seller_id: str  # the merchant's PID, 2088 + 12 digits
    app_public_key_pem: str  # verifies our requests
    alipay_private_key_pem: str  # signs answers, notifies and return URLs
    seller_email: str = "tianfu-merchant@example.com"
    merchant_name: str = "天府银行特约商户"
    # The buyer of every payment a test does not name one for.
    buyer_id: str = "2088102177846880"
    buyer_logon_id: str = "159****5620"
    notify_retry_s: tuple[float, ...] = NOTIFY_RETRY_S
    # Multiplies every redelivery delay: 0.001 turns 4 minutes into 0.24 s for tests.
    retry_scale: float = 1.0
    # How long a notify waits for the merchant's answer.
    notify_timeout_s: float = 5.0
    # Product → statuses that send a notify (spec §3.3 leaves it to the simulator).
    notify_statuses: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: dict(DEFAULT_NOTIFY_STATUSES)
    )
    # A partial refund leaves the trade TRADE_SUCCESS; some products then notify TRADE_SUCCESS
    # again with refund_fee and gmt_refund. Off by default; where on, only for products that
    # notify TRADE_SUCCESS at all.
    notify_partial_refunds: bool = False
    # The request `timestamp` (stamped by the merchant's own clock, in Beijing time) may be this
    # far from the real time either way.
    timestamp_window_s: float = 900.0
    # alipay.trade.pay: answer every bar-code payment 10003 (the buyer enters a password).
    bar_code_paying: bool = False
    # A 10003 trade succeeds by itself this many (real) seconds later; None: it waits for the
    # test (`pay`, `decline`) or for the merchant's cancel.
    paying_settle_s: float | None = 1.0
    # An unpaid trade closes this long after it was created unless the request's
    # timeout_express says otherwise (a simplification: one default for every product).
    trade_timeout_s: float = 7200.0
    # How long the `timeout` fault keeps the caller waiting after the effect took place.
    timeout_fault_s: float = 10.0
    # What an over-refund answers. spec §3.4 names ACQ.REFUND_AMT_NOT_EQUAL_TOTAL; public Q&A
    # shows ACQ.REASON_TRADE_REFUND_FEE_ERR when an out_request_no was given.
    over_refund_sub_code: str = "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    # None: every method is signed up for; else others answer 40006.
    enabled_methods: frozenset[str] | None = None
    fee_rate: Decimal = Decimal("0.006")  # the bill's 服务费

    def __post_init__(self) -> None:
        if not _APP_ID_RE.fullmatch(self.app_id):
            raise ValueError("app_id must be 16 digits")
        if not _PID_RE.fullmatch(self.seller_id) or not _PID_RE.fullmatch(self.buyer_id):
            raise ValueError("seller_id and buyer_id must be 2088 + 12 digits")
        if self.retry_scale < 0:
            raise ValueError("retry_scale must not be negative")
        unknown = set(self.notify_statuses) - {"precreate", "create", "pay", "wap", "page"}
        if unknown:
            raise ValueError(f"unknown products in notify_statuses: {sorted(unknown)}")

    @cached_property
    def app_public_key(self) -> RSAPublicKey:
        return load_public_key(self.app_public_key_pem)

    @cached_property
    def alipay_private_key(self) -> RSAPrivateKey:
        return load_private_key(self.alipay_private_key_pem)

    @cached_property
    def alipay_public_key_pem(self) -> str:
        """What Tianfu must be given as TIANFU_ALIPAY_ALIPAY_PUBLIC_KEY_PEM."""
        return public_key_pem(self.alipay_private_key.public_key())

    def notifies(self, product: str, status: str) -> bool:
        return status in self.notify_statuses.get(product, frozenset())
