"""Alipay end to end, and routing between channels, over loopback: the real app served by uvicorn
with both WeChat Pay (API v3) and Alipay configured, each channel's gateway simulator, committed
data on each backend. Every test ends by asserting what the database holds."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from coupons import claims, points
from coupons.models import Claim, ClaimStatus, PointsEntry
from coupons.rules import OfferKind
from payments import service
from payments.alipay.sim_state import AlipaySimState
from payments.channels import PayMethod
from payments.config import PaymentSettings
from payments.errors import ChannelUnavailableError
from payments.flows import Channels, Payments
from payments.jobs import run_due
from payments.models import (
    AttemptStatus,
    ChannelHealth,
    Order,
    OrderStatus,
    PaymentAttempt,
    PaymentEvent,
    RefundStatus,
)
from tenpay_adapter.client import build_tenpay_channels
from tenpay_adapter.config import TenpaySettings
from tenpay_adapter.sim_state import TenpaySimState
from tests.alipay.channel_support import alipay_settings, make_sim_config, running_alipay
from tests.builders import make_merchant, make_offer, make_store
from tests.conftest import PostgresDatabases, new_database_url
from tests.http import free_port
from tests.lbs.live_app import base_url_of, loopback_socket, serving_until_ready
from tests.tenpay.sim_support import (
    APIV3_KEY,
    APPID,
    MCHID,
    make_config,
    merchant_keys,
    platform_keys,
    running_tenpay,
)
from tianfu import migrate
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory
from tianfu.orm import utcnow
from tianfu.settings import TianfuSettings

SECRET_KEY = "alipay-flow-tests-secret-key-0123456789abcdef"


@dataclass
class Stack:
    app_url: str
    payments: Payments
    alipay: AlipaySimState
    tenpay: TenpaySimState
    tenpay_url: str
    factory: sessionmaker[Session]
    store_id: int
    offer_id: int


def _tenpay(base_url: str, timeout_s: float = 1.0) -> TenpaySettings:
    return TenpaySettings(
        mchid=MCHID,
        appid=APPID,
        apiv3_key=APIV3_KEY,
        merchant_private_key_pem=merchant_keys().private_key_pem,
        merchant_serial_no=merchant_keys().serial_no,
        platform_certificate_pem=platform_keys().certificate_pem,
        base_url=base_url,
        timeout_s=timeout_s,
    )


@pytest.fixture(scope="module")
def stack(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Iterator[Stack]:
    url = new_database_url(backend, tmp_path_factory.mktemp("alipay-flows"), postgres_databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        merchant = make_merchant(session)
        store = make_store(session, merchant=merchant)
        offer = make_offer(
            session,
            merchant=merchant,
            kind=OfferKind.threshold_off,
            title_zh="满100减20",
            amount_off_fen=2000,
            threshold_fen=10000,
            total_stock=1000,
            per_user_limit=100,
        )
        store_id, offer_id = store.id, offer.id
    with (
        running_alipay(make_sim_config()) as alipay,
        running_tenpay(make_config()) as tenpay,
        loopback_socket() as sock,
    ):
        settings = TianfuSettings(
            database_url=url,
            public_base_url=base_url_of(sock),
            secret_key=SECRET_KEY,
            tenpay=_tenpay(tenpay.base_url),
            alipay=alipay_settings(alipay.gateway_url),
            payments=PaymentSettings(run_jobs_in_serve=False, query_after_s=1),
        )
        app = create_app(settings)
        with serving_until_ready(app, sock) as app_url:
            yield Stack(
                app_url=app_url,
                payments=app.state.payments,
                alipay=alipay.state,
                tenpay=tenpay.state,
                tenpay_url=tenpay.base_url,
                factory=factory,
                store_id=store_id,
                offer_id=offer_id,
            )
    engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_simulators(stack: Stack) -> Iterator[None]:
    yield
    stack.alipay.reset()
    stack.tenpay.reset()


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.02)


def _user() -> str:
    return f"oAli{secrets.token_hex(12)}"


def _order(stack: Stack, openid: str, *, coupon: str | None = None, points_used: int = 0) -> Order:
    return stack.payments.create_order(
        service.OrderRequest(
            openid=openid,
            store_id=stack.store_id,
            total_fen=15000,
            idempotency_key=secrets.token_hex(8),
            coupon_code=coupon,
            points=points_used,
        )
    )


def _pay(
    stack: Stack, order: Order, *, payments: Payments | None = None, preferred: str | None = None
) -> str:
    checkout = (payments or stack.payments).pay(
        order_no=order.order_no,
        openid=order.openid,
        client_ip="127.0.0.1",
        client="browser",
        preferred=preferred,
        return_url=f"{stack.app_url}/h5/orders/{order.order_no}",
    )
    if checkout.page_url is not None:
        _open(checkout.page_url)
    return checkout.out_trade_no


def _open(page_url: str) -> None:
    """The payer's browser goes to Alipay's page: that is when a page-pay trade comes to be."""
    answer = httpx.get(page_url, timeout=5)
    assert answer.status_code == 200, answer.text


def _status(stack: Stack, order_no: str) -> OrderStatus:
    with stack.factory() as session:
        return service.get_order(session, order_no).status


def _attempt(stack: Stack, out_trade_no: str) -> PaymentAttempt:
    with stack.factory() as session:
        return service.get_attempt(session, out_trade_no)


def _count(stack: Stack, model: Any, *where: Any) -> int:
    with stack.factory() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _paid(stack: Stack, order_no: str) -> None:
    wait_for(lambda: _status(stack, order_no) is OrderStatus.paid, f"{order_no} paid")


def _later(stack: Stack, channels: Channels | None = None, *, shift_s: float = 5) -> Payments:
    return Payments(
        session_factory=stack.factory,
        channels=channels or stack.payments.channels,
        settings=stack.payments.settings,
        notify_base_url=stack.app_url,
        clock=lambda: utcnow() + timedelta(seconds=shift_s),
    )


# -- Alipay -----------------------------------------------------------------------------------


def test_outside_wechat_alipay_is_offered_first_and_pays_once(stack: Stack) -> None:
    openid = _user()
    order = _order(stack, openid)
    checkout = stack.payments.pay(
        order_no=order.order_no,
        openid=openid,
        client_ip="127.0.0.1",
        client="browser",
        return_url=f"{stack.app_url}/h5/orders/{order.order_no}",
    )
    assert checkout.method is PayMethod.page
    assert checkout.page_url is not None
    assert "/gateway.do?" in checkout.page_url
    _open(checkout.page_url)
    assert _attempt(stack, checkout.out_trade_no).channel == "alipay"
    stack.alipay.pay(checkout.out_trade_no)
    _paid(stack, order.order_no)
    attempt = _attempt(stack, checkout.out_trade_no)
    assert attempt.status is AttemptStatus.paid
    assert attempt.channel_trade_no
    assert _count(stack, PaymentEvent, PaymentEvent.reference == checkout.out_trade_no) == 1


def test_a_declined_alipay_payment_is_failed_and_the_order_stays_payable(stack: Stack) -> None:
    openid = _user()
    order = _order(stack, openid)
    out_trade_no = _pay(stack, order)
    stack.alipay.decline(out_trade_no)
    applied = stack.payments.settle(out_trade_no)
    assert applied.attempt_status in (AttemptStatus.closed, AttemptStatus.failed)
    assert _status(stack, order.order_no) is OrderStatus.paying
    again = _pay(stack, order)
    assert again == f"{order.order_no}P2"


def test_paying_10003_then_success(stack: Stack) -> None:
    openid = _user()
    order = _order(stack, openid)
    out_trade_no = _pay(stack, order)
    stack.alipay.add_fault("notify", "lost_notify")
    stack.alipay.pay(out_trade_no)
    stack.alipay.add_fault("query", "paying_10003")
    waiting = stack.payments.settle(out_trade_no)
    assert waiting.attempt_status is AttemptStatus.prepaid  # 10003 is not paid, nor failed
    assert _status(stack, order.order_no) is OrderStatus.paying
    assert stack.payments.settle(out_trade_no).attempt_status is AttemptStatus.paid
    assert _status(stack, order.order_no) is OrderStatus.paid


def test_duplicate_and_badly_signed_alipay_notifies(stack: Stack) -> None:
    openid = _user()
    order = _order(stack, openid)
    out_trade_no = _pay(stack, order)
    stack.alipay.add_fault("notify", "bad_notify_signature")
    stack.alipay.add_fault("notify", "duplicate_notify")
    stack.alipay.pay(out_trade_no)
    _paid(stack, order.order_no)
    wait_for(lambda: sum(d.answered_ok for d in stack.alipay.deliveries) >= 2, "answered")
    refused = [d for d in stack.alipay.deliveries if not d.answered_ok]
    assert refused, "the badly signed notify must be refused"
    assert all(d.answer != "success" for d in refused)
    assert _count(stack, PaymentEvent, PaymentEvent.reference == out_trade_no) == 1
    earned = _count(stack, PointsEntry, PointsEntry.source_key == f"order:{order.order_no}:earn")
    assert earned == 1


def test_alipay_refunds_give_coupon_and_points_back_once(stack: Stack) -> None:
    openid = _user()
    with stack.factory.begin() as session:
        points.earn(session, openid=openid, points=500, source_key=f"gift:{openid}", now=utcnow())
        code = claims.claim(
            session,
            offer_id=stack.offer_id,
            openid=openid,
            client_request_id=secrets.token_hex(8),
            now=utcnow(),
        ).code
    order = _order(stack, openid, coupon=code, points_used=500)
    out_trade_no = _pay(stack, order)
    stack.alipay.pay(out_trade_no)
    _paid(stack, order.order_no)
    first = stack.payments.refund(
        order_no=order.order_no, amount_fen=2500, idempotency_key="r1", reason="", requested_by="t"
    )
    assert first.status is RefundStatus.succeeded
    repeat = stack.payments.refund(
        order_no=order.order_no, amount_fen=2500, idempotency_key="r1", reason="", requested_by="t"
    )
    assert repeat.id == first.id
    rest = stack.payments.refund(
        order_no=order.order_no,
        amount_fen=order.payable_fen - 2500,
        idempotency_key="r2",
        reason="",
        requested_by="t",
    )
    assert rest.status is RefundStatus.succeeded
    with stack.factory() as session:
        done = service.get_order(session, order.order_no)
        assert done.status is OrderStatus.refunded
        assert done.refunded_fen == order.payable_fen
        coupon = session.scalars(select(Claim).where(Claim.code == code)).one()
        assert coupon.status is ClaimStatus.claimed
        assert coupon.restore_count == 1
        assert points.balance(session, openid) == 500
    trade = stack.alipay.ledger.find(out_trade_no=out_trade_no)
    assert trade is not None
    assert trade.refunded_fen == order.payable_fen


def test_an_unpaid_alipay_order_closes_after_its_time(stack: Stack) -> None:
    openid = _user()
    order = _order(stack, openid)
    out_trade_no = _pay(stack, order)
    later = _later(stack, shift_s=stack.payments.settings.order_ttl_s + 60)
    run_due(later)
    assert _status(stack, order.order_no) is OrderStatus.closed
    assert _attempt(stack, out_trade_no).status is AttemptStatus.closed


# -- routing ----------------------------------------------------------------------------------


def test_tenpay_unreachable_before_prepay_falls_back_to_alipay(stack: Stack) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the connection is refused
    channels = Channels(
        [
            *build_tenpay_channels(_tenpay(dead), default_appid=APPID),
            *stack.payments.channels.named("alipay"),
        ]
    )
    payments = _later(stack, channels, shift_s=0)
    order = _order(stack, _user())
    out_trade_no = _pay(stack, order, payments=payments, preferred="tenpay")
    first = _attempt(stack, f"{order.order_no}P1")
    assert (first.channel, first.status, first.error_code) == (
        "tenpay_v3",
        AttemptStatus.closed,
        "UNREACHABLE",
    )
    assert out_trade_no == f"{order.order_no}P2"
    assert _attempt(stack, out_trade_no).channel == "alipay"
    with stack.factory() as session:
        health = session.get_one(ChannelHealth, ("tenpay_v3", MCHID))
        assert health.consecutive_failures >= 1
    stack.alipay.pay(out_trade_no)
    _paid(stack, order.order_no)


def test_tenpay_timing_out_after_sending_is_settled_on_tenpay_never_on_alipay(
    stack: Stack,
) -> None:
    order = _order(stack, _user())
    stack.tenpay.add_fault("order", "timeout", count=2, delay_s=2.0)
    with pytest.raises(ChannelUnavailableError):
        _pay(stack, order, preferred="tenpay")
    only = _attempt(stack, f"{order.order_no}P1")
    assert (only.channel, only.status) == ("tenpay_v3", AttemptStatus.unknown)
    assert _count(stack, PaymentAttempt, PaymentAttempt.order_id == order.id) == 1
    # The prepay did reach WeChat Pay; the payer pays it there, and the jobs settle it there.
    trade = stack.tenpay.ledger.find(out_trade_no=f"{order.order_no}P1")
    assert trade is not None
    stack.tenpay.add_fault("payment_notify", "lost_notify")
    stack.tenpay.pay(f"{order.order_no}P1")
    run_due(_later(stack))
    assert _status(stack, order.order_no) is OrderStatus.paid
    assert _attempt(stack, f"{order.order_no}P1").status is AttemptStatus.paid
