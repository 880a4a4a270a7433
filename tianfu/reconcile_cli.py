"""`tianfu reconcile` and `tianfu settle`: the day's statements against our books, and what the
bank owes each merchant for the day. Both are safe to run again for the same day: the first adds
no item twice and settles nothing twice, the second recomputes the same rows.

Findings are the output, not a failure: `reconcile` exits 0 with findings, 1 when a statement
could not be had (so cron notices), 2 on bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from payments.flows import Payments
from payments.models import MerchantSettlement
from payments.reconcile import ReconciliationReport, items_csv, reconcile
from payments.settlement import settle_day, settlements_csv, yuan
from tianfu.cli_support import fail, settings_or_fail
from tianfu.db import engine_from_settings, make_session_factory, session_scope
from tianfu.errors import TianfuError
from tianfu.orm import utcnow
from tianfu.wiring import build_payments

# Piped to a file or a log, rich would squeeze tables into 80 columns and break every number.
PIPED_WIDTH = 200


def _console() -> Console:
    terminal = Console()
    return terminal if terminal.is_terminal else Console(width=PIPED_WIDTH)


console = _console()


DateOption = Annotated[str, typer.Option("--date", help="The Beijing day, YYYY-MM-DD")]
CsvOption = Annotated[Path | None, typer.Option("--csv", help="Also write the rows to this CSV")]


def _day(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()  # noqa: DTZ007 - a calendar day
    except ValueError:
        fail(f"--date must be YYYY-MM-DD, not {value!r}")


def _payments(engine: Engine) -> Payments:
    payments = build_payments(settings_or_fail(), make_session_factory(engine))
    if payments is None:
        fail("no payment channel is configured (TIANFU_TENPAY_MCHID and its keys)")
    return payments


def _print_report(report: ReconciliationReport) -> None:
    name = f"{report.channel}/{report.account} {report.bill_date}"
    if report.error is not None:
        console.print(f"[red]{name}: statement not available: {report.error}[/red]", soft_wrap=True)
    else:
        console.print(
            f"{name}: {report.statement_lines} statement lines, {report.matched} matched, "
            f"{report.new_items} new findings, {report.settled} settled",
            soft_wrap=True,  # one line per account, whatever the terminal's width
        )
    if not report.items:
        return
    table = Table(
        *["kind", "reference", "ours", "channel", "ours_¥", "channel_¥", "resolution", "detail"]
    )
    for item in report.items:
        table.add_row(
            item.kind,
            item.reference,
            item.our_state,
            item.channel_state,
            "" if item.our_amount_fen is None else yuan(item.our_amount_fen),
            "" if item.channel_amount_fen is None else yuan(item.channel_amount_fen),
            item.resolution,
            item.detail,
        )
    console.print(table)


def _print_settlements(day: date, rows: Sequence[MerchantSettlement]) -> None:
    header = "merchant orders gross_¥ coupons_¥ points_¥ paid_¥ refunds_¥ fees_¥ net_¥"
    table = Table(*header.split(), title=f"settlement {day}")
    for row in rows:
        figures = [
            row.gross_fen,
            row.merchant_discount_fen,
            row.bank_discount_fen,
            row.paid_fen,
            row.refunds_fen,
            row.fee_fen,
            row.net_fen,
        ]
        table.add_row(str(row.merchant_id), str(row.orders), *map(yuan, figures))
    console.print(table)


def reconcile_command(
    day: DateOption,
    channel: Annotated[
        str | None, typer.Option(help="Only this channel: tenpay, alipay, tenpay_v3 …")
    ] = None,
    csv_path: CsvOption = None,
) -> None:
    """Compare each channel account's statement for a day with our books; settle what the
    channel can confirm, list the rest (every account; or one channel's)."""
    bill_date = _day(day)
    engine = engine_from_settings(settings_or_fail())
    try:
        payments = _payments(engine)
        try:
            reports = reconcile(payments, bill_date=bill_date, channel=channel)
        except TianfuError as exc:
            fail(exc.message)
        for report in reports:
            _print_report(report)
        if csv_path is not None:
            with payments.session_factory() as session:
                csv_path.write_text(items_csv(session, bill_date), encoding="utf-8")
            console.print(f"wrote {csv_path}")
    finally:
        engine.dispose()
    if any(report.failed for report in reports):
        raise typer.Exit(1)


def settle_command(day: DateOption, csv_path: CsvOption = None) -> None:
    """Compute what the bank owes each merchant for a day (recomputing replaces the day's rows)."""
    settle_date = _day(day)
    settings = settings_or_fail()
    engine = engine_from_settings(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            try:
                rows = settle_day(
                    session, day=settle_date, fee_bp=settings.payments.channel_fee_bp, now=utcnow()
                )
            except ValueError as exc:
                fail(str(exc))
            _print_settlements(settle_date, rows)
            if csv_path is not None:
                csv_path.write_text(settlements_csv(session, day=settle_date), encoding="utf-8")
                console.print(f"wrote {csv_path}")
    finally:
        engine.dispose()
