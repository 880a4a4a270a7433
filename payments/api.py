"""The payment API the H5 checkout calls, and the channels' notify endpoints. Thin: the rules are
in payments.service, the channel calls in payments.flows (run in the thread pool: they block)."""

from __future__ import annotations

from contextlib import suppress
from datetime import timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from coupons.api import ApiUser
from payments import service
from payments.channels import ChannelError, PayMethod
from payments.flows import Payments
from payments.models import AttemptStatus, Order, OrderStatus
from payments.schemas import (
    CheckoutRead,
    OrderCreate,
    OrderRead,
    PayRequest,
    QuoteRead,
    QuoteRequest,
)
from tianfu.deps import DbSession
from tianfu.errors import TianfuError

router = APIRouter(prefix="/api/v1", tags=["payments"])
notify_router = APIRouter(tags=["payment notifies"], include_in_schema=False)

# A result page polling an order that is still paying asks the channel at most this often.
POLL_QUERY_EVERY = timedelta(seconds=3)
MY_ORDERS_LIMIT = 50
MAX_NOTIFY_BYTES = 64 * 1024


def _payments(request: Request) -> Payments:
    payments: Payments | None = request.app.state.payments
    if payments is None:
        raise TianfuError("payments are not configured", status_code=503, code="payments_off")
    return payments


@router.post("/orders/quote", response_model=QuoteRead)
def quote_order(
    body: QuoteRequest, openid: ApiUser, request: Request, session: DbSession
) -> QuoteRead:
    payments = _payments(request)
    priced = service.quote(
        session,
        service.OrderRequest(
            openid=openid,
            store_id=body.store_id,
            total_fen=body.amount_fen,
            idempotency_key="quote",
            coupon_code=body.coupon_code,
            points=body.points,
        ),
        settings=payments.settings,
        now=payments.clock(),
    )
    return QuoteRead(
        total_fen=priced.total_fen,
        discount_fen=priced.discount_fen,
        points=priced.points,
        points_fen=priced.points_fen,
        payable_fen=priced.payable_fen,
        offer_title_zh=priced.offer_title_zh,
        explanation_zh=priced.explanation_zh,
    )


@router.post("/orders", response_model=OrderRead, status_code=201)
def create_order(body: OrderCreate, openid: ApiUser, request: Request) -> OrderRead:
    order = _payments(request).create_order(
        service.OrderRequest(
            openid=openid,
            store_id=body.store_id,
            total_fen=body.amount_fen,
            idempotency_key=body.idempotency_key,
            coupon_code=body.coupon_code,
            points=body.points,
            description=body.description,
        )
    )
    return OrderRead.of(order)


@router.get("/orders/{order_no}", response_model=OrderRead)
def read_order(order_no: str, openid: ApiUser, request: Request) -> OrderRead:
    """The order as it stands. While it is paying, the channel is asked (at most every few
    seconds) so the result page turns to paid even when the notify is late or lost."""
    payments = _payments(request)
    with payments.session_factory() as session:
        order = service.get_order(session, order_no, openid=openid)
        quiet = [
            attempt.out_trade_no
            for attempt in service.open_attempts(session, order.id)
            if attempt.status in (AttemptStatus.prepaid, AttemptStatus.unknown)
            and (attempt.last_queried_at or attempt.updated_at)
            <= payments.clock() - POLL_QUERY_EVERY
        ]
    if order.status is OrderStatus.paying and quiet:
        for out_trade_no in quiet:
            # If the channel cannot say, the next poll asks again.
            with suppress(ChannelError):
                payments.settle(out_trade_no)
    with payments.session_factory() as session:
        order = service.get_order(session, order_no, openid=openid)
        attempts = service.attempts_of(session, order.id)
    failed = bool(attempts) and attempts[-1].status in (AttemptStatus.failed, AttemptStatus.closed)
    return OrderRead.of(order, payment_failed=failed)


@router.get("/me/orders", response_model=list[OrderRead])
def my_orders(openid: ApiUser, session: DbSession) -> list[OrderRead]:
    orders = session.scalars(
        select(Order)
        .where(Order.openid == openid)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(MY_ORDERS_LIMIT)
    )
    return [OrderRead.of(order) for order in orders]


@router.post("/orders/{order_no}/pay", response_model=CheckoutRead)
def pay_order(order_no: str, body: PayRequest, openid: ApiUser, request: Request) -> CheckoutRead:
    payments = _payments(request)
    client_ip = request.client.host if request.client else "127.0.0.1"
    in_wechat = "MicroMessenger" in request.headers.get("user-agent", "")
    result_url = f"{str(request.base_url).rstrip('/')}/h5/orders/{order_no}"
    checkout = payments.pay(
        order_no=order_no,
        openid=openid,
        client_ip=client_ip,
        client="wechat" if in_wechat or body.method is PayMethod.jsapi else "browser",
        preferred=body.channel,
        return_url=result_url,
    )
    cashier = None
    sandbox = payments.settings.sandbox_cashier_url
    if sandbox and (checkout.prepay_id or checkout.code_url) and not checkout.page_url:
        ticket = (
            {"prepay_id": checkout.prepay_id}
            if checkout.prepay_id
            else {"code_url": checkout.code_url or ""}
        )
        query = urlencode({**ticket, "redirect": result_url})
        cashier = f"{sandbox.rstrip('/')}/sim/cashier?{query}"
    return CheckoutRead(
        order_no=checkout.order_no,
        out_trade_no=checkout.out_trade_no,
        method=checkout.method,
        prepay_id=checkout.prepay_id,
        jsapi=dict(checkout.jsapi_params) if checkout.jsapi_params else None,
        code_url=checkout.code_url,
        page_url=checkout.page_url,
        sandbox_cashier_url=cashier,
    )


async def _notify(channel_name: str, request: Request) -> Response:
    payments = _payments(request)
    body = await request.body()
    if len(body) > MAX_NOTIFY_BYTES:
        return Response("too large", status_code=413, media_type="text/plain")
    headers = {key.lower(): value for key, value in request.headers.items()}
    answer = await run_in_threadpool(payments.handle_notify, channel_name, headers, body)
    return Response(
        content=answer.body,
        status_code=answer.status_code,
        media_type=answer.media_type,
        headers=dict(answer.headers),
    )


@notify_router.post("/payments/notify/tenpay/v3")
async def tenpay_v3_notify(request: Request) -> Response:
    return await _notify("tenpay_v3", request)


@notify_router.post("/payments/notify/tenpay/v2")
async def tenpay_v2_notify(request: Request) -> Response:
    return await _notify("tenpay_v2", request)


@notify_router.post("/payments/notify/alipay")
async def alipay_notify(request: Request) -> Response:
    return await _notify("alipay", request)
