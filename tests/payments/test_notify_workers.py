"""Two server processes behind one PostgreSQL receive the same verified WeChat Pay v3 notify at
the same moment, as WeChat's redeliveries can arrive: every copy is acknowledged, and the payment
is applied once (one event row, the attempt and the order paid once, points earned once, one
payment notice queued). A notify that fails verification, or names another amount, gets the
failure answer and changes nothing, so WeChat sends it again."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from coupons.models import PointsEntry
from payments import service
from payments.config import PaymentSettings
from payments.models import Order, OutboxMessage, PaymentAttempt, PaymentEvent
from tenpay_adapter.sim_messages import v3_notify_body, v3_signed_headers
from tenpay_adapter.v3_signing import format_rfc3339_beijing
from tests.builders import make_store
from tests.conftest import PostgresDatabases
from tests.tenpay.sim_support import (
    APIV3_KEY,
    APPID,
    MCHID,
    make_config,
    merchant_keys,
    platform_keys,
)
from tests.workers import serve_workers
from tianfu import migrate
from tianfu.db import create_db_engine, make_session_factory, session_scope
from tianfu.orm import utcnow

pytestmark = pytest.mark.postgres_only

NOTIFY_PATH = "/payments/notify/tenpay/v3"
COPIES = 8  # of each notify, half to each worker, released together
ROUNDS = 4  # each with an order of its own
SETTINGS = PaymentSettings()  # what the workers run with: 1 point per whole yuan
_openids = itertools.count(1)


@dataclass(frozen=True)
class Prepaid:
    order_no: str
    out_trade_no: str
    amount_fen: int
    openid: str


@dataclass(frozen=True)
class Notify:
    event_id: str
    body: bytes


@pytest.fixture
def committed(postgres_databases: PostgresDatabases) -> Iterator[Engine]:
    db_engine = create_db_engine(postgres_databases.create())
    migrate.upgrade(db_engine)
    yield db_engine
    db_engine.dispose()


@pytest.fixture
def workers(committed: Engine, tmp_path: Path) -> Iterator[list[str]]:
    env = {
        "TIANFU_SECRET_KEY": "test-secret-key-for-signing-h5-links-0123456789",
        "TIANFU_PAYMENTS_RUN_JOBS_IN_SERVE": "false",  # only the notifies move money here
        "TIANFU_TENPAY_MCHID": MCHID,
        "TIANFU_TENPAY_APPID": APPID,
        "TIANFU_TENPAY_API_VERSION": "v3",
        "TIANFU_TENPAY_APIV3_KEY": APIV3_KEY,
        "TIANFU_TENPAY_MERCHANT_PRIVATE_KEY_PEM": merchant_keys().private_key_pem,
        "TIANFU_TENPAY_MERCHANT_SERIAL_NO": merchant_keys().serial_no,
        "TIANFU_TENPAY_PLATFORM_CERTIFICATE_PEM": platform_keys().certificate_pem,
        "TIANFU_TENPAY_BASE_URL": "http://127.0.0.1:9",  # never called: notifies need no call
    }
    url = committed.url.render_as_string(hide_password=False)
    with serve_workers(url, tmp_path, env=env) as bases:
        yield bases


def _prepaid(engine: Engine, count: int) -> list[Prepaid]:
    """Orders with one prepaid JSAPI attempt each, as checkout leaves them, committed."""
    now = utcnow()
    seeded = []
    with session_scope(make_session_factory(engine)) as session:
        store = make_store(session)
        for n in range(count):
            openid = f"oNotifyWorkers{next(_openids):013d}"
            request = service.OrderRequest(
                openid=openid, store_id=store.id, total_fen=8800 + n, idempotency_key="k1"
            )
            order = service.create_order(session, request, settings=SETTINGS, now=now)
            order = service.lock_order(session, order.order_no)
            attempt = service.begin_attempt(
                session, order=order, channel="tenpay_v3", account=MCHID, method="jsapi", now=now
            )
            service.record_prepay(
                session, attempt_id=attempt.id, prepay_id=f"wx{n:030d}", client_params={}, now=now
            )
            seeded.append(Prepaid(order.order_no, attempt.out_trade_no, attempt.amount_fen, openid))
    return seeded


def _paid_notify(prepaid: Prepaid, *, amount_fen: int | None = None) -> Notify:
    """A TRANSACTION.SUCCESS notify for the attempt, built and sealed as WeChat Pay does."""
    total = prepaid.amount_fen if amount_fen is None else amount_fen
    now = utcnow()
    resource: dict[str, Any] = {
        "appid": APPID,
        "mchid": MCHID,
        "out_trade_no": prepaid.out_trade_no,
        "transaction_id": f"4200{time.time_ns() % 10**24:024d}",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": prepaid.order_no,
        "success_time": format_rfc3339_beijing(now),
        "payer": {"openid": prepaid.openid},
        "amount": {
            "total": total,
            "payer_total": total,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }
    event_id, body = v3_notify_body(
        make_config(), kind="transaction", resource=resource, created_at=now
    )
    return Notify(event_id, body)


def _post(base: str, notify: Notify, *, bad_signature: bool = False) -> httpx.Response:
    # Signed afresh for every delivery, as each of WeChat's redeliveries is.
    headers = v3_signed_headers(make_config(), notify.body, bad_signature=bad_signature)
    headers["Content-Type"] = "application/json"
    with httpx.Client(timeout=10) as http:
        return http.post(f"{base}{NOTIFY_PATH}", content=notify.body, headers=headers)


def _deliver_at_once(bases: list[str], notify: Notify, copies: int) -> list[int]:
    """`copies` deliveries of one notify, alternating between the workers, released together."""
    barrier = threading.Barrier(copies)
    statuses: list[int] = [0] * copies
    headers = [v3_signed_headers(make_config(), notify.body) for _ in range(copies)]

    def deliver(n: int) -> None:
        with httpx.Client(timeout=10) as http:
            barrier.wait()
            response = http.post(
                f"{bases[n % len(bases)]}{NOTIFY_PATH}",
                content=notify.body,
                headers=headers[n] | {"Content-Type": "application/json"},
            )
            statuses[n] = response.status_code

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def _state(engine: Engine, prepaid: Prepaid) -> dict[str, Any]:
    """Everything a payment notify may change for this order."""
    with Session(engine) as session:
        order = session.scalars(select(Order).where(Order.order_no == prepaid.order_no)).one()
        attempt = session.scalars(
            select(PaymentAttempt).where(PaymentAttempt.out_trade_no == prepaid.out_trade_no)
        ).one()
        return {
            "order": (order.status.value, order.paid_attempt_id, order.late_payment_fen),
            "attempt": (attempt.status.value, attempt.channel_trade_no),
            "events": session.scalar(
                select(func.count())
                .select_from(PaymentEvent)
                .where(PaymentEvent.reference == prepaid.out_trade_no)
            ),
            "points": [
                (row.source_key, row.delta)
                for row in session.execute(
                    select(PointsEntry.source_key, PointsEntry.delta).where(
                        PointsEntry.openid == prepaid.openid
                    )
                )
            ],
            "outbox": list(
                session.scalars(
                    select(OutboxMessage.dedup_key).where(
                        OutboxMessage.dedup_key.contains(prepaid.order_no)
                    )
                )
            ),
            "attempt_id": attempt.id,
        }


def _events_with_id(engine: Engine, event_id: str) -> int:
    with Session(engine) as session:
        count = session.scalar(
            select(func.count()).select_from(PaymentEvent).where(PaymentEvent.event_id == event_id)
        )
    return int(count or 0)


def _assert_refused(response: httpx.Response) -> None:
    assert not response.is_success, (response.status_code, response.text)
    assert response.json()["code"] == "FAIL", response.text


def test_one_notify_to_two_workers_at_once_pays_the_order_once(
    committed: Engine, workers: list[str]
) -> None:
    orders = _prepaid(committed, ROUNDS)
    notifies = []
    for prepaid in orders:
        notify = _paid_notify(prepaid)
        notifies.append(notify)
        statuses = _deliver_at_once(workers, notify, COPIES)
        assert set(statuses) <= {200, 204}, statuses
        # WeChat's redelivery of an answered notify (a lost answer): acknowledged too.
        assert _post(workers[1], notify).status_code in (200, 204)

    for prepaid, notify in zip(orders, notifies, strict=True):
        assert _events_with_id(committed, notify.event_id) == 1
        state = _state(committed, prepaid)
        assert state["order"] == ("paid", state["attempt_id"], 0)
        assert state["attempt"][0] == "paid"
        assert state["events"] == 1
        assert state["points"] == [(f"order:{prepaid.order_no}:earn", prepaid.amount_fen // 100)]
        assert state["outbox"] == [f"paid:{prepaid.order_no}"]


def test_a_forged_or_wrong_amount_notify_is_refused_and_changes_nothing(
    committed: Engine, workers: list[str]
) -> None:
    forged_for, short_for = _prepaid(committed, 2)
    before = _state(committed, forged_for)
    genuine = _paid_notify(forged_for)
    for base in workers:
        _assert_refused(_post(base, genuine, bad_signature=True))
    assert _state(committed, forged_for) == before
    assert _events_with_id(committed, genuine.event_id) == 0
    # The refusal used up nothing: the genuine delivery of the same notify still pays.
    assert _post(workers[0], genuine).status_code in (200, 204)
    assert _state(committed, forged_for)["order"][0] == "paid"

    before = _state(committed, short_for)
    short = _paid_notify(short_for, amount_fen=short_for.amount_fen - 1)
    # Refused by both, every time: its event row went with the rolled-back transaction, so a
    # redelivery is judged again rather than acknowledged as a duplicate.
    for base in [*workers, *workers]:
        _assert_refused(_post(base, short))
    assert _state(committed, short_for) == before
    assert _events_with_id(committed, short.event_id) == 0
