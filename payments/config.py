"""`TIANFU_PAYMENTS_*`: how long an order may stay unpaid, what points are worth, the jobs' pace."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ClientKind = Literal["wechat", "browser", "any"]


class RouteRule(BaseModel):
    """One routing rule: when an order matches, the channel families to offer, in order (the
    first is the default, the rest the fallback order). Rules are tried top to bottom."""

    client: ClientKind = "any"
    min_amount_fen: int = Field(default=0, ge=0)
    max_amount_fen: int | None = Field(default=None, ge=1)
    merchant_ids: list[int] | None = None  # None: every merchant
    channels: list[Literal["tenpay", "alipay"]] = Field(min_length=1)


DEFAULT_ROUTES = [
    # Inside WeChat's browser only WeChat Pay can open its payment sheet.
    RouteRule(client="wechat", channels=["tenpay"]),
    # Elsewhere the payer chooses; Alipay is offered first, WeChat Pay (a QR code) after.
    RouteRule(client="browser", channels=["alipay", "tenpay"]),
]


class PaymentSettings(BaseModel):
    # An unpaid order is closed after this (the cinema's seat holds use the same figure).
    order_ttl_s: int = Field(default=900, ge=60, le=7200)
    # Bank points: what one point pays, and at most how much of an order points may pay.
    fen_per_point: int = Field(default=1, ge=1)
    max_points_permille: int = Field(default=500, ge=0, le=1000)
    # Points earned per whole yuan paid, on every order (an offer may add its own).
    base_points_per_yuan: int = Field(default=1, ge=0)
    # The WeChat template for "payment received" / "refund made" notices; none: no notices.
    notice_template_id: str | None = None
    # An attempt with no news for this long is asked about (the notify may never come).
    query_after_s: int = Field(default=30, ge=1)
    # How often `tianfu jobs run` (or the scheduler in `serve`) looks for work.
    jobs_interval_s: float = Field(default=10.0, gt=0)
    run_jobs_in_serve: bool = True
    # Retrying a refund or an outbox message: the first wait, doubled each try, capped.
    retry_base_s: int = Field(default=30, ge=1)
    retry_max_s: int = Field(default=3600, ge=1)
    max_tries: int = Field(default=12, ge=1)
    # Routing (`payments.routing`): rules as data, per-channel amount limits, the breaker.
    routes: list[RouteRule] = Field(default_factory=lambda: list(DEFAULT_ROUTES))
    channel_max_amount_fen: dict[str, int] = Field(default_factory=dict)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: int = Field(default=60, ge=1)
    # Settlement: each channel's fee, in ten-thousandths of the amount (60 = 0.60 %).
    channel_fee_bp: dict[str, int] = Field(default_factory=lambda: {"tenpay": 60, "alipay": 60})
    # Development: outside WeChat there is no payment sheet, so the checkout page sends the payer
    # to the gateway simulator's cashier (`tianfu sim tenpay`), e.g. http://127.0.0.1:8002.
    # Never set in production.
    sandbox_cashier_url: str | None = None
