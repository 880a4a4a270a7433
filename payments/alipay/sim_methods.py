"""The trade methods of the simulated gateway (spec §3.4). Each takes a `Call` past the common
checks and returns the fields of a success answer (code and msg are added by the gateway unless
a handler sets them, as 10003 does), or raises GatewayError. Page and wap pay only open their
trade here; the gateway shows the cashier for them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from payments.alipay.signing import beijing_timestamp, yuan
from payments.alipay.sim_config import Product
from payments.alipay.sim_messages import paid_amounts, query_fields
from payments.alipay.sim_trades import Refusal, Trade, TradeRefusedError, TradeRequest
from payments.alipay.sim_wire import MESSAGES, Call, GatewayError, invalid, missing, refused

Handler = Callable[[Call], dict[str, Any]]

# A buyer's payment code: 16 to 24 digits starting 25 to 30.
_AUTH_CODE_RE = re.compile(r"(?:2[5-9]|30)[0-9]{14,22}")
_SCENES = frozenset({"bar_code", "security_code"})


def _url(call: Call, name: str) -> str:
    value = call.params.get(name, "")
    if value and not value.startswith(("http://", "https://")):
        raise invalid(name, "（应为 http(s) 地址）")
    return value


def _trade_request(call: Call, product: Product, *, buyer_id: str | None = None) -> TradeRequest:
    return TradeRequest(
        product=product,
        out_trade_no=call.out_no("out_trade_no", required=True),
        amount_fen=call.amount_fen("total_amount"),
        subject=call.text("subject", required=True),
        notify_url=_url(call, "notify_url"),
        return_url=_url(call, "return_url"),
        body=call.text("body", max_len=128),
        passback_params=call.text("passback_params", max_len=512),
        timeout_s=call.timeout_s(),
        time_expire=call.time_expire(),
        buyer_id=buyer_id,
    )


def _open(call: Call, request: TradeRequest, **kwargs: Any) -> tuple[Trade, bool]:
    try:
        return call.sim.ledger.open_trade(request, **kwargs)
    except TradeRefusedError as refusal:
        raise refused(call.config, refusal.refusal) from None


def _ids(trade: Trade) -> dict[str, Any]:
    return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}


def precreate(call: Call) -> dict[str, Any]:
    """The QR code; the trade exists for the merchant only once the buyer scans it."""
    trade, _new = _open(call, _trade_request(call, "precreate"))
    return {"out_trade_no": trade.out_trade_no, "qr_code": trade.qr_code}


def create(call: Call) -> dict[str, Any]:
    buyer_id = call.text("buyer_id", max_len=28) or call.text("buyer_open_id", max_len=128)
    if not buyer_id:
        raise missing("buyer_id")
    trade, _new = _open(call, _trade_request(call, "create", buyer_id=buyer_id))
    return _ids(trade)


def open_page_trade(call: Call, product: Product) -> Trade:
    """alipay.trade.wap.pay / page.pay: the trade the cashier will show."""
    trade, _new = _open(call, _trade_request(call, product))
    return trade


def _pay_answer(trade: Trade) -> dict[str, Any]:
    """trade.pay's fields: the amounts and payment details once paid; while 10003, the total."""
    answer = _ids(trade) | {
        "buyer_logon_id": trade.buyer_logon_id or "",
        "buyer_user_id": trade.buyer_id or "",
        "total_amount": yuan(trade.amount_fen),
    }
    if trade.paid_at is not None:
        answer |= paid_amounts(trade)
        answer["gmt_payment"] = beijing_timestamp(trade.paid_at)
        answer["fund_bill_list"] = [
            {"amount": yuan(trade.amount_fen), "fund_channel": "ALIPAYACCOUNT"}
        ]
    return answer


def bar_code_pay(call: Call) -> dict[str, Any]:
    """alipay.trade.pay: 10000 paid, or 10003 (the buyer is entering a password) and the
    trade completes later (`paying_settle_s`), or when a test pays it."""
    auth_code = call.text("auth_code", required=True, max_len=32)
    if call.text("scene", required=True, max_len=32) not in _SCENES:
        raise invalid("scene", "（应为 bar_code 或 security_code）")
    if not _AUTH_CODE_RE.fullmatch(auth_code):
        raise GatewayError(
            "40004",
            "ACQ.PAYMENT_AUTH_CODE_INVALID",
            "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款",
        )
    config = call.config
    request = _trade_request(call, "pay")
    trade, new = _open(call, request, buyer=(config.buyer_id, config.buyer_logon_id))
    if config.bar_code_paying or call.fault_is("paying_10003"):
        if new:
            call.sim.settle_paying_later(trade.out_trade_no)
        return {"code": "10003", "msg": MESSAGES["10003"]} | _pay_answer(trade)
    try:
        paid = call.sim.pay(trade.out_trade_no)
    except TradeRefusedError as refusal:
        raise refused(config, refusal.refusal) from None
    return _pay_answer(paid)


