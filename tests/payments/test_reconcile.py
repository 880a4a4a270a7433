"""Reconciliation end to end: the real app served on loopback, the WeChat Pay simulator (API v3,
and v2 once) serving statements from its own ledger, committed data on each backend. One Beijing
day gets a difference of every kind; the rules themselves are also checked table-style.

The simulator's clock is set back to noon of a past Beijing day (a different one per test), so
every payment and refund of a test lands on that day wherever the wall clock stands.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

import tianfu.cli_support
from coupons.models import PointsEntry
from payments import service
from payments.channels import StatementLine
from payments.config import PaymentSettings
from payments.flows import Payments
from payments.models import (
    AttemptStatus,
    Order,
    OrderStatus,
    PaymentAttempt,
    ReconciliationRun,
    Refund,
    RefundStatus,
)
from payments.reconcile import ReconciliationReport, items_csv, reconcile
from payments.reconcile_rules import Books, Finding, Kind, OurPayment, OurRefund, match
from payments.settlement import BEIJING
from tenpay_adapter.config import TenpaySettings
from tenpay_adapter.sim_state import TenpaySimState
from tests.builders import make_merchant, make_store
from tests.conftest import PostgresDatabases, new_database_url
from tests.lbs.live_app import base_url_of, loopback_socket, serving_until_ready
from tests.tenpay.sim_support import (
    API_KEY,
    APIV3_KEY,
    APPID,
    MCHID,
    V3Merchant,
    make_config,
    merchant_keys,
    order_body,
    platform_keys,
    running_tenpay,
)
from tianfu import migrate
from tianfu.app import create_app
from tianfu.cli import app as cli_app
from tianfu.db import create_db_engine, make_session_factory
from tianfu.settings import TianfuSettings

SECRET_KEY = "reconcile-tests-secret-key-0123456789abcdef"


@dataclass
class Stack:
    payments: Payments
    sim: TenpaySimState
    sim_url: str
    settings: TianfuSettings
    factory: sessionmaker[Session]
    store_id: int


def _tenpay(version: str, sim_url: str) -> TenpaySettings:
    if version == "v2":
        return TenpaySettings(
            mchid=MCHID, appid=APPID, api_version="v2", api_key=API_KEY, base_url=sim_url
        )
    return TenpaySettings(
        mchid=MCHID,
        appid=APPID,
        apiv3_key=APIV3_KEY,
        merchant_private_key_pem=merchant_keys().private_key_pem,
        merchant_serial_no=merchant_keys().serial_no,
        platform_certificate_pem=platform_keys().certificate_pem,
        base_url=sim_url,
        timeout_s=1.0,
    )


def _stack(
    version: str, backend: str, tmp: pytest.TempPathFactory, databases: PostgresDatabases
) -> Iterator[Stack]:
    url = new_database_url(backend, tmp.mktemp("reconcile"), databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        store_id = make_store(session, merchant=make_merchant(session)).id
    with running_tenpay(make_config()) as sim, loopback_socket() as sock:
        settings = TianfuSettings(
            database_url=url,
            public_base_url=base_url_of(sock),
            secret_key=SECRET_KEY,
            tenpay=_tenpay(version, sim.base_url),
            payments=PaymentSettings(run_jobs_in_serve=False),
        )
        app = create_app(settings)
        with serving_until_ready(app, sock):
            payments = app.state.payments
            assert isinstance(payments, Payments)
            yield Stack(payments, sim.state, sim.base_url, settings, factory, store_id)
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


def _simulate_day(stack: Stack, days_back: int) -> date:
    """Set the simulator's clock to noon, Beijing time, `days_back` days ago."""
    now = datetime.now(UTC)
    day = now.astimezone(BEIJING).date() - timedelta(days=days_back)
    noon = datetime.combine(day, clock_time(12), tzinfo=BEIJING)
    stack.sim.advance_clock((noon - now).total_seconds())
    return day


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.02)


def _order(stack: Stack, total_fen: int = 15000) -> Order:
    return stack.payments.create_order(
        service.OrderRequest(
            openid=f"oRecon{secrets.token_hex(10)}",
            store_id=stack.store_id,
            total_fen=total_fen,
            idempotency_key=secrets.token_hex(8),
        )
    )


