"""The simulator's trade bill: `alipay.data.dataservice.bill.downloadurl.query` answers a URL on
the simulator, which serves the day's details drawn from its own ledger (spec §5: exact for
reconciliation tests). The file format is `payments.alipay.bill`'s.

The file is made when its URL is asked for and kept under a random token, as Alipay's URL is a
snapshot; unlike Alipay's (valid 30 seconds) it does not expire until `/sim/reset`.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from payments.alipay.bill import KIND_REFUND, KIND_TRADE, BillRow, render_bill
from payments.alipay.sim_config import AlipaySimConfig
from payments.alipay.sim_ledger import Ledger, beijing_date
from payments.alipay.sim_state import AlipaySimState
from payments.alipay.sim_trades import Refund, Trade
from payments.alipay.sim_wire import Call, GatewayError, invalid

DOWNLOAD_PATH = "/downloadBillFile.resource"
_MONTH_RE = re.compile(r"[0-9]{4}-[0-9]{2}")
_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

router = APIRouter()


def _fee_fen(config: AlipaySimConfig, amount_fen: int) -> int:
    return int((Decimal(amount_fen) * config.fee_rate).quantize(Decimal(1), ROUND_HALF_UP))


def _payment_row(config: AlipaySimConfig, trade: Trade) -> BillRow:
    assert trade.paid_at is not None
    return BillRow(
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        kind=KIND_TRADE,
        subject=trade.request.subject,
        created_at=trade.gmt_create,
        finished_at=trade.paid_at,
        buyer_account=trade.buyer_logon_id or "",
        order_amount_fen=trade.amount_fen,
        received_fen=trade.amount_fen,
        service_fee_fen=-_fee_fen(config, trade.amount_fen),
    )


def _refund_row(config: AlipaySimConfig, refund: Refund, trade: Trade) -> BillRow:
    return BillRow(
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        kind=KIND_REFUND,
        subject=trade.request.subject,
        created_at=trade.gmt_create,
        finished_at=refund.refunded_at,
        buyer_account=trade.buyer_logon_id or "",
        order_amount_fen=trade.amount_fen,
        received_fen=-refund.amount_fen,
        out_request_no=refund.out_request_no,
        service_fee_fen=_fee_fen(config, refund.amount_fen),
        remark=refund.reason,
    )


def bill_rows(config: AlipaySimConfig, ledger: Ledger, bill_date: date) -> list[BillRow]:
    """Payments and refunds of one Beijing day, in the order they happened."""
    paid, refunded = ledger.day(bill_date)
    rows = [_payment_row(config, trade) for trade in paid]
    rows += [_refund_row(config, refund, trade) for refund, trade in refunded]
    rows.sort(key=lambda row: row.finished_at)
    return rows


def bill_text(sim: AlipaySimState, bill_date: date) -> str:
    rows = bill_rows(sim.config, sim.ledger, bill_date)
    return render_bill(
        rows, account=sim.config.seller_id, bill_date=bill_date, exported_at=sim.now()
    )


def _not_exist() -> GatewayError:
    return GatewayError("40004", "isp.bill_not_exist", "账单不存在")


def bill_download_url(call: Call) -> dict[str, Any]:
    """bill_type=trade, bill_date yyyy-MM-dd. Monthly bills and signcustomer bills are not
    kept; a day after the simulator's today has no bill yet."""
    bill_type = call.text("bill_type", required=True, max_len=16)
    text = call.text("bill_date", required=True, max_len=10)
    if bill_type not in ("trade", "signcustomer"):
        raise invalid("bill_type", "（应为 trade 或 signcustomer）")
    if not _DAY_RE.fullmatch(text) and not _MONTH_RE.fullmatch(text):
        raise invalid("bill_date", "（格式为 yyyy-MM-dd 或 yyyy-MM）")
    try:
        bill_date = date.fromisoformat(text) if _DAY_RE.fullmatch(text) else None
    except ValueError:
        raise invalid("bill_date") from None
    sim = call.sim
    if bill_type != "trade" or bill_date is None or bill_date > beijing_date(sim.now()):
        raise _not_exist()
    day = f"{bill_date:%Y%m%d}"
    name = f"{sim.config.seller_id}0156_{day}_业务明细.csv"
    token = sim.keep_bill_file(name, bill_text(sim, bill_date))
    base = str(call.request.base_url).rstrip("/")
    url = f"{base}{DOWNLOAD_PATH}?bizType=trade&bizDates={day}&token={token}"
    return {"bill_download_url": url}


@router.get(DOWNLOAD_PATH)
def download_bill(request: Request) -> Response:
    """The file itself: unsigned, as Alipay's download is (the URL carries the token)."""
    sim: AlipaySimState = request.app.state.sim
    kept = sim.bill_file(request.query_params.get("token", ""))
    if kept is None:
        return Response("账单不存在或链接已失效", status_code=404, media_type="text/plain")
    name, content = kept
    disposition = f"attachment; filename*=UTF-8''{quote(name)}"
    return Response(
        content.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )
