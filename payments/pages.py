"""The H5 checkout inside WeChat: pay a store (amount, coupon, points, a live quote, 去支付), the
result page that follows the order until it is final, and my orders. Every page needs the
WeChat session (lbs.h5_session); the pages' scripts call the JSON API in payments.api.

Templates and scripts as in coupons/pages.py: a Jinja environment of our own over
payments/templates first and lbs/templates second, so these pages extend lbs's "h5/base.html"
without touching lbs's environment; inline scripts and styles carry a nonce made per response.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from coupons import claims, points
from coupons.api import expiry_zh, shanghai_text, shown_status
from coupons.codes import format_code, normalise_code
from coupons.models import ClaimStatus
from coupons.pages import render_with_nonce
from lbs.h5_session import WeChatUser, message_page, static_url
from merchants.models import Merchant, MerchantStatus, Store, StoreStatus
from payments.api import MY_ORDERS_LIMIT
from payments.models import Order, OrderStatus
from payments.schemas import FINAL, STATUS_ZH
from tianfu.deps import DbSession
from tianfu.orm import utcnow

_HERE = Path(__file__).parent
_LBS_TEMPLATES = Path(__file__).parents[1] / "lbs" / "templates"

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(_HERE / "templates"), jinja2.FileSystemLoader(_LBS_TEMPLATES)]
        ),
        # On for every template whatever its name: store names come from merchants.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
templates.env.globals["static_url"] = static_url

# The result page asks for news this often, and stops after this long (the jobs settle the
# order anyway; "my orders" shows the outcome).
POLL_EVERY_MS = 1500
POLL_GIVE_UP_MS = 120_000
ORDERS_API = "/api/v1/orders"
RESULT_PAGE = "/h5/orders/"
# The result page's headline; "paying" also stands for any status not listed.
HEADLINE_ZH = {
    OrderStatus.created.value: "等待支付",
    OrderStatus.paying.value: "正在确认支付结果",
    OrderStatus.paid.value: "支付成功",
    OrderStatus.partially_refunded.value: "已部分退款",
    OrderStatus.refunded.value: "已退款",
    OrderStatus.closed.value: "订单已关闭",
}

router = APIRouter(prefix="/h5", tags=["h5"], include_in_schema=False)

# Orders of a kind whose goods have a page of their own (cinema tickets) are shown there: the
# cashier returns every payer to /h5/orders/{no}, which sends them on. Kind -> a path with
# "{order_no}"; filled in by the app factory, like payments' order hooks.
_ORDER_PAGES: dict[str, str] = {}


def register_order_page(kind: str, path: str) -> None:
    if "{order_no}" not in path or not path.startswith("/"):
        raise ValueError("an order page is a local path containing {order_no}")
    _ORDER_PAGES[kind] = path


def yuan(fen: int) -> str:
    """Fen as yuan with two decimals, by integer arithmetic: 1230 -> "12.30"."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


templates.env.filters["yuan"] = yuan


def _render(request: Request, name: str, context: dict[str, Any]) -> Response:
    return render_with_nonce(templates, request, name, context)