def _prepay(stack: Stack, order: Order) -> str:
    checkout = stack.payments.pay(
        order_no=order.order_no, openid=order.openid, client_ip="127.0.0.1"
    )
    return checkout.out_trade_no


def _get(stack: Stack, model: Any, **where: Any) -> Any:
    with stack.factory() as session:
        return session.scalars(select(model).filter_by(**where)).one()


def _paid_order(stack: Stack, total_fen: int = 15000) -> tuple[Order, str]:
    """An order paid at the channel and here, through its notify."""
    order = _order(stack, total_fen)
    out_trade_no = _prepay(stack, order)
    stack.sim.pay(out_trade_no, openid=order.openid)
    _wait(lambda: _get(stack, Order, id=order.id).status is OrderStatus.paid, "paid")
    return order, out_trade_no


def _paid_at_channel_only(stack: Stack, total_fen: int = 15000) -> tuple[Order, str]:
    """Paid at the channel, but its notify is lost: here the order is still paying."""
    order = _order(stack, total_fen)
    out_trade_no = _prepay(stack, order)
    stack.sim.add_fault("payment_notify", "lost_notify")
    stack.sim.pay(out_trade_no, openid=order.openid)
    assert _get(stack, Order, id=order.id).status is OrderStatus.paying
    return order, out_trade_no


def _refund(stack: Stack, order: Order, amount_fen: int) -> Refund:
    return stack.payments.refund(
        order_no=order.order_no,
        amount_fen=amount_fen,
        idempotency_key=secrets.token_hex(6),
        reason="退菜",
        requested_by="staff@test",
    )


def _earned(stack: Stack, order_no: str) -> int:
    with stack.factory() as session:
        key = f"order:{order_no}:earn"
        return int(session.scalar(select(func.count()).where(PointsEntry.source_key == key)) or 0)


def _runs(stack: Stack, day: date) -> list[ReconciliationRun]:
    with stack.factory() as session:
        query = select(ReconciliationRun).where(ReconciliationRun.bill_date == day)
        return list(session.scalars(query.order_by(ReconciliationRun.id)))


def _only(reports: list[ReconciliationReport]) -> ReconciliationReport:
    assert len(reports) == 1, reports
    return reports[0]


def _resolutions(report: ReconciliationReport) -> dict[tuple[str, str], str]:
    found = {(item.kind, item.reference): item.resolution for item in report.items}
    assert len(found) == len(report.items), "an item recorded twice"
    return found


# -- a day with every kind of difference ------------------------------------------------------


