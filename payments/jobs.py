"""Housekeeping: what keeps every order's fate known when notifies are late, lost or refused.

`run_due` does one round: queries attempts that have had no news for a while, closes orders past
their time (query first, then close at the channel, then here), pushes refunds that are pending
or in doubt, delivers the outbox, and runs the housekeeping other packages hand in (the
cinema's expired holds). Every step is safe to run in several workers at once: the
state moves are conditional, and work that must happen once (a message to the user, a refund
call) is leased with a conditional UPDATE before it is done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from payments.channels import ChannelError
from payments.flows import Payments
from payments.models import (
    AttemptStatus,
    Order,
    OrderStatus,
    OutboxMessage,
    OutboxStatus,
    PaymentAttempt,
    Refund,
    RefundStatus,
)
from tianfu.errors import TianfuError

logger = logging.getLogger(__name__)

BATCH = 100
LEASE_S = 60  # how long a worker owns a refund or outbox message it is working on
_OUTBOX = cast(Table, OutboxMessage.__table__)
_REFUNDS = cast(Table, Refund.__table__)

# Delivers one outbox message; raises to have it retried later.
OutboxHandler = Callable[[Session, OutboxMessage], None]
# Tidies up in one transaction at the given time and says how many rows it changed; safe in
# several workers at once (conditional statements only).
Housekeeping = Callable[[Session, datetime], int]


@dataclass
class JobReport:
    queried: int = 0
    closed: int = 0
    refunds_pushed: int = 0
    delivered: int = 0
    housekept: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.queried + self.closed + self.refunds_pushed + self.delivered + self.housekept


def _lease(session: Session, table: Table, row_id: int, now: datetime) -> bool:
    """Take a row's work for LEASE_S, if no other worker took it since we looked."""
    result = session.execute(
        update(table)
        .where(table.c.id == row_id, table.c.next_try_at <= now)
        .values(next_try_at=now + timedelta(seconds=LEASE_S))
    )
    assert isinstance(result, CursorResult)
    return int(result.rowcount) == 1


def run_due(
    payments: Payments,
    *,
    handlers: dict[str, OutboxHandler] | None = None,
    housekeeping: Mapping[str, Housekeeping] | None = None,
) -> JobReport:
    report = JobReport()
    _query_quiet_attempts(payments, report)
    _close_expired_orders(payments, report)
    _push_refunds(payments, report)
    _deliver_outbox(payments, handlers or {}, report)
    _housekeep(payments, housekeeping or {}, report)
    return report


def _housekeep(
    payments: Payments, housekeeping: Mapping[str, Housekeeping], report: JobReport
) -> None:
    for name, job in housekeeping.items():
        try:
            with payments.session_factory.begin() as session:
                report.housekept += job(session, payments.clock())
        except Exception as exc:  # one job's failure must not keep the others from running
            logger.warning("housekeeping %s: %s", name, exc)
            report.problems.append(f"{name}: {exc}")


def _query_quiet_attempts(payments: Payments, report: JobReport) -> None:
    now = payments.clock()
    quiet_since = now - timedelta(seconds=payments.settings.query_after_s)
    with payments.session_factory() as session:
        numbers = session.scalars(
            select(PaymentAttempt.out_trade_no)
            .where(
                PaymentAttempt.status.in_([AttemptStatus.prepaid, AttemptStatus.unknown]),
                or_(
                    PaymentAttempt.last_queried_at.is_(None),
                    PaymentAttempt.last_queried_at <= quiet_since,
                ),
                PaymentAttempt.updated_at <= quiet_since,
            )
            .order_by(PaymentAttempt.id)
            .limit(BATCH)
        ).all()
    for out_trade_no in numbers:
        try:
            payments.settle(out_trade_no)
            report.queried += 1
        except (ChannelError, TianfuError) as exc:
            report.problems.append(f"query {out_trade_no}: {exc}")


