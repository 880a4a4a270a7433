"""What the WeChat Pay simulator is told at start (`TenpaySimConfig`) and the keys it derives.

The simulator plays WeChat Pay for one merchant number: it holds that merchant's v2 API key and
APIv3 key as WeChat does, the merchant's *public* key (to verify our v3 `Authorization`), and a
platform key pair of its own (to sign v3 answers and notifies, spec §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from tenpay_adapter.v3_signing import certificate_serial, load_private_key, load_public_key

# Notify redelivery after a failed attempt, in seconds (spec §2.3; §1.9 for the older v2 pages).
V3_NOTIFY_RETRY_S: tuple[float, ...] = (
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600
)  # fmt: skip
V2_NOTIFY_RETRY_S: tuple[float, ...] = (15, 15, 30, 180, 1800, 1800, 1800, 1800, 3600)

# The two forms of "order number already used" (spec §1.3): what the live gateway often says,
# and what the docs say.
DuplicateOrderForm = Literal["INVALID_REQUEST", "OUT_TRADE_NO_USED"]


@dataclass(frozen=True)
class TenpaySimConfig:
    appid: str
    mchid: str
    api_key: str  # v2, 32 characters
    apiv3_key: str  # 32 characters
    merchant_public_key_pem: str  # a PUBLIC KEY or the merchant's CERTIFICATE
    merchant_serial_no: str  # what our Authorization header must name
    platform_private_key_pem: str
    platform_certificate_pem: str
    # Set: "WeChat Pay public key" mode, Wechatpay-Serial is this id instead of the cert serial.
    public_key_id: str | None = None
    # v2 closeorder refuses orders younger than this (spec §1.6: 5 minutes).
    close_min_age_s: float = 300.0
    max_partial_refunds: int = 50
    prepay_ttl_s: float = 7200.0
    v3_notify_retry_s: tuple[float, ...] = V3_NOTIFY_RETRY_S
    v2_notify_retry_s: tuple[float, ...] = V2_NOTIFY_RETRY_S
    # Multiplies every redelivery delay: 0.01 turns 15 s into 0.15 s for tests.
    retry_scale: float = 1.0
    timestamp_window_s: float = 300.0
    # How long a notify waits for the merchant's answer (WeChat: about 5 s, spec §2.3).
    notify_timeout_s: float = 5.0
    # Refunds answer PROCESSING and become SUCCESS (with their notify) this much later.
    refund_settle_s: float = 0.0
    duplicate_order_form: DuplicateOrderForm = "INVALID_REQUEST"
    # The spec §1.9/§6 quirk: an HMAC-SHA256 order's v2 notify without `sign_type`.
    v2_notify_omits_hmac_sign_type: bool = False
    # Where refund notifies go when the refund request names no notify_url (WeChat uses the
    # URL configured in the merchant platform; None: no refund notify then).
    default_refund_notify_url: str | None = None
    # How long the `timeout` fault keeps the caller waiting after the effect took place.
    timeout_fault_s: float = 10.0
    # Who pays a NATIVE order (no openid in the request) when the test names nobody.
    default_payer_openid: str = "oTianfuSimulatorPayer0000001"
    merchant_name: str = "天府银行特约商户"
    bank_type: str = "OTHERS"
    fee_rate: Decimal = field(default=Decimal("0.006"))  # "0.60%" in the bill

    def __post_init__(self) -> None:
        for name in ("api_key", "apiv3_key"):
            if len(getattr(self, name)) != 32:
                raise ValueError(f"{name} must be 32 characters")
        if self.retry_scale < 0:
            raise ValueError("retry_scale must not be negative")

    @cached_property
    def merchant_public_key(self) -> RSAPublicKey:
        return load_public_key(self.merchant_public_key_pem)

    @cached_property
    def platform_private_key(self) -> RSAPrivateKey:
        return load_private_key(self.platform_private_key_pem)

    @cached_property
    def platform_serial_no(self) -> str:
        return certificate_serial(self.platform_certificate_pem)

    @property
    def wechatpay_serial(self) -> str:
        """What `Wechatpay-Serial` says on every signed answer and notify (spec §2.2)."""
        return self.public_key_id or self.platform_serial_no