def test_a_day_with_every_kind_of_difference_is_found_once_and_settled_where_it_can(
    stack: Stack,
) -> None:
    day = _simulate_day(stack, days_back=1)
    noon_utc = datetime.combine(day, clock_time(12), tzinfo=BEIJING).astimezone(UTC)
    # Clean: a payment, and a payment refunded in part with its notify.
    _paid_order(stack)
    refunded, _ = _paid_order(stack)
    clean_refund = _refund(stack, refunded, 3000)
    _wait(lambda: _get(stack, Refund, id=clean_refund.id).status is RefundStatus.succeeded, "r1")
    # Paid at the channel, the notify lost: we still think it is paying.
    lost, lost_no = _paid_at_channel_only(stack, 12000)
    # Paid at the channel (notify lost) while the order was closed here.
    late, late_no = _paid_at_channel_only(stack, 11000)
    with stack.factory.begin() as session:
        order = service.lock_order(session, late.order_no)
        assert service.close_order(session, order=order, now=noon_utc)
    # A trade at the channel we never recorded.
    stranger_no = f"X{secrets.token_hex(8)}"
    merchant = V3Merchant(stack.sim_url)
    try:
        assert merchant.post(
            "/v3/pay/transactions/jsapi", order_body(stranger_no, total=4321)
        ).is_success
    finally:
        merchant.close()
    stack.sim.add_fault("payment_notify", "lost_notify")
    stack.sim.pay(stranger_no)
    # Paid here (faked), never at the channel: the trade was only prepaid there.
    ghost = _order(stack, 9000)
    ghost_no = _prepay(stack, ghost)
    with stack.factory.begin() as session:
        session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.out_trade_no == ghost_no)
            .values(status=AttemptStatus.paid, paid_at=noon_utc, channel_trade_no="4200GHOST")
        )
    # Paid everywhere, then our attempt's amount changed.
    _, bumped_no = _paid_order(stack, 8000)
    with stack.factory.begin() as session:
        session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.out_trade_no == bumped_no)
            .values(amount_fen=8001)
        )
    # Refunded at the channel; its notify lost, so here it is still processing.
    waiting, _ = _paid_order(stack, 7000)
    lost_before = len(stack.sim.lost_notifies)
    stack.sim.add_fault("refund_notify", "lost_notify")
    held = _refund(stack, waiting, 2500)
    assert held.status is RefundStatus.processing
    _wait(lambda: len(stack.sim.lost_notifies) > lost_before, "the refund notify lost")

    report = _only(reconcile(stack.payments, bill_date=day))

    assert (report.channel, report.account, report.bill_date) == ("tenpay_v3", MCHID, day)
    assert report.error is None
    assert _resolutions(report) == {
        ("status_mismatch", lost_no): "settled",
        ("status_mismatch", late_no): "settled",
        ("missing_here", stranger_no): "open",
        ("missing_at_channel", ghost_no): "open",
        ("amount_mismatch", bumped_no): "open",
        ("status_mismatch", held.out_refund_no): "settled",
    }
    # 7 payments and 2 refunds listed; 4 lines agree (the two clean payments, the clean refund
    # and the payment whose refund was waiting).
    assert report.statement_lines == 9
    assert report.matched == 4
    assert (report.new_items, report.settled) == (6, 3)
    items = {item.reference: item for item in report.items}
    assert (items[bumped_no].our_amount_fen, items[bumped_no].channel_amount_fen) == (8001, 8000)
    assert (items[stranger_no].our_state, items[stranger_no].channel_amount_fen) == ("", 4321)
    assert items[lost_no].resolved_at is not None
    assert items[ghost_no].resolved_at is None
    # What was settled is settled in the books, once.
    assert _get(stack, Order, id=lost.id).status is OrderStatus.paid
    assert _earned(stack, lost.order_no) == 1
    late_order = _get(stack, Order, id=late.id)
    assert (late_order.status, late_order.late_payment_fen) == (OrderStatus.closed, 11000)
    assert _get(stack, PaymentAttempt, out_trade_no=late_no).status is AttemptStatus.paid
    auto = _get(stack, Refund, order_id=late.id)
    assert (auto.requested_by, auto.amount_fen) == (service.LATE_PAYMENT_REFUNDER, 11000)
    assert _get(stack, Refund, id=held.id).status is RefundStatus.succeeded
    assert _get(stack, Order, id=waiting.id).status is OrderStatus.partially_refunded
    assert _get(stack, PaymentAttempt, out_trade_no=ghost_no).status is AttemptStatus.paid

    # The same day again: nothing new, nothing settled twice, the settled ones now match.
    again = _only(reconcile(stack.payments, bill_date=day))
    assert (again.new_items, again.settled) == (0, 0)
    assert [item.id for item in again.items] == [item.id for item in report.items]
    assert _resolutions(again) == _resolutions(report)
    assert again.matched == 7
    assert _earned(stack, lost.order_no) == 1
    with stack.factory() as session:
        assert session.scalar(select(func.count()).where(Refund.order_id == late.id)) == 1
    runs = _runs(stack, day)
    assert [(r.status, r.statement_lines, r.matched, r.new_items, r.settled) for r in runs] == [
        ("ok", 9, 4, 6, 3),
        ("ok", 9, 7, 0, 0),
    ]

    with stack.factory() as session:
        lines = items_csv(session, day).splitlines()
    assert lines[0].startswith("bill_date,channel,account,kind,reference,order_no,our_state,")
    assert len(lines) == 7
    bumped_row = next(line for line in lines if bumped_no in line)
    assert ",80.01,80.00,open," in bumped_row
    stranger_row = next(line for line in lines if stranger_no in line)
    assert f",missing_here,{stranger_no},,,SUCCESS,,43.21,open," in stranger_row