def _close_expired_orders(payments: Payments, report: JobReport) -> None:
    now = payments.clock()
    with payments.session_factory() as session:
        numbers = session.scalars(
            select(Order.order_no)
            .where(
                Order.status.in_([OrderStatus.created, OrderStatus.paying]),
                Order.expires_at <= now,
            )
            .order_by(Order.expires_at)
            .limit(BATCH)
        ).all()
    for order_no in numbers:
        try:
            if payments.close_if_expired(order_no):
                report.closed += 1
        except (ChannelError, TianfuError) as exc:
            report.problems.append(f"close {order_no}: {exc}")


def _push_refunds(payments: Payments, report: JobReport) -> None:
    now = payments.clock()
    quiet_since = now - timedelta(seconds=payments.settings.query_after_s)
    with payments.session_factory() as session:
        due = session.scalars(
            select(Refund.id)
            .where(
                or_(
                    (Refund.status == RefundStatus.pending) & (Refund.next_try_at <= now),
                    (Refund.status == RefundStatus.processing)
                    & (Refund.updated_at <= quiet_since)
                    & (Refund.next_try_at <= now),
                ),
                Refund.tries < payments.settings.max_tries,
            )
            .order_by(Refund.id)
            .limit(BATCH)
        ).all()
    for refund_id in due:
        with payments.session_factory.begin() as session:
            if not _lease(session, _REFUNDS, refund_id, now):
                continue
        try:
            payments.push_refund(refund_id)
            report.refunds_pushed += 1
        except (ChannelError, TianfuError) as exc:
            report.problems.append(f"refund {refund_id}: {exc}")


def _deliver_outbox(
    payments: Payments, handlers: dict[str, OutboxHandler], report: JobReport
) -> None:
    now = payments.clock()
    with payments.session_factory() as session:
        due = session.scalars(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == OutboxStatus.pending,
                OutboxMessage.next_try_at <= now,
                OutboxMessage.topic.in_(list(handlers)),
            )
            .order_by(OutboxMessage.id)
            .limit(BATCH)
        ).all()
    for message_id in due:
        with payments.session_factory.begin() as session:
            if not _lease(session, _OUTBOX, message_id, now):
                continue
        try:
            with payments.session_factory() as session:
                message = session.get_one(OutboxMessage, message_id)
                session.expunge(message)
            # A fresh transaction whose first statement is the handler's own: a handler may need
            # to commit elsewhere first (the WeChat token), which SQLite's lock would not allow
            # after this session had read.
            with payments.session_factory.begin() as session:
                handlers[message.topic](session, message)
                session.execute(
                    update(_OUTBOX)
                    .where(_OUTBOX.c.id == message_id)
                    .values(status=OutboxStatus.done, done_at=payments.clock())
                )
            report.delivered += 1
        except Exception as exc:  # any failure: try again later, and give up after max_tries
            logger.warning("outbox %s: %s", message_id, exc)
            report.problems.append(f"outbox {message_id}: {exc}")
            _retry_later(payments, message_id, str(exc))


def _retry_later(payments: Payments, message_id: int, error: str) -> None:
    now = payments.clock()
    with payments.session_factory.begin() as session:
        message = session.get_one(OutboxMessage, message_id)
        message.tries += 1
        message.last_error = error[:255]
        wait = min(payments.settings.retry_base_s * 2**message.tries, payments.settings.retry_max_s)
        message.next_try_at = now + timedelta(seconds=wait)
        if message.tries >= payments.settings.max_tries:
            message.status = OutboxStatus.dead


class JobScheduler:
    """Runs `run_due` every `interval_s` in a daemon thread (inside `tianfu serve`)."""

    def __init__(
        self,
        payments: Payments,
        *,
        interval_s: float,
        handlers: dict[str, OutboxHandler] | None = None,
        housekeeping: Mapping[str, Housekeeping] | None = None,
    ) -> None:
        self._payments = payments
        self._interval_s = interval_s
        self._handlers = handlers
        self._housekeeping = housekeeping
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="payment-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                report = run_due(
                    self._payments, handlers=self._handlers, housekeeping=self._housekeeping
                )
                if report.total or report.problems:
                    logger.info("payment jobs: %s", report)
            except Exception:  # a bad round must not stop the next one
                logger.exception("payment jobs round failed")
