"""What the payment API takes and gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from payments.channels import PayMethod
from payments.models import Order, OrderStatus

STATUS_ZH = {
    OrderStatus.created: "待支付",
    OrderStatus.paying: "支付中",
    OrderStatus.paid: "已支付",
    OrderStatus.partially_refunded: "部分退款",
    OrderStatus.refunded: "已退款",
    OrderStatus.closed: "已关闭",
}
FINAL = frozenset(
    {OrderStatus.paid, OrderStatus.partially_refunded, OrderStatus.refunded, OrderStatus.closed}
)


class OrderCreate(BaseModel):
    store_id: int = Field(ge=1)
    amount_fen: int = Field(ge=1, le=10_000_000, description="The bill before discounts, in fen")
    coupon_code: str | None = Field(default=None, max_length=20)
    points: int = Field(default=0, ge=0, le=10_000_000)
    idempotency_key: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    description: str | None = Field(default=None, max_length=120)


class QuoteRequest(BaseModel):
    store_id: int = Field(ge=1)
    amount_fen: int = Field(ge=1, le=10_000_000)
    coupon_code: str | None = Field(default=None, max_length=20)
    points: int = Field(default=0, ge=0, le=10_000_000)


class QuoteRead(BaseModel):
    total_fen: int
    discount_fen: int
    points: int
    points_fen: int
    payable_fen: int
    offer_title_zh: str | None
    explanation_zh: str


class PayRequest(BaseModel):
    # "jsapi" says the page runs inside WeChat (as does WeChat's User-Agent); without it the
    # payer is in an ordinary browser, where routing offers Alipay and WeChat Pay's QR code.
    method: PayMethod | None = None
    channel: Literal["tenpay", "alipay"] | None = Field(
        default=None, description="The payer's choice, when the routing rules offer one"
    )


class CheckoutRead(BaseModel):
    order_no: str
    out_trade_no: str
    method: PayMethod
    prepay_id: str | None
    jsapi: dict[str, str] | None
    code_url: str | None
    page_url: str | None
    # Development only: the gateway simulator's cashier, which plays WeChat's payment sheet.
    sandbox_cashier_url: str | None = None


class OrderRead(BaseModel):
    order_no: str
    status: OrderStatus
    status_zh: str
    final: bool
    store_id: int
    description: str
    total_fen: int
    discount_fen: int
    points_used: int
    points_fen: int
    payable_fen: int
    refunded_fen: int
    coupon_code: str | None
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    # The last try at paying failed (declined, or closed at the channel): the order can still be
    # paid with a new try until it expires.
    payment_failed: bool = False

    @classmethod
    def of(cls, order: Order, *, payment_failed: bool = False) -> OrderRead:
        values: dict[str, Any] = {
            name: getattr(order, name)
            for name in (
                "order_no",
                "status",
                "store_id",
                "description",
                "total_fen",
                "discount_fen",
                "points_used",
                "points_fen",
                "payable_fen",
                "refunded_fen",
                "coupon_code",
                "created_at",
                "expires_at",
                "paid_at",
            )
        }
        return cls(
            **values,
            status_zh=STATUS_ZH[order.status],
            final=order.status in FINAL,
            payment_failed=payment_failed and order.status is OrderStatus.paying,
        )
