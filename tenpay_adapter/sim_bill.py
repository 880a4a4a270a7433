"""The simulator's trade bill for one Beijing day, drawn from its own ledger so reconciliation
tests are exact (spec §1.10, §5): one row per payment, one row per completed refund."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from tenpay_adapter.bill import BillRow, render_bill
from tenpay_adapter.sim_config import TenpaySimConfig
from tenpay_adapter.sim_ledger import Ledger, Refund, Trade

BILL_TYPES = ("ALL", "SUCCESS", "REFUND")
_CENT = Decimal("0.01")


def _fee(config: TenpaySimConfig, amount_fen: int) -> Decimal:
    # WeChat charges whole fen, shown with five decimals: 88.88 × 0.6% = 0.53328 → 0.53000.
    return (Decimal(amount_fen) / 100 * config.fee_rate).quantize(_CENT, ROUND_HALF_UP)


def _text(value: str) -> str:
    # A backtick or a line break would split the row; WeChat's own files never carry them.
    return value.replace("`", "'").replace("\r", " ").replace("\n", " ")


def _raw(config: TenpaySimConfig, trade: Trade, *, refund_type: str = "") -> dict[str, str]:
    return {
        "付款银行": config.bank_type,
        "商品名称": _text(trade.request.description),
        "商户数据包": _text(trade.request.attach),
        "费率": f"{config.fee_rate * 100:.2f}%",
        "退款类型": refund_type,
    }


def _payment_row(config: TenpaySimConfig, trade: Trade) -> BillRow:
    assert trade.paid_at is not None
    return BillRow(
        traded_at=trade.paid_at,
        appid=config.appid,
        mchid=config.mchid,
        transaction_id=trade.transaction_id or "",
        out_trade_no=trade.out_trade_no,
        openid=trade.payer_openid or "",
        trade_type=trade.request.trade_type,
        trade_state="SUCCESS",
        amount_fen=trade.amount_fen,
        coupon_fen=0,
        refund_id="",
        out_refund_no="",
        refund_fen=0,
        refund_state="",
        fee_yuan=_fee(config, trade.amount_fen),
        order_amount_fen=trade.amount_fen,
        requested_refund_fen=0,
        raw=_raw(config, trade),
    )


def _refund_row(config: TenpaySimConfig, refund: Refund, trade: Trade) -> BillRow:
    assert refund.success_at is not None
    return BillRow(
        traded_at=refund.success_at,
        appid=config.appid,
        mchid=config.mchid,
        transaction_id=refund.transaction_id,
        out_trade_no=refund.out_trade_no,
        openid=trade.payer_openid or "",
        trade_type=trade.request.trade_type,
        trade_state="REFUND",
        amount_fen=0,
        coupon_fen=0,
        refund_id=refund.refund_id,
        out_refund_no=refund.out_refund_no,
        refund_fen=refund.amount_fen,
        refund_state=refund.state,
        fee_yuan=-_fee(config, refund.amount_fen),
        order_amount_fen=trade.amount_fen,
        requested_refund_fen=refund.amount_fen,
        raw=_raw(config, trade, refund_type="ORIGINAL"),
    )


def bill_text(
    config: TenpaySimConfig, ledger: Ledger, bill_date: date, bill_type: str
) -> str | None:
    """The bill file, or None when there is nothing to bill ("No Bill Exist")."""
    paid, refunded = ledger.day(bill_date)
    rows: list[BillRow] = []
    if bill_type in ("ALL", "SUCCESS"):
        rows += [_payment_row(config, trade) for trade in paid]
    if bill_type in ("ALL", "REFUND"):
        rows += [_refund_row(config, refund, trade) for refund, trade in refunded]
    if not rows:
        return None
    rows.sort(key=lambda row: row.traded_at)
    return render_bill(rows)
