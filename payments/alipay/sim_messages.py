"""What a trade looks like on the wire, shared by the gateway's answers, the notifies and the
return URL: the trade fields of a query (spec §3.4), the notify form (§3.3) and its RSA2 sign,
the signed return parameters of page/wap pay.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from payments.alipay.signing import (
    beijing_timestamp,
    notify_sign_content,
    rsa2_sign,
    yuan,
)
from payments.alipay.sim_config import AlipaySimConfig, TradeStatus
from payments.alipay.sim_trades import Refund, Trade

STATUS_DESCRIPTIONS: dict[str, str] = {
    "WAIT_BUYER_PAY": "等待付款",
    "TRADE_SUCCESS": "支付成功",
    "TRADE_FINISHED": "交易完结",
    "TRADE_CLOSED": "交易关闭",
}
_PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
ZERO = "0.00"


def _time(moment: datetime | None) -> str:
    return beijing_timestamp(moment) if moment is not None else ""


def fund_bill_list(trade: Trade) -> str:
    return json.dumps(
        [{"amount": yuan(trade.amount_fen), "fundChannel": "ALIPAYACCOUNT"}],
        separators=(",", ":"),
    )


def paid_amounts(trade: Trade) -> dict[str, str]:
    """The amounts of a paid trade: the buyer paid it all from the Alipay balance."""
    total = yuan(trade.amount_fen)
    return {
        "total_amount": total,
        "receipt_amount": total,
        "buyer_pay_amount": total,
        "invoice_amount": total,
        "point_amount": ZERO,
    }


def query_fields(trade: Trade) -> dict[str, Any]:
    """alipay.trade.query's trade fields, as the (possibly masked) status shows them. The real
    API names the payment time `send_pay_date`."""
    status: TradeStatus = trade.shown_status()
    fields: dict[str, Any] = {
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "buyer_logon_id": trade.buyer_logon_id or "",
        "trade_status": status,
        "total_amount": yuan(trade.amount_fen),
        "buyer_pay_amount": ZERO,
        "point_amount": ZERO,
        "invoice_amount": ZERO,
        "receipt_amount": ZERO,
    }
    if trade.buyer_id:
        fields["buyer_user_id"] = trade.buyer_id
    shows_payment = status in _PAID_STATUSES or (
        status == "TRADE_CLOSED" and trade.refunded_fen > 0
    )
    if shows_payment and trade.paid_at is not None:
        fields |= paid_amounts(trade)
        fields["send_pay_date"] = beijing_timestamp(trade.paid_at)
        fields["fund_bill_list"] = [
            {"amount": yuan(trade.amount_fen), "fund_channel": "ALIPAYACCOUNT"}
        ]
    if not fields["buyer_logon_id"]:
        del fields["buyer_logon_id"]
    return fields


def new_notify_id(now: datetime) -> str:
    stamp = beijing_timestamp(now)
    digits = stamp.replace("-", "").replace(" ", "").replace(":", "")
    return f"{digits[:8]}00222{digits[8:]}{secrets.randbelow(10**15):015d}"


def notify_fields(
    config: AlipaySimConfig,
    trade: Trade,
    status: str,
    *,
    refund: Refund | None,
    notify_id: str,
) -> dict[str, str]:
    """The §3.3 form, unsigned and without notify_time (stamped per attempt). Empty values are
    left out, as Alipay leaves them out."""
    fields = {
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": config.app_id,
        "auth_app_id": config.app_id,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "buyer_id": trade.buyer_id or "",
        "buyer_logon_id": trade.buyer_logon_id or "",
        "seller_id": config.seller_id,
        "seller_email": config.seller_email,
        "trade_status": status,
        "total_amount": yuan(trade.amount_fen),
        "subject": trade.request.subject,
        "body": trade.request.body,
        "gmt_create": _time(trade.gmt_create),
        "gmt_payment": _time(trade.paid_at),
        "gmt_close": _time(trade.closed_at) if status == "TRADE_CLOSED" else "",
        "passback_params": trade.request.passback_params,
    }
    if trade.paid_at is not None:
        fields |= paid_amounts(trade)
        fields["fund_bill_list"] = fund_bill_list(trade)
    if refund is not None:
        fields["out_biz_no"] = refund.out_request_no
        fields["refund_fee"] = yuan(refund.refunded_total_fen)
        fields["gmt_refund"] = beijing_timestamp(refund.refunded_at)
    return {name: value for name, value in fields.items() if value != ""}


def sign_notify(
    config: AlipaySimConfig, fields: dict[str, str], *, bad: bool = False
) -> dict[str, str]:
    """RSA2 by the Alipay key over the notify rule's content (sign and sign_type excluded,
    spec §3.2). `bad`: signed over something else, so it verifies under no rule."""
    content = notify_sign_content(fields)
    sign = rsa2_sign(config.alipay_private_key, content + ("&tampered=1" if bad else ""))
    return fields | {"sign_type": "RSA2", "sign": sign}


def return_params(config: AlipaySimConfig, trade: Trade, now: datetime) -> dict[str, str]:
    """What page/wap pay appends to return_url after payment, signed like a notify."""
    method = (
        "alipay.trade.wap.pay.return" if trade.product == "wap" else "alipay.trade.page.pay.return"
    )
    fields = {
        "method": method,
        "app_id": config.app_id,
        "auth_app_id": config.app_id,
        "seller_id": config.seller_id,
        "charset": "utf-8",
        "version": "1.0",
        "timestamp": beijing_timestamp(now),
        "out_trade_no": trade.out_trade_no,
        "trade_no": trade.trade_no,
        "total_amount": yuan(trade.amount_fen),
    }
    return sign_notify(config, fields)
