"""The account-change notice a user gets in WeChat when an order is paid or refunded: an outbox
message, delivered by the jobs through the WeChat client's template send, once.

Once is kept twice over: the outbox row is leased before sending, and the template send is keyed
by `client_msg_id` (the outbox dedup key), which both our template log and WeChat deduplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants.models import Store
from payments.models import Order, OutboxMessage, Refund

_BEIJING = timedelta(hours=8)


class TemplateSender(Protocol):
    def __call__(
        self,
        session: Session,
        *,
        openid: str,
        template_id: str,
        data: Mapping[str, str],
        url: str | None,
        client_msg_id: str,
    ) -> Any: ...


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}元"


def notice_data(order: Order, store_name: str, kind: str, refund_fen: int | None) -> dict[str, str]:
    """The template's fields: what happened, where, how much, when (Beijing time)."""
    moment = order.paid_at if kind == "paid" else order.updated_at
    assert moment is not None
    when = (moment + _BEIJING).strftime("%Y-%m-%d %H:%M")
    if kind == "paid":
        title, amount = "您的付款已成功", order.payable_fen
    else:
        title, amount = "您的退款已受理成功", refund_fen or order.refunded_fen
    return {
        "first": title,
        "keyword1": store_name,
        "keyword2": _yuan(amount),
        "keyword3": order.order_no,
        "keyword4": when,
        "remark": "如有疑问请联系门店或银行客服",
    }


def payment_notice_handler(
    send: TemplateSender,
    *,
    template_id: str,
    public_base_url: str,
    warm_up: Callable[[], object] | None = None,
) -> Callable[[Session, OutboxMessage], None]:
    """`warm_up` runs before the session is touched (the WeChat client's `access_token`: a token
    refresh commits on its own connection, which must come before this transaction reads)."""

    def deliver(session: Session, message: OutboxMessage) -> None:
        if warm_up is not None:
            warm_up()
        payload = message.payload
        order = session.scalars(select(Order).where(Order.order_no == payload["order_no"])).one()
        store_name = session.scalar(select(Store.name).where(Store.id == order.store_id)) or ""
        refund_fen = None
        if payload.get("kind") == "refunded":
            refund_fen = session.scalar(
                select(Refund.amount_fen).where(Refund.out_refund_no == payload["out_refund_no"])
            )
        send(
            session,
            openid=order.openid,
            template_id=template_id,
            data=notice_data(order, store_name, str(payload.get("kind")), refund_fen),
            url=f"{public_base_url}/h5/orders/{order.order_no}",
            client_msg_id=message.dedup_key[:64],
        )

    return deliver
