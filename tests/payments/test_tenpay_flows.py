"""Payments end to end over loopback: the real app served by uvicorn (its notify endpoints
reachable), the WeChat Pay gateway simulator speaking API v3 (and v2 for one flow), committed
data on each backend. Every test ends by asserting what the database holds."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from coupons import claims, points
from coupons.models import Claim, ClaimStatus, PointsEntry
from coupons.rules import OfferKind
from payments import service
from payments.channels import ChannelRetryableError
from payments.config import PaymentSettings
from payments.errors import ChannelUnavailableError
from payments.flows import Payments
from payments.jobs import run_due
from payments.models import (
    AttemptStatus,
    Order,
    OrderStatus,
    OutboxMessage,
    PaymentAttempt,
    PaymentEvent,
    Refund,
    RefundStatus,
)
from tenpay_adapter.config import TenpaySettings
from tenpay_adapter.sim_ledger import TradeRefusedError
from tenpay_adapter.sim_state import TenpaySimState
from tenpay_adapter.v3_signing import (
    aes_gcm_encrypt,
    format_rfc3339_beijing,
    load_private_key,
    sign_response,
)
from tests.builders import make_merchant, make_offer, make_store
from tests.conftest import PostgresDatabases, new_database_url
from tests.lbs.live_app import base_url_of, loopback_socket, serving_until_ready
from tests.tenpay.sim_support import (
    API_KEY,
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

SECRET_KEY = "payments-flow-tests-secret-key-0123456789abcdef"
OPENID = "oFlowPayer00000000000000001"


@dataclass
class Stack:
    app_url: str
    payments: Payments
    sim: TenpaySimState
    sim_url: str
    factory: sessionmaker[Session]
    store_id: int
    offer_id: int

    def session(self) -> Session:
        return self.factory()


def _tenpay(version: str, sim_url: str) -> TenpaySettings:
    if version == "v2":
        return TenpaySettings(
            mchid=MCHID,
            appid=APPID,
            api_version="v2",
            api_key=API_KEY,
            sign_type="HMAC-SHA256",
            base_url=sim_url,
            timeout_s=1.0,
        )
    return TenpaySettings(
        mchid=MCHID,
        appid=APPID,
        api_version="v3",
        apiv3_key=APIV3_KEY,
        merchant_private_key_pem=merchant_keys().private_key_pem,
        merchant_serial_no=merchant_keys().serial_no,
        platform_certificate_pem=platform_keys().certificate_pem,
        base_url=sim_url,
        timeout_s=1.0,
    )


def _stack(
    version: str,
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_databases: PostgresDatabases,
) -> Iterator[Stack]:
    url = new_database_url(backend, tmp_path_factory.mktemp("flows"), postgres_databases)
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
    with running_tenpay(make_config()) as sim, loopback_socket() as sock:
        settings = TianfuSettings(
            database_url=url,
            public_base_url=base_url_of(sock),
            secret_key=SECRET_KEY,
            tenpay=_tenpay(version, sim.base_url),
            payments=PaymentSettings(run_jobs_in_serve=False, query_after_s=1),
        )
        app = create_app(settings)
        with serving_until_ready(app, sock) as app_url:
            payments = app.state.payments
            assert isinstance(payments, Payments)
            yield Stack(
                app_url=app_url,
                payments=payments,
                sim=sim.state,
                sim_url=sim.base_url,
                factory=factory,
                store_id=store_id,
                offer_id=offer_id,
            )
    engine.dispose()


@pytest.fixture(scope="module")
def stack(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Iterator[Stack]:
    yield from _stack("v3", backend, tmp_path_factory, postgres_databases)


@pytest.fixture(scope="module")
def stack_v2(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Iterator[Stack]:
    yield from _stack("v2", backend, tmp_path_factory, postgres_databases)


@pytest.fixture(autouse=True)
def _fresh_simulator(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("stack", "stack_v2"):
        if name in request.fixturenames:
            request.getfixturevalue(name).sim.reset()


# -- helpers ----------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.02)


def _coupon(stack: Stack, openid: str) -> str:
    with stack.factory.begin() as session:
        coupon = claims.claim(
            session,
            offer_id=stack.offer_id,
            openid=openid,
            client_request_id=secrets.token_hex(8),
            now=utcnow(),
        )
        return coupon.code


def _new_user() -> str:
    return f"oFlow{secrets.token_hex(11)}"


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


def _pay(stack: Stack, order: Order) -> str:
    checkout = stack.payments.pay(
        order_no=order.order_no, openid=order.openid, client_ip="127.0.0.1"
    )
    return checkout.out_trade_no


def _order_status(stack: Stack, order_no: str) -> OrderStatus:
    with stack.session() as session:
        return service.get_order(session, order_no).status


def _attempt(stack: Stack, out_trade_no: str) -> PaymentAttempt:
    with stack.session() as session:
        return service.get_attempt(session, out_trade_no)


def _count(stack: Stack, model: Any, *where: Any) -> int:
    with stack.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _paid(stack: Stack, order_no: str) -> None:
    wait_for(lambda: _order_status(stack, order_no) is OrderStatus.paid, f"{order_no} paid")


def _earned(stack: Stack, order_no: str) -> int:
    return _count(stack, PointsEntry, PointsEntry.source_key == f"order:{order_no}:earn")


# -- paying -----------------------------------------------------------------------------------


def test_a_payment_moves_money_once_with_coupon_points_and_notice(stack: Stack) -> None:
    openid = _new_user()
    with stack.factory.begin() as session:
        points.earn(session, openid=openid, points=1000, source_key=f"gift:{openid}", now=utcnow())
    code = _coupon(stack, openid)
    order = _order(stack, openid, coupon=code, points_used=1000)
    assert order.payable_fen == 15000 - 2000 - 1000
    checkout = stack.payments.pay(order_no=order.order_no, openid=openid, client_ip="127.0.0.1")
    assert checkout.jsapi_params is not None
    assert checkout.jsapi_params["signType"] == "RSA"
    assert checkout.jsapi_params["package"] == f"prepay_id={checkout.prepay_id}"
    # Asking again gives the same prepay, not a second trade.
    again = stack.payments.pay(order_no=order.order_no, openid=openid, client_ip="127.0.0.1")
    assert again.out_trade_no == checkout.out_trade_no
    assert again.prepay_id == checkout.prepay_id

    stack.sim.pay(checkout.out_trade_no, openid=openid)
    _paid(stack, order.order_no)

    attempt = _attempt(stack, checkout.out_trade_no)
    assert attempt.status is AttemptStatus.paid
    assert attempt.channel_trade_no
    with stack.session() as session:
        coupon = session.scalars(select(Claim).where(Claim.code == code)).one()
        assert coupon.status is ClaimStatus.redeemed
        assert coupon.order_ref == order.order_no
        assert points.balance(session, openid) == 120  # 1000 spent, 120 yuan × 1 earned
    assert _count(stack, PaymentEvent, PaymentEvent.reference == checkout.out_trade_no) == 1
    assert _count(stack, OutboxMessage, OutboxMessage.dedup_key == f"paid:{order.order_no}") == 1
    wait_for(lambda: any(d.answered_ok for d in stack.sim.deliveries), "the notify answered")


def test_a_declined_payment_leaves_the_order_payable_by_a_new_trade(stack: Stack) -> None:
    openid = _new_user()
    order = _order(stack, openid)
    first = _pay(stack, order)
    stack.sim.decline(first)
    # Paying again at once: the dead prepay is not handed out again; a new trade is opened.
    second = _pay(stack, order)
    assert second == f"{order.order_no}P2"
    assert _attempt(stack, first).status is AttemptStatus.failed
    assert _order_status(stack, order.order_no) is OrderStatus.paying
    stack.sim.pay(second, openid=openid)
    _paid(stack, order.order_no)
    assert _attempt(stack, first).status is AttemptStatus.failed


def test_a_prepay_that_times_out_is_settled_on_the_same_trade(stack: Stack) -> None:
    openid = _new_user()
    order = _order(stack, openid)
    stack.sim.add_fault("order", "timeout", delay_s=2.0)
    out_trade_no = _pay(stack, order)  # the retry with the same number gets the same prepay
    assert out_trade_no == f"{order.order_no}P1"
    assert _attempt(stack, out_trade_no).status is AttemptStatus.prepaid
    stack.sim.add_fault("order", "system_error", count=2)
    other = _order(stack, openid)
    with pytest.raises(ChannelUnavailableError):
        _pay(stack, other)
    assert _attempt(stack, f"{other.order_no}P1").status is AttemptStatus.unknown


def test_a_lost_notify_and_a_query_timeout_are_settled_by_the_jobs(stack: Stack) -> None:
    openid = _new_user()
    order = _order(stack, openid)
    out_trade_no = _pay(stack, order)
    stack.sim.add_fault("payment_notify", "lost_notify")
    stack.sim.pay(out_trade_no, openid=openid)
    time.sleep(0.3)
    assert _order_status(stack, order.order_no) is OrderStatus.paying
    stack.sim.add_fault("query", "timeout", delay_s=2.0)
    later = Payments(
        session_factory=stack.factory,
        channels=stack.payments.channels,
        settings=stack.payments.settings,
        notify_base_url=stack.app_url,
        clock=lambda: utcnow() + timedelta(seconds=5),
    )
    with pytest.raises(ChannelRetryableError):
        later.settle(out_trade_no)  # the query took effect at the channel; we never heard
    assert _order_status(stack, order.order_no) is OrderStatus.paying
    run_due(later)
    assert _order_status(stack, order.order_no) is OrderStatus.paid
    assert _earned(stack, order.order_no) == 1


def test_duplicate_notifies_are_acknowledged_and_applied_once(stack: Stack) -> None:
    openid = _new_user()
    order = _order(stack, openid)
    out_trade_no = _pay(stack, order)
    stack.sim.add_fault("payment_notify", "duplicate_notify")
    stack.sim.pay(out_trade_no, openid=openid)
    wait_for(lambda: sum(d.answered_ok for d in stack.sim.deliveries) >= 2, "both answered")
    assert _order_status(stack, order.order_no) is OrderStatus.paid
    assert _count(stack, PaymentEvent, PaymentEvent.reference == out_trade_no) == 1
    assert _earned(stack, order.order_no) == 1


def test_a_notify_ahead_of_the_query_wins_over_the_stale_query(stack: Stack) -> None:
    openid = _new_user()
    order = _order(stack, openid)
    out_trade_no = _pay(stack, order)
    stack.sim.add_fault("payment_notify", "notify_before_query", delay_s=5.0)
    stack.sim.pay(out_trade_no, openid=openid)
    _paid(stack, order.order_no)
    stale = stack.payments.settle(out_trade_no)  # the query still says NOTPAY
    assert not stale.changed
    assert (stale.order_status, stale.attempt_status) == (OrderStatus.paid, AttemptStatus.paid)


def test_a_notify_with_a_bad_signature_is_refused_until_a_good_one_comes(stack: Stack) -> None:
    openid = _new_user()
    order = _order(stack, openid)
    out_trade_no = _pay(stack, order)
    stack.sim.add_fault("payment_notify", "bad_notify_signature")
    stack.sim.add_fault("payment_notify", "signtest_probe")
    stack.sim.pay(out_trade_no, openid=openid)
    _paid(stack, order.order_no)
    wait_for(
        lambda: any(d.answered_ok and d.kind == "payment" for d in stack.sim.deliveries), "answered"
    )
    refused = [d for d in stack.sim.deliveries if d.status is not None and d.status >= 400]
    assert len(refused) >= 2  # the probe and the tampered one
    assert _count(stack, PaymentEvent, PaymentEvent.reference == out_trade_no) == 1


def _forged_notify(
    amount_fen: int, out_trade_no: str, *, key_pem: str
) -> tuple[dict[str, str], bytes]:
    """A TRANSACTION.SUCCESS notify built as WeChat Pay builds one, signed with `key_pem`."""
    resource = {
        "mchid": MCHID,
        "appid": APPID,
        "out_trade_no": out_trade_no,
        "transaction_id": "4200000000" + "".join(secrets.choice("0123456789") for _ in range(18)),
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": format_rfc3339_beijing(utcnow().replace(microsecond=0)),
        "payer": {"openid": OPENID},
        "amount": {"total": amount_fen, "payer_total": amount_fen, "currency": "CNY",
                   "payer_currency": "CNY"},
    }  # fmt: skip
    nonce = secrets.token_hex(6)
    body = json.dumps(
        {
            "id": f"EV-{secrets.token_hex(8)}",
            "create_time": format_rfc3339_beijing(utcnow().replace(microsecond=0)),
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": aes_gcm_encrypt(
                    apiv3_key=APIV3_KEY,
                    nonce=nonce,
                    plaintext=json.dumps(resource, ensure_ascii=False).encode(),
                    associated_data="transaction",
                ),
                "associated_data": "transaction",
                "nonce": nonce,
            },
        },
        ensure_ascii=False,
    ).encode()
    timestamp, header_nonce = str(int(time.time())), secrets.token_hex(16)
    signature = sign_response(
        private_key=load_private_key(key_pem), timestamp=timestamp, nonce=header_nonce, body=body
    )
    headers = {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": header_nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": platform_keys().serial_no,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }
    return headers, body


def test_a_notify_for_another_amount_or_from_another_key_changes_nothing(stack: Stack) -> None:
    openid = _new_user()
    order = _order(stack, openid)
    out_trade_no = _pay(stack, order)
    url = f"{stack.app_url}/payments/notify/tenpay/v3"
    wrong_amount = _forged_notify(1, out_trade_no, key_pem=platform_keys().private_key_pem)
    wrong_key = _forged_notify(
        order.payable_fen, out_trade_no, key_pem=merchant_keys().private_key_pem
    )
    for headers, body in (wrong_amount, wrong_key):
        answer = httpx.post(url, content=body, headers=headers, timeout=5)
        assert answer.status_code >= 400
        assert answer.json()["code"] == "FAIL"
    assert _attempt(stack, out_trade_no).status is AttemptStatus.prepaid
    assert _order_status(stack, order.order_no) is OrderStatus.paying
    assert _count(stack, PaymentEvent, PaymentEvent.reference == out_trade_no) == 0
    # The genuine notify, with the right amount and key, is applied.
    headers, body = _forged_notify(
        order.payable_fen, out_trade_no, key_pem=platform_keys().private_key_pem
    )
    assert httpx.post(url, content=body, headers=headers, timeout=5).status_code in (200, 204)
    assert _order_status(stack, order.order_no) is OrderStatus.paid


# -- refunds and closing ----------------------------------------------------------------------


def _refund(stack: Stack, order_no: str, amount_fen: int, key: str) -> Refund:
    return stack.payments.refund(
        order_no=order_no,
        amount_fen=amount_fen,
        idempotency_key=key,
        reason="退菜",
        requested_by="staff@test",
    )


def _refund_status(stack: Stack, out_refund_no: str) -> RefundStatus:
    with stack.session() as session:
        return service.get_refund(session, out_refund_no).status


def _refunds_then_coupon_and_points_come_back(stack: Stack) -> None:
    openid = _new_user()
    with stack.factory.begin() as session:
        points.earn(session, openid=openid, points=500, source_key=f"gift:{openid}", now=utcnow())
    code = _coupon(stack, openid)
    order = _order(stack, openid, coupon=code, points_used=500)
    out_trade_no = _pay(stack, order)
    stack.sim.pay(out_trade_no, openid=openid)
    _paid(stack, order.order_no)
    paid_fen = order.payable_fen  # 150 - 20 - 5 = 125 yuan

    partial = _refund(stack, order.order_no, 2500, "r1")
    assert partial.out_refund_no == f"{out_trade_no}R1"
    wait_for(lambda: _refund_status(stack, partial.out_refund_no) is RefundStatus.succeeded, "r1")
    assert _refund(stack, order.order_no, 2500, "r1").id == partial.id  # same key: same refund
    assert _order_status(stack, order.order_no) is OrderStatus.partially_refunded

    rest = _refund(stack, order.order_no, paid_fen - 2500, "r2")
    wait_for(lambda: _refund_status(stack, rest.out_refund_no) is RefundStatus.succeeded, "r2")
    wait_for(lambda: _order_status(stack, order.order_no) is OrderStatus.refunded, "refunded")
    with stack.session() as session:
        final = service.get_order(session, order.order_no)
        assert final.refunded_fen == paid_fen
        coupon = session.scalars(select(Claim).where(Claim.code == code)).one()
        assert coupon.status is ClaimStatus.claimed
        assert coupon.restore_count == 1
        assert points.balance(session, openid) == 500  # earned 125 taken back, 500 spent returned
        reversals = session.scalar(
            select(func.count())
            .select_from(PointsEntry)
            .where(PointsEntry.source_key.like(f"reverse:order:{order.order_no}:%"))
        )
        assert reversals == 2
    sim_trade = stack.sim.ledger.find(out_trade_no=out_trade_no)
    assert sim_trade is not None
    assert sim_trade.refunded_fen == paid_fen


def test_partial_and_full_refunds_give_coupon_and_points_back_once(stack: Stack) -> None:
    _refunds_then_coupon_and_points_come_back(stack)


def test_v2_pays_and_refunds_with_its_own_notifies(stack_v2: Stack) -> None:
    _refunds_then_coupon_and_points_come_back(stack_v2)


def test_an_unpaid_order_closes_after_its_time_at_the_channel_first(stack: Stack) -> None:
    openid = _new_user()
    with stack.factory.begin() as session:
        points.earn(session, openid=openid, points=300, source_key=f"gift:{openid}", now=utcnow())
    order = _order(stack, openid, points_used=300)
    out_trade_no = _pay(stack, order)
    later = Payments(
        session_factory=stack.factory,
        channels=stack.payments.channels,
        settings=stack.payments.settings,
        notify_base_url=stack.app_url,
        clock=lambda: utcnow() + timedelta(seconds=stack.payments.settings.order_ttl_s + 60),
    )
    report = run_due(later)
    assert report.closed >= 1, report
    assert _order_status(stack, order.order_no) is OrderStatus.closed
    assert _attempt(stack, out_trade_no).status is AttemptStatus.closed
    sim_trade = stack.sim.ledger.find(out_trade_no=out_trade_no)
    assert sim_trade is not None
    assert sim_trade.state == "CLOSED"
    with stack.session() as session:
        assert points.balance(session, openid) == 300
    # The buyer can no longer pay it.
    with pytest.raises(TradeRefusedError):
        stack.sim.pay(out_trade_no, openid=openid)
    assert _order_status(stack, order.order_no) is OrderStatus.closed


def test_order_expiry_is_now_plus_ttl(stack: Stack) -> None:
    before = utcnow()
    order = _order(stack, _new_user())
    ttl = timedelta(seconds=stack.payments.settings.order_ttl_s)
    assert before + ttl <= order.expires_at <= utcnow() + ttl
    assert isinstance(order.created_at, datetime)


def test_a_refund_in_doubt_is_retried_with_the_same_number_and_refunds_once(stack: Stack) -> None:
    openid = _new_user()
    order = _order(stack, openid)
    out_trade_no = _pay(stack, order)
    stack.sim.pay(out_trade_no, openid=openid)
    _paid(stack, order.order_no)
    stack.sim.add_fault("refund", "timeout", delay_s=2.0)  # accepted there, unheard here
    refund = _refund(stack, order.order_no, order.payable_fen, "all")
    with stack.session() as session:
        in_doubt = service.get_refund(session, refund.out_refund_no)
    assert in_doubt.status in (RefundStatus.pending, RefundStatus.succeeded)
    later = Payments(
        session_factory=stack.factory,
        channels=stack.payments.channels,
        settings=stack.payments.settings,
        notify_base_url=stack.app_url,
        clock=lambda: utcnow() + timedelta(hours=1),
    )
    run_due(later)
    wait_for(
        lambda: _refund_status(stack, refund.out_refund_no) is RefundStatus.succeeded, "refunded"
    )
    wait_for(lambda: _order_status(stack, order.order_no) is OrderStatus.refunded, "order")
    sim_trade = stack.sim.ledger.find(out_trade_no=out_trade_no)
    assert sim_trade is not None
    assert sim_trade.refunded_fen == order.payable_fen  # once, though asked twice
    assert sim_trade.refund_count == 1
    assert _count(stack, Refund, Refund.order_id == order.id) == 1