def test_a_statement_that_cannot_be_had_records_a_failed_run_and_no_items(stack: Stack) -> None:
    day = _simulate_day(stack, days_back=2)
    _paid_order(stack)
    stack.sim.add_fault("bill", "system_error")

    report = _only(reconcile(stack.payments, bill_date=day, channel="tenpay"))

    assert report.failed
    # The v3 client reads a 5xx as such, without its body: 500 SYSTEM_ERROR is "HTTP_500".
    assert "500" in (report.error or "")
    assert (report.items, report.statement_lines, report.settled) == ([], 0, 0)
    [run] = _runs(stack, day)
    assert (run.status, run.error, run.finished_at is not None) == ("failed", report.error, True)
    # Once the statement can be had, the day reconciles.
    again = _only(reconcile(stack.payments, bill_date=day, channel="tenpay_v3"))
    assert (again.error, again.statement_lines, again.matched, again.items) == (None, 1, 1, [])
    assert [run.status for run in _runs(stack, day)] == ["failed", "ok"]


def test_v2_statements_settle_a_lost_notify(stack_v2: Stack) -> None:
    day = _simulate_day(stack_v2, days_back=1)
    _paid_order(stack_v2)
    lost, lost_no = _paid_at_channel_only(stack_v2)

    report = _only(reconcile(stack_v2.payments, bill_date=day, channel="tenpay"))

    assert report.channel == "tenpay_v2"
    assert _resolutions(report) == {("status_mismatch", lost_no): "settled"}
    assert (report.statement_lines, report.matched, report.settled) == (2, 1, 1)
    assert _get(stack_v2, Order, id=lost.id).status is OrderStatus.paid


# -- the command ------------------------------------------------------------------------------


def test_the_commands_print_findings_write_csv_and_refuse_bad_input(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tianfu.cli_support, "get_settings", lambda: stack.settings)
    day = _simulate_day(stack, days_back=3)
    _, lost_no = _paid_at_channel_only(stack)
    runner = CliRunner()
    items_path, settlement_path = tmp_path / "items.csv", tmp_path / "settlement.csv"

    result = runner.invoke(
        cli_app, ["reconcile", "--date", day.isoformat(), "--csv", str(items_path)]
    )
    assert result.exit_code == 0, result.output
    assert "1 new findings, 1 settled" in result.stdout
    assert "status_mismatch" in result.stdout
    assert lost_no in items_path.read_text(encoding="utf-8")

    result = runner.invoke(
        cli_app, ["settle", "--date", day.isoformat(), "--csv", str(settlement_path)]
    )
    assert result.exit_code == 0, result.output
    assert settlement_path.read_text(encoding="utf-8").startswith("day,merchant_id,")

    stack.sim.add_fault("bill", "system_error")
    failed = runner.invoke(cli_app, ["reconcile", "--date", day.isoformat()])
    assert failed.exit_code == 1
    assert "statement not available" in failed.stdout
    bad_input = (
        ["--date", "2026-02-30"],
        ["--date", "yesterday"],
        ["--date", day.isoformat(), "--channel", "alipay"],
    )
    for args in bad_input:
        refused = runner.invoke(cli_app, ["reconcile", *args])
        assert refused.exit_code == 2, refused.output
        assert refused.stderr.startswith("tianfu: ")
    assert runner.invoke(cli_app, ["settle", "--date", "14/03/2026"]).exit_code == 2


# -- the rules, table-style -------------------------------------------------------------------

AT = datetime(2026, 3, 14, 4, 0, tzinfo=UTC)


def _pay_line(number: str, amount_fen: int, state: str = "SUCCESS") -> StatementLine:
    return StatementLine("payment", number, f"42{number}", amount_fen, state, AT)


def _refund_line(number: str | None, amount_fen: int, state: str = "SUCCESS") -> StatementLine:
    return StatementLine("refund", "T1", "42T1", amount_fen, state, AT, out_refund_no=number)


def _books(*rows: OurPayment | OurRefund) -> Books:
    return Books(
        payments={r.out_trade_no: r for r in rows if isinstance(r, OurPayment)},
        refunds={r.out_refund_no: r for r in rows if isinstance(r, OurRefund)},
    )


def _ours(status: AttemptStatus, amount_fen: int = 100, *, on_day: bool = False) -> OurPayment:
    return OurPayment("T1", 1, status, amount_fen, on_day)