def query(call: Call) -> dict[str, Any]:
    out_trade_no, trade_no = call.trade_ids()
    trade = call.sim.ledger.find(out_trade_no=out_trade_no, trade_no=trade_no)
    if trade is None:
        raise refused(call.config, Refusal.TRADE_NOT_EXIST)
    if call.fault_is("paying_10003"):
        # The query variant of the fault: "still paying", however far the trade really is.
        waiting = dataclasses.replace(trade, status="WAIT_BUYER_PAY", masked_until=0.0)
        return {"code": "10003", "msg": MESSAGES["10003"]} | query_fields(waiting)
    return query_fields(trade)


def close(call: Call) -> dict[str, Any]:
    out_trade_no, trade_no = call.trade_ids()
    try:
        trade, closed_now = call.sim.ledger.close(out_trade_no=out_trade_no, trade_no=trade_no)
    except TradeRefusedError as refusal:
        raise refused(call.config, refusal.refusal) from None
    if closed_now:
        call.sim.closed(trade)
    return _ids(trade)


def cancel(call: Call) -> dict[str, Any]:
    out_trade_no, trade_no = call.trade_ids()
    try:
        done = call.sim.ledger.cancel(out_trade_no=out_trade_no, trade_no=trade_no)
    except TradeRefusedError as refusal:
        raise refused(call.config, refusal.refusal, retry_flag="N") from None
    if done.changed and done.refund is not None:
        call.sim.refunded(done.refund, done.trade)
    elif done.changed:
        call.sim.closed(done.trade)
    answer = _ids(done.trade) | {"retry_flag": "N", "action": done.action}
    if done.refund is not None:
        answer["gmt_refund_pay"] = beijing_timestamp(done.refund.refunded_at)
    return answer


def refund(call: Call) -> dict[str, Any]:
    """Idempotent per out_request_no: a repeat answers fund_change N and moves nothing."""
    out_trade_no, trade_no = call.trade_ids()
    amount_fen = call.amount_fen("refund_amount")
    out_request_no = call.out_no("out_request_no")
    try:
        done, trade, moved = call.sim.ledger.refund(
            out_trade_no=out_trade_no,
            trade_no=trade_no,
            out_request_no=out_request_no or None,
            amount_fen=amount_fen,
            reason=call.text("refund_reason"),
        )
    except TradeRefusedError as refusal:
        zero = {"refund_fee": "0.00", "send_back_fee": "0.00"}
        named = {"out_trade_no": out_trade_no} if out_trade_no else {}
        raise refused(call.config, refusal.refusal, **named, **zero) from None
    if moved:
        call.sim.refunded(done, trade)
    return _ids(trade) | {
        "buyer_logon_id": trade.buyer_logon_id or "",
        "buyer_user_id": trade.buyer_id or "",
        "fund_change": "Y" if moved else "N",
        "refund_fee": yuan(trade.refunded_fen),  # the trade's refunds so far, in all
        "send_back_fee": yuan(done.amount_fen) if moved else "0.00",
        "gmt_refund_pay": beijing_timestamp(done.refunded_at),
    }


def refund_query(call: Call) -> dict[str, Any]:
    """A refund that does not exist answers 10000 with no refund fields, as the real API does:
    the merchant must read refund_status, not the code (spec §3.4)."""
    out_trade_no, trade_no = call.trade_ids()
    out_request_no = call.out_no("out_request_no", required=True)
    try:
        trade, found = call.sim.ledger.find_refund(
            out_trade_no=out_trade_no, trade_no=trade_no, out_request_no=out_request_no
        )
    except TradeRefusedError as refusal:
        raise refused(call.config, refusal.refusal) from None
    if found is None:
        return {}
    return _ids(trade) | {
        "out_request_no": found.out_request_no,
        "total_amount": yuan(trade.amount_fen),
        "refund_amount": yuan(found.amount_fen),
        "refund_status": "REFUND_SUCCESS",
        "refund_reason": found.reason,
        "gmt_refund_pay": beijing_timestamp(found.refunded_at),
    }


HANDLERS: dict[str, Handler] = {
    "alipay.trade.precreate": precreate,
    "alipay.trade.create": create,
    "alipay.trade.pay": bar_code_pay,
    "alipay.trade.query": query,
    "alipay.trade.close": close,
    "alipay.trade.cancel": cancel,
    "alipay.trade.refund": refund,
    "alipay.trade.fastpay.refund.query": refund_query,
}
