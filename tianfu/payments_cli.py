"""`tianfu jobs run` and `tianfu payments …`: the payment housekeeping and an operator's refund.

Refunds are asked for here (and, once the partner portal exists, from its pages); they go to the
channel with a number written first, so running the same command twice refunds once.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payments import service
from payments.flows import Payments
from payments.jobs import run_due
from tianfu.cli_support import fail, settings_or_fail
from tianfu.db import engine_from_settings, make_session_factory
from tianfu.errors import TianfuError
from tianfu.wiring import build_payments, housekeeping_jobs, outbox_handlers

jobs_app = typer.Typer(help="Housekeeping jobs (also run inside `tianfu serve`).")
payments_app = typer.Typer(help="Orders and refunds.")
console = Console(stderr=True)


def _payments() -> Payments:
    settings = settings_or_fail()
    payments = build_payments(settings, make_session_factory(engine_from_settings(settings)))
    if payments is None:
        fail("no payment channel is configured (TIANFU_TENPAY_MCHID and its keys)")
    return payments


@jobs_app.command("run")
def jobs_run(
    once: Annotated[bool, typer.Option(help="One round, then exit (for cron)")] = False,
    interval_s: Annotated[float, typer.Option(min=0.5, help="Seconds between rounds")] = 10.0,
) -> None:
    """Query quiet payments, close unpaid orders past their time, push refunds, send notices,
    tidy expired seat holds.
    Safe to run next to `tianfu serve` and in several copies: each step is claimed in the
    database before it is done."""
    settings = settings_or_fail()
    payments = _payments()
    wechat_client = None
    if settings.wechat.appid and settings.wechat.appsecret:
        from lbs.client import WeChatClient

        wechat_client = WeChatClient(settings.wechat, payments.session_factory)
    handlers = outbox_handlers(settings, wechat_client)
    while True:
        report = run_due(payments, handlers=handlers, housekeeping=housekeeping_jobs())
        console.print(
            f"queried {report.queried}, closed {report.closed}, refunds {report.refunds_pushed}, "
            f"notices {report.delivered}, tidied {report.housekept}"
        )
        for problem in report.problems:
            console.print(f"  [yellow]{problem}[/yellow]")
        if once:
            return
        time.sleep(interval_s)


@payments_app.command("show")
def payments_show(order_no: Annotated[str, typer.Argument(help="The order number, TF…")]) -> None:
    """An order with its payment attempts and refunds."""
    payments = _payments()
    with payments.session_factory() as session:
        try:
            order = service.get_order(session, order_no)
        except TianfuError as exc:
            fail(exc.message)
        console.print(
            f"{order.order_no} {order.status.value}: total {order.total_fen} fen, discount "
            f"{order.discount_fen}, points {order.points_fen}, payable {order.payable_fen}, "
            f"refunded {order.refunded_fen}"
        )
        table = Table("number", "channel", "status", "amount_fen", "channel_state", "error")
        for attempt in service.attempts_of(session, order.id):
            table.add_row(
                attempt.out_trade_no,
                f"{attempt.channel}/{attempt.account}",
                attempt.status.value,
                str(attempt.amount_fen),
                attempt.channel_state,
                attempt.error_code,
            )
        for refund in service.refunds_of(session, order.id):
            table.add_row(
                refund.out_refund_no,
                "refund",
                refund.status.value,
                str(refund.amount_fen),
                refund.channel_state,
                refund.error_code,
            )
        console.print(table)


@payments_app.command("refund")
def payments_refund(
    order_no: Annotated[str, typer.Argument(help="The order number, TF…")],
    amount_fen: Annotated[int, typer.Option(min=1, help="How much, in fen")],
    key: Annotated[str, typer.Option(help="Idempotency key: the same key refunds once")],
    reason: Annotated[str, typer.Option(help="Shown to the payer")] = "",
    by: Annotated[str, typer.Option(help="Who asks (kept on the refund)")] = "operator",
) -> None:
    """Refund part or all of a paid order."""
    payments = _payments()
    try:
        refund = payments.refund(
            order_no=order_no,
            amount_fen=amount_fen,
            idempotency_key=key,
            reason=reason,
            requested_by=by,
        )
    except TianfuError as exc:
        fail(exc.message)
    console.print(f"{refund.out_refund_no}: {refund.status.value} ({refund.amount_fen} fen)")