def store_and_merchant(session: Session, store_id: int) -> tuple[Store, Merchant] | None:
    """A store with its merchant, or None when there is no such store."""
    row = session.execute(
        select(Store, Merchant)
        .join(Merchant, Merchant.id == Store.merchant_id)
        .where(Store.id == store_id)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def usable_coupons(session: Session, openid: str, merchant_id: int) -> list[dict[str, str]]:
    """The user's coupons of this store's merchant that can still be used now. Whether one
    applies to this amount (a threshold, a store list) is the quote's to say."""
    now = utcnow()
    return [
        {
            "code": mine.claim.code,
            "code_shown": format_code(mine.claim.code),
            "title": mine.offer_title_zh,
            "expires_zh": expiry_zh(mine.claim.expires_at),
        }
        for mine in claims.user_claims(session, openid)
        if mine.merchant_id == merchant_id and shown_status(mine.claim, now) is ClaimStatus.claimed
    ]


def _order_view(order: Order, store_name: str) -> dict[str, Any]:
    return {
        "order_no": order.order_no,
        "store_id": order.store_id,
        "store_name": store_name,
        "status": order.status.value,
        "status_zh": STATUS_ZH[order.status],
        "headline_zh": HEADLINE_ZH[order.status.value],
        "final": order.status in FINAL,
        "paid": order.status is OrderStatus.paid,
        "total_fen": order.total_fen,
        "discount_fen": order.discount_fen,
        "points_used": order.points_used,
        "points_fen": order.points_fen,
        "payable_fen": order.payable_fen,
        "created_zh": shanghai_text(order.created_at),
    }


def _payable_store(
    request: Request, session: Session, store_id: int
) -> tuple[Store, Merchant] | Response:
    """The store and its merchant, or the page saying why it cannot be paid here."""
    found = store_and_merchant(session, store_id)
    if found is None:
        return message_page(request, status_code=404, title="门店不存在", message="该门店不存在。")
    store, merchant = found
    if merchant.status is not MerchantStatus.approved or store.status is not StoreStatus.open:
        return message_page(
            request, status_code=409, title="暂不支持付款", message="该门店暂不支持在线付款。"
        )
    if getattr(request.app.state, "payments", None) is None:
        return message_page(
            request, status_code=503, title="暂未开通", message="在线支付暂未开通，请到收银台付款。"
        )
    return store, merchant


@router.get("/pay/{store_id}", response_class=HTMLResponse)
def pay_page(
    request: Request, session: DbSession, openid: WeChatUser, store_id: int, coupon: str = ""
) -> Response:
    found = _payable_store(request, session, store_id)
    if isinstance(found, Response):
        return found
    store, merchant = found
    coupons = usable_coupons(session, openid, merchant.id)
    # `?coupon=` from a link (a coupon page, a message): chosen if it can be used here.
    wanted = normalise_code(coupon) if coupon else ""
    chosen = wanted if any(c["code"] == wanted for c in coupons) else ""
    context = {
        "store": store,
        "merchant_name": merchant.name,
        "coupons": coupons,
        "chosen": chosen,
        "coupon_note": "该券在本店不可用或已使用" if wanted and not chosen else "",
        "points_balance": points.balance(session, openid),
        "config": {
            "storeId": store.id,
            "quoteUrl": f"{ORDERS_API}/quote",
            "ordersUrl": ORDERS_API,
            "resultUrl": RESULT_PAGE,
        },
    }
    return _render(request, "h5/pay.html", context)


@router.get("/orders/{order_no}", response_class=HTMLResponse)
def order_page(request: Request, session: DbSession, openid: WeChatUser, order_no: str) -> Response:
    row = session.execute(
        select(Order, Store.name)
        .join(Store, Store.id == Order.store_id)
        # Someone else's order is "not found", as in the API: a stranger learns nothing of it.
        .where(Order.order_no == order_no, Order.openid == openid)
    ).one_or_none()
    if row is None:
        return message_page(
            request, status_code=404, title="订单不存在", message="找不到这笔订单。"
        )
    own_page = _ORDER_PAGES.get(row[0].kind)
    if own_page is not None:
        return RedirectResponse(own_page.format(order_no=order_no), status_code=303)
    order = _order_view(row[0], row[1])
    config = {
        "orderNo": order_no,
        "orderUrl": f"{ORDERS_API}/{order_no}",
        "ordersUrl": ORDERS_API,
        "resultUrl": RESULT_PAGE,
        "final": order["final"],
        "headlines": HEADLINE_ZH,
        "pollEveryMs": POLL_EVERY_MS,
        "giveUpMs": POLL_GIVE_UP_MS,
    }
    return _render(request, "h5/order_result.html", {"order": order, "config": config})


@router.get("/me/orders", response_class=HTMLResponse)
def my_orders_page(request: Request, session: DbSession, openid: WeChatUser) -> Response:
    rows = session.execute(
        select(Order, Store.name)
        .join(Store, Store.id == Order.store_id)
        .where(Order.openid == openid)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(MY_ORDERS_LIMIT)
    ).all()
    orders = [_order_view(order, store_name) for order, store_name in rows]
    return _render(request, "h5/my_orders.html", {"orders": orders})
