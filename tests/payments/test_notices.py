"""The payment notice: queued in the outbox with the move to paid, delivered by the jobs through
the WeChat client to the WeChat simulator over loopback, once, and retried after an outage."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lbs.client import WeChatClient
from lbs.simulator import SimulatorConfig
from payments import service
from payments.channels import TradeState, TradeStatus
from payments.config import PaymentSettings
from payments.flows import Channels, Payments
from payments.jobs import run_due
from payments.models import OutboxMessage, OutboxStatus
from payments.notices import payment_notice_handler
from tests.builders import make_merchant, make_store
from tests.conftest import PostgresDatabases, new_database_url
from tests.lbs.sim_helpers import RunningSimulator, running_simulator
from tianfu import migrate
from tianfu.db import create_db_engine, make_session_factory
from tianfu.orm import utcnow

TEMPLATE_ID = "tpl-payment-notice"
SETTINGS = PaymentSettings(retry_base_s=30, notice_template_id=TEMPLATE_ID)


@pytest.fixture(scope="module")
def factory(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Iterator[sessionmaker[Session]]:
    url = new_database_url(backend, tmp_path_factory.mktemp("notices"), postgres_databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(appid="wx" + secrets.token_hex(8), appsecret="0" * 32)
    with running_simulator(config) as running:
        yield running


def _paid_order(factory: sessionmaker[Session], openid: str) -> str:
    now = utcnow()
    with factory.begin() as session:
        store = make_store(session, merchant=make_merchant(session), name="蜀味老灶火锅(春熙路店)")
        order = service.create_order(
            session,
            service.OrderRequest(
                openid=openid, store_id=store.id, total_fen=12800, idempotency_key="k"
            ),
            settings=SETTINGS,
            now=now,
        )
        attempt = service.begin_attempt(
            session,
            order=service.lock_order(session, order.order_no),
            channel="tenpay_v3",
            account="1900000001",
            method="jsapi",
            now=now,
        )
        paid = TradeStatus(
            attempt.out_trade_no,
            TradeState.paid,
            "SUCCESS",
            channel_trade_no="4200000000000000000000000001",
            amount_fen=12800,
            currency="CNY",
            paid_at=now,
        )
        service.apply_trade_status(session, status=paid, now=now, settings=SETTINGS)
        return order.order_no


def _payments(factory: sessionmaker[Session], shift_s: float = 0) -> Payments:
    return Payments(
        session_factory=factory,
        channels=Channels([]),
        settings=SETTINGS,
        notify_base_url="http://127.0.0.1:8000",
        clock=lambda: utcnow() + timedelta(seconds=shift_s),
    )


def _outbox(factory: sessionmaker[Session], order_no: str) -> OutboxMessage:
    with factory() as session:
        return session.scalars(
            select(OutboxMessage).where(OutboxMessage.dedup_key == f"paid:{order_no}")
        ).one()


def test_a_paid_order_sends_one_notice(
    factory: sessionmaker[Session], sim: RunningSimulator
) -> None:
    openid = f"oNotice{secrets.token_hex(10)}"
    order_no = _paid_order(factory, openid)
    client = WeChatClient(sim.wechat_settings(), factory)
    handlers = {
        "payment_notice": payment_notice_handler(
            client.send_template,
            template_id=TEMPLATE_ID,
            public_base_url="http://t.test",
            warm_up=client.access_token,
        )
    }
    try:
        first = run_due(_payments(factory), handlers=handlers)
        again = run_due(_payments(factory, shift_s=3600), handlers=handlers)
    finally:
        client.close()
    assert (first.delivered, again.delivered) == (1, 0), (first, again)
    assert sim.state.template_sends == 1
    [message] = [m for m in sim.state.inbox(openid) if m.get("template_id") == TEMPLATE_ID]
    assert message["data"]["keyword2"] == "128.00元"
    assert message["data"]["keyword3"] == order_no
    assert message["url"] == f"http://t.test/h5/orders/{order_no}"
    assert _outbox(factory, order_no).status is OutboxStatus.done


def test_a_notice_during_an_outage_waits_and_is_sent_later(
    factory: sessionmaker[Session], sim: RunningSimulator
) -> None:
    openid = f"oNotice{secrets.token_hex(10)}"
    order_no = _paid_order(factory, openid)
    client = WeChatClient(sim.wechat_settings(), factory)
    handlers = {
        "payment_notice": payment_notice_handler(
            client.send_template,
            template_id=TEMPLATE_ID,
            public_base_url="http://t.test",
            warm_up=client.access_token,
        )
    }
    sim.state.add_fault("template_send", "system_busy")
    try:
        failed = run_due(_payments(factory), handlers=handlers)
        waiting = _outbox(factory, order_no)
        too_soon = run_due(_payments(factory, shift_s=10), handlers=handlers)
        later = run_due(_payments(factory, shift_s=600), handlers=handlers)
    finally:
        client.close()
    assert failed.delivered == 0
    assert failed.problems
    assert (waiting.status, waiting.tries) == (OutboxStatus.pending, 1)
    assert too_soon.delivered == 0
    assert later.delivered == 1
    assert sim.state.template_sends == 1
