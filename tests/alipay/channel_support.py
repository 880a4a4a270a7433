"""What the Alipay channel tests share: the simulator on loopback with the vectors' throwaway key
pairs (public test keys: no key generation at test time), settings of an application it
accepts, and request builders.

    with running_alipay(make_sim_config()) as sim:
        channel = AlipayChannel(alipay_settings(sim.gateway_url))
        channel.prepay(prepay_request(new_no(), notify_url=...))
        sim.state.pay(out_trade_no)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from payments.alipay.config import AlipaySettings
from payments.alipay.sim_config import AlipaySimConfig
from payments.alipay.sim_state import AlipaySimState
from payments.alipay.simulator import create_alipay_simulator_app
from payments.channels import PayMethod, PrepayRequest, RefundRequest
from tests.alipay.vectors import alipay_vector
from tests.lbs.sim_helpers import serving

APP_ID = "2021000000000001"
SELLER_ID = "2088102177296610"
OTHER_APP_ID = "2021000000000002"
# Redelivery in milliseconds instead of minutes: 4 min × 0.001 = 0.24 s.
FAST_RETRY = 0.001


def app_keys() -> dict[str, str]:
    """Ours: the application key pair (we sign, the simulator verifies)."""
    return alipay_vector("app_keypair")


def alipay_keys() -> dict[str, str]:
    """Alipay's: the simulator signs answers and notifies, we verify."""
    return alipay_vector("alipay_keypair")


def make_sim_config(**overrides: Any) -> AlipaySimConfig:
    config = AlipaySimConfig(
        app_id=APP_ID,
        seller_id=SELLER_ID,
        app_public_key_pem=app_keys()["public_key_pem"],
        alipay_private_key_pem=alipay_keys()["private_key_pkcs8_pem"],
        retry_scale=FAST_RETRY,
        notify_timeout_s=2.0,
        paying_settle_s=None,
    )
    return replace(config, **overrides)


@dataclass(frozen=True)
class RunningAlipay:
    base_url: str
    state: AlipaySimState

    @property
    def gateway_url(self) -> str:
        return f"{self.base_url}/gateway.do"


@contextmanager
def running_alipay(config: AlipaySimConfig) -> Iterator[RunningAlipay]:
    app = create_alipay_simulator_app(config)
    with serving(app) as base_url:
        yield RunningAlipay(base_url=base_url, state=app.state.sim)


def alipay_settings(
    gateway_url: str = "http://127.0.0.1:9/gateway.do", **overrides: Any
) -> AlipaySettings:
    """An application the simulator accepts; the private key in PKCS#8, which the channel
    converts for the SDK."""
    values: dict[str, Any] = {
        "app_id": APP_ID,
        "app_private_key_pem": app_keys()["private_key_pkcs8_pem"],
        "alipay_public_key_pem": alipay_keys()["public_key_pem"],
        "seller_id": SELLER_ID,
        "gateway_url": gateway_url,
        "timeout_s": 5.0,
        "return_url": "http://127.0.0.1:9/pay/return",
    }
    return AlipaySettings(**(values | overrides))


def new_no(prefix: str = "T") -> str:
    return f"{prefix}{secrets.token_hex(10)}"


def prepay_request(
    out_trade_no: str,
    *,
    notify_url: str,
    amount_fen: int = 8888,
    method: PayMethod = PayMethod.native,
    expires_at: datetime | None = None,
) -> PrepayRequest:
    return PrepayRequest(
        out_trade_no=out_trade_no,
        description="优惠券订单 Coupon order",
        amount_fen=amount_fen,
        method=method,
        notify_url=notify_url,
        # Whole seconds: the wire formats carry no fraction.
        expires_at=expires_at or datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=15),
        client_ip="203.0.113.7",
        attach="order=42",
    )


def refund_request(
    out_trade_no: str, out_refund_no: str, *, refund_fen: int, total_fen: int
) -> RefundRequest:
    return RefundRequest(
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no,
        refund_fen=refund_fen,
        total_fen=total_fen,
        reason="顾客退票",
        notify_url="",
    )