def _our_refund(status: RefundStatus, amount_fen: int = 50, *, on_day: bool = False) -> OurRefund:
    return OurRefund("T1R1", 7, 1, status, amount_fen, on_day)


# (a line, our row) -> (kind, settle_payment, settle_refund) of each finding
RULES: list[
    tuple[StatementLine | None, OurPayment | OurRefund | None, list[tuple[Kind, Any, Any]]]
] = [
    (_pay_line("T1", 100), _ours(AttemptStatus.paid), []),
    (_pay_line("T1", 100), None, [(Kind.missing_here, None, None)]),
    (_pay_line("T1", 100), _ours(AttemptStatus.prepaid), [(Kind.status_mismatch, "T1", None)]),
    (_pay_line("T1", 100), _ours(AttemptStatus.closed), [(Kind.status_mismatch, "T1", None)]),
    (_pay_line("T1", 100), _ours(AttemptStatus.paid, 101), [(Kind.amount_mismatch, None, None)]),
    # Amounts differ and we hold it unpaid: a query would refuse to apply it; people decide.
    (
        _pay_line("T1", 100),
        _ours(AttemptStatus.unknown, 99),
        [(Kind.amount_mismatch, None, None), (Kind.status_mismatch, None, None)],
    ),
    (
        _pay_line("T1", 100, "REVOKED"),
        _ours(AttemptStatus.paid),
        [(Kind.status_mismatch, None, None)],
    ),
    (_pay_line("T1", 100, "REVOKED"), _ours(AttemptStatus.closed), []),
    # Alipay's lines carry the bill's 业务类型.
    (_pay_line("T1", 100, "交易"), _ours(AttemptStatus.paid), []),
    (
        _pay_line("T1", 100, "交易"),
        _ours(AttemptStatus.prepaid),
        [(Kind.status_mismatch, "T1", None)],
    ),
    (
        _refund_line("T1R1", 50, "退款"),
        _our_refund(RefundStatus.processing),
        [(Kind.status_mismatch, None, 7)],
    ),
    (None, _ours(AttemptStatus.paid, on_day=True), [(Kind.missing_at_channel, None, None)]),
    (None, _ours(AttemptStatus.paid), []),  # named by no line, not of the day: not ours to ask
    (_refund_line("T1R1", 50), _our_refund(RefundStatus.succeeded), []),
    (_refund_line("T1R1", 50), None, [(Kind.missing_here, None, None)]),
    (_refund_line(None, 50), None, [(Kind.missing_here, None, None)]),
    (
        _refund_line("T1R1", 50),
        _our_refund(RefundStatus.pending),
        [(Kind.status_mismatch, None, 7)],
    ),
    (
        _refund_line("T1R1", 50),
        _our_refund(RefundStatus.processing),
        [(Kind.status_mismatch, None, 7)],
    ),
    (
        _refund_line("T1R1", 50),
        _our_refund(RefundStatus.closed),
        [(Kind.status_mismatch, None, None)],
    ),
    (
        _refund_line("T1R1", 50),
        _our_refund(RefundStatus.succeeded, 60),
        [(Kind.amount_mismatch, None, None)],
    ),
    (_refund_line("T1R1", 50, "PROCESSING"), _our_refund(RefundStatus.processing), []),
    (
        _refund_line("T1R1", 50, "PROCESSING"),
        _our_refund(RefundStatus.succeeded),
        [(Kind.status_mismatch, None, None)],
    ),
    (
        None,
        _our_refund(RefundStatus.succeeded, on_day=True),
        [(Kind.missing_at_channel, None, None)],
    ),
]


@pytest.mark.parametrize(("line", "ours", "expected"), RULES)
def test_the_rules_find_each_difference_and_what_can_settle_it(
    line: StatementLine | None,
    ours: OurPayment | OurRefund | None,
    expected: list[tuple[Kind, Any, Any]],
) -> None:
    matched, findings = match([line] if line else [], _books(*([ours] if ours else [])))
    assert [(f.kind, f.settle_payment, f.settle_refund) for f in findings] == expected
    assert matched == (1 if line is not None and not expected else 0)
    for finding in findings:
        assert isinstance(finding, Finding)
        assert finding.reference in ("T1", "T1R1", "T1:refund")
