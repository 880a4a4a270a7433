"""Daily reconciliation (`tianfu reconcile`): each channel account's statement for one Beijing
day against our books (spec §1.10, §4 guarantee 8; amounts in fen, §6).

The rules are in `payments.reconcile_rules`; this module loads our books, records what the
rules find and settles what can be settled. Every difference becomes a `ReconciliationItem`,
inserted with ON CONFLICT DO NOTHING on (bill_date, channel, account, kind, reference), so
running a day again adds nothing. Settling goes through the flows that already apply channel
news exactly once: a payment is *queried* (`Payments.settle`), a refund *asked about*
(`Payments.push_refund`). The statement is never applied directly: it says what to ask about,
and the answer is what counts. Everything else is left open for people.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import InstrumentedAttribute, Session

from payments import service
from payments.channels import ChannelError, PaymentChannel, StatementLine
from payments.errors import AmountMismatchError, ChannelNotConfiguredError
from payments.flows import Payments, family_of
from payments.models import (
    AttemptStatus,
    Order,
    PaymentAttempt,
    ReconciliationItem,
    ReconciliationRun,
    Refund,
    RefundStatus,
)
from payments.reconcile_rules import Books, Finding, OurPayment, OurRefund, match
from payments.settlement import beijing_day_bounds, yuan
from tianfu.csvcells import text_cell
from tianfu.db import upsert_insert
from tianfu.errors import TianfuError

_ITEMS = cast(Table, ReconciliationItem.__table__)
_RUNS = cast(Table, ReconciliationRun.__table__)
_ITEM_KEY = ["bill_date", "channel", "account", "kind", "reference"]
_IN_CHUNK = 500  # numbers per IN (…): well inside both backends' bind-parameter limits
OPEN, SETTLED = "open", "settled"


# -- our books --------------------------------------------------------------------------------


def _in_family(column: InstrumentedAttribute[str], family: str) -> ColumnElement[bool]:
    # An account keeps its statement when it moves from API v2 to v3: `tenpay_v2` attempts
    # of the same mchid are in the `tenpay_v3` account's bill.
    return or_(column == family, column.startswith(f"{family}_", autoescape=True))


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i : i + _IN_CHUNK]


def load_books(
    session: Session, *, family: str, account: str, bill_date: date, lines: Sequence[StatementLine]
) -> Books:
    """Attempts and refunds of this account that the day must show, plus every one the
    statement names, whatever its date or status here."""
    start, end = beijing_day_bounds(bill_date)
    ours = and_(_in_family(PaymentAttempt.channel, family), PaymentAttempt.account == account)
    a = PaymentAttempt
    payment_columns = select(a.out_trade_no, a.order_id, a.status, a.amount_fen)
    named_payments = sorted({line.out_trade_no for line in lines if line.kind == "payment"})
    payments: dict[str, OurPayment] = {}
    for chunk in _chunks(named_payments):
        for number, order_id, status, amount in session.execute(
            payment_columns.where(a.out_trade_no.in_(chunk))
        ):
            payments[number] = OurPayment(number, order_id, status, amount, on_day=False)
    day_payments = payment_columns.where(
        ours, a.status == AttemptStatus.paid, a.paid_at >= start, a.paid_at < end
    )
    for number, order_id, status, amount in session.execute(day_payments):
        payments[number] = OurPayment(number, order_id, status, amount, on_day=True)

    r = Refund
    refund_columns = select(r.out_refund_no, r.id, r.order_id, r.status, r.amount_fen)
    named_refunds = sorted({line.out_refund_no for line in lines if line.out_refund_no})
    refunds: dict[str, OurRefund] = {}
    for chunk in _chunks(named_refunds):
        for number, refund_id, order_id, state, amount in session.execute(
            refund_columns.where(r.out_refund_no.in_(chunk))
        ):
            refunds[number] = OurRefund(number, refund_id, order_id, state, amount, on_day=False)
    day_refunds = refund_columns.join(a, a.id == r.attempt_id).where(
        ours, r.status == RefundStatus.succeeded, r.succeeded_at >= start, r.succeeded_at < end
    )
    for number, refund_id, order_id, state, amount in session.execute(day_refunds):
        refunds[number] = OurRefund(number, refund_id, order_id, state, amount, on_day=True)
    return Books(payments=payments, refunds=refunds)


# -- running it -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconciliationReport:
    channel: str
    account: str
    bill_date: date
    statement_lines: int
    matched: int
    items: list[ReconciliationItem]  # new and earlier ones, for this account and day
    new_items: int
    settled: int
    error: str | None = None  # the statement could not be had: nothing was compared

    @property
    def failed(self) -> bool:
        return self.error is not None


def accounts_to_reconcile(payments: Payments, wanted: str | None) -> list[PaymentChannel]:
    """Every configured account, or those of one channel name (`tenpay_v3`) or family
    (`tenpay`); one per (family, account), as the channel keeps one statement per account."""
    found: list[PaymentChannel] = []
    seen: set[tuple[str, str]] = set()
    for channel in payments.channels.all():
        key = (family_of(channel.name), channel.account)
        if wanted not in (None, channel.name, key[0]) or key in seen:
            continue
        seen.add(key)
        found.append(channel)
    if wanted is not None and not found:
        raise ChannelNotConfiguredError(f"支付通道 {wanted} 未配置")
    return found


def reconcile(
    payments: Payments, *, bill_date: date, channel: str | None = None
) -> list[ReconciliationReport]:
    """Reconcile one Beijing day for every configured account (or one channel's). An account
    whose statement cannot be had gets a failed run, and the next account goes on."""
    return [
        _reconcile_account(payments, account, bill_date)
        for account in accounts_to_reconcile(payments, channel)
    ]


def _reconcile_account(
    payments: Payments, channel: PaymentChannel, bill_date: date
) -> ReconciliationReport:
    with payments.session_factory.begin() as session:
        run_id = session.execute(
            _RUNS.insert()
            .values(
                bill_date=bill_date,
                channel=channel.name,
                account=channel.account,
                status="running",  # until finished: a run that died midway shows as one
                started_at=payments.clock(),
            )
            .returning(_RUNS.c.id)
        ).scalar_one()
    try:
        statement = channel.download_statement(bill_date)
    except ChannelError as exc:
        error = (f"{exc.code}: {exc.message}" if exc.code else exc.message)[:255]
        _finish_run(payments, run_id, status="failed", error=error)
        return ReconciliationReport(
            channel=channel.name,
            account=channel.account,
            bill_date=bill_date,
            statement_lines=0,
            matched=0,
            items=_items(payments, channel, bill_date),
            new_items=0,
            settled=0,
            error=error,
        )
    with payments.session_factory() as session:
        books = load_books(
            session,
            family=family_of(channel.name),
            account=channel.account,
            bill_date=bill_date,
            lines=statement.lines,
        )
    matched, findings = match(statement.lines, books)
    new_items = _record(payments, channel, bill_date, findings)
    settled = sum(
        _settle(payments, channel, bill_date, finding)
        for finding in findings
        if finding.settle_payment is not None or finding.settle_refund is not None
    )
    _finish_run(
        payments,
        run_id,
        status="ok",
        statement_lines=len(statement.lines),
        matched=matched,
        new_items=new_items,
        settled=settled,
    )
    return ReconciliationReport(
        channel=channel.name,
        account=channel.account,
        bill_date=bill_date,
        statement_lines=len(statement.lines),
        matched=matched,
        items=_items(payments, channel, bill_date),
        new_items=new_items,
        settled=settled,
    )


def _finish_run(payments: Payments, run_id: int, **values: Any) -> None:
    with payments.session_factory.begin() as session:
        session.execute(
            update(_RUNS).where(_RUNS.c.id == run_id).values(finished_at=payments.clock(), **values)
        )


def _item_key(channel: PaymentChannel, bill_date: date, finding: Finding) -> ColumnElement[bool]:
    return and_(
        _ITEMS.c.bill_date == bill_date,
        _ITEMS.c.channel == channel.name,
        _ITEMS.c.account == channel.account,
        _ITEMS.c.kind == finding.kind.value,
        _ITEMS.c.reference == finding.reference[:64],
    )


def _record(
    payments: Payments, channel: PaymentChannel, bill_date: date, findings: Sequence[Finding]
) -> int:
    """Insert the findings not recorded before; how many were new."""
    new = 0
    with payments.session_factory.begin() as session:
        insert = upsert_insert(session.get_bind().dialect.name)(_ITEMS)
        for finding in findings:
            row = session.execute(
                insert.values(
                    bill_date=bill_date,
                    channel=channel.name,
                    account=channel.account,
                    kind=finding.kind.value,
                    reference=finding.reference[:64],
                    order_id=finding.order_id,
                    our_state=finding.our_state[:32],
                    channel_state=finding.channel_state[:32],
                    our_amount_fen=finding.our_amount_fen,
                    channel_amount_fen=finding.channel_amount_fen,
                    resolution=OPEN,
                    detail=finding.detail[:255],
                    created_at=payments.clock(),
                )
                .on_conflict_do_nothing(index_elements=_ITEM_KEY)
                .returning(_ITEMS.c.id)
            ).first()
            new += row is not None
    return new


def _settle(payments: Payments, channel: PaymentChannel, bill_date: date, finding: Finding) -> bool:
    """Settle an open item through the channel; True when this call settled it. An item a
    failed earlier run left open is tried again; one settled before no longer mismatches."""
    key = _item_key(channel, bill_date, finding)
    with payments.session_factory() as session:
        if session.execute(select(_ITEMS.c.resolution).where(key)).scalar_one() != OPEN:
            return False
    if finding.settle_payment is not None:
        done, detail = _settle_payment(payments, finding.settle_payment)
    else:
        assert finding.settle_refund is not None
        done, detail = _settle_refund(payments, finding.settle_refund)
    values: dict[str, Any] = {"detail": detail[:255]}
    if done:
        values |= {"resolution": SETTLED, "resolved_at": payments.clock()}
    with payments.session_factory.begin() as session:
        result = session.execute(
            update(_ITEMS).where(key, _ITEMS.c.resolution == OPEN).values(**values)
        )
    assert isinstance(result, CursorResult)
    return done and result.rowcount == 1


def _settle_payment(payments: Payments, out_trade_no: str) -> tuple[bool, str]:
    try:
        applied = payments.settle(out_trade_no)
    except ChannelError as exc:
        return False, f"query failed: {exc.code} {exc.message}"
    except (TianfuError, AmountMismatchError) as exc:
        return False, str(exc)
    if applied.attempt_status is not AttemptStatus.paid:
        return False, f"asked again, the channel does not say paid ({applied.attempt_status})"
    with payments.session_factory() as session:
        attempt = service.get_attempt(session, out_trade_no)
        order = session.get_one(Order, attempt.order_id)
        if order.paid_attempt_id == attempt.id:
            return True, f"paid on query; order {order.order_no} {order.status.value}"
        # The order was closed (or paid by another attempt) first: the service refunds it.
        return True, f"paid after order {order.order_no} was {order.status.value}: refunded"


def _settle_refund(payments: Payments, refund_id: int) -> tuple[bool, str]:
    try:
        payments.push_refund(refund_id)  # a processing refund is queried, a pending one re-sent
    except TianfuError as exc:
        return False, exc.message
    with payments.session_factory() as session:
        refund = session.get_one(Refund, refund_id)
        if refund.status is RefundStatus.succeeded:
            return True, "refund succeeded on query"
        return False, f"still {refund.status.value} {refund.error_code}".rstrip()


def _items(
    payments: Payments, channel: PaymentChannel, bill_date: date
) -> list[ReconciliationItem]:
    with payments.session_factory() as session:
        items = list(
            session.scalars(
                select(ReconciliationItem)
                .where(
                    ReconciliationItem.bill_date == bill_date,
                    ReconciliationItem.channel == channel.name,
                    ReconciliationItem.account == channel.account,
                )
                .order_by(ReconciliationItem.id)
            )
        )
        session.expunge_all()
    return items


CSV_HEADER = (
    "bill_date",
    "channel",
    "account",
    "kind",
    "reference",
    "order_no",
    "our_state",
    "channel_state",
    "our_amount_yuan",
    "channel_amount_yuan",
    "resolution",
    "detail",
    "created_at",
    "resolved_at",
)


def items_csv(session: Session, bill_date: date) -> str:
    """Every item of a day, all accounts; amounts in yuan from integer fen (spec §6)."""
    rows = session.execute(
        select(ReconciliationItem, Order.order_no)
        .outerjoin(Order, Order.id == ReconciliationItem.order_id)
        .where(ReconciliationItem.bill_date == bill_date)
        .order_by(ReconciliationItem.channel, ReconciliationItem.account, ReconciliationItem.id)
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for item, order_no in rows:
        writer.writerow(
            [
                item.bill_date.isoformat(),
                item.channel,
                item.account,
                item.kind,
                item.reference,
                order_no or "",
                item.our_state,
                item.channel_state,
                _yuan_or_blank(item.our_amount_fen),
                _yuan_or_blank(item.channel_amount_fen),
                item.resolution,
                text_cell(item.detail),
                _iso(item.created_at),
                _iso(item.resolved_at),
            ]
        )
    return out.getvalue()


def _yuan_or_blank(fen: int | None) -> str:
    return "" if fen is None else yuan(fen)


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()
