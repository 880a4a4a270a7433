"""WeChat Pay API v2 on loopback (spec §1): unifiedorder, orderquery, closeorder, refund,
refundquery and downloadbill, in v2's signed XML with its err_codes.

`/secapi/pay/refund` needs the merchant's client certificate (mutual TLS) at WeChat; on
loopback the simulator serves plain HTTP and asks for none, so the channel's TLS set-up is not
exercised here.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from datetime import date, datetime

from fastapi import APIRouter, Request, Response

from tenpay_adapter.sim_bill import BILL_TYPES, bill_text
from tenpay_adapter.sim_config import TenpaySimConfig
from tenpay_adapter.sim_ledger import (
    OrderRequest,
    Refund,
    RefundRequest,
    Refusal,
    TradeRefusedError,
)
from tenpay_adapter.sim_messages import REFUND_ACCOUNT, v2_trade_fields
from tenpay_adapter.sim_state import TenpaySimState
from tenpay_adapter.sim_v2_http import (
    V2BusinessError,
    V2Call,
    admitted,
    after_effect,
    business_failure,
    protocol_failure,
    sim_of,
    success,
)
from tenpay_adapter.timefmt import format_beijing_dashed
from tenpay_adapter.v2_signing import TenpayProtocolError, fen, parse_beijing_compact

REFUNDS_PER_PAGE = 10  # refundquery pages (spec §1.8)
# What "identical parameters" ignores between two unifiedorder calls (spec §1.3).
_NOT_FINGERPRINTED = frozenset({"nonce_str", "sign"})
_BILL_DATE_RE = re.compile(r"[0-9]{8}")

router = APIRouter()
Effect = Callable[[TenpaySimState, V2Call], dict[str, str]]


def _refused(config: TenpaySimConfig, refusal: Refusal) -> V2BusinessError:
    if refusal is Refusal.OUT_TRADE_NO_USED:
        # spec §1.3: the live answer by default, the documented code when configured.
        if config.duplicate_order_form == "OUT_TRADE_NO_USED":
            return V2BusinessError("OUT_TRADE_NO_USED", "商户订单号重复")
        return V2BusinessError("INVALID_REQUEST", "201 商户订单号重复")
    codes = {
        Refusal.ORDER_NOT_EXIST: ("ORDERNOTEXIST", "此交易订单号不存在"),
        Refusal.ORDER_PAID: ("ORDERPAID", "该订单已支付"),
        Refusal.ORDER_CLOSED: ("ORDERCLOSED", "订单已关闭"),
        # The docs name no code for closing within 5 minutes; retrying later is the cure,
        # which is what SYSTEMERROR asks of the caller (spec §1.6).
        Refusal.CLOSE_TOO_EARLY: ("SYSTEMERROR", "订单生成后5分钟内不能关闭，请稍后再试"),
        Refusal.NOT_PAID: ("ERROR", "订单未支付，不能退款"),
        Refusal.TOTAL_FEE_MISMATCH: ("PARAM_ERROR", "total_fee 与订单金额不一致"),
        Refusal.REFUND_FEE_MISMATCH: (
            "REFUND_FEE_MISMATCH",
            "订单金额或退款金额与之前请求不一致，请核实后再试",
        ),
        Refusal.REFUND_EXCEEDS_PAID: ("ERROR", "申请退款金额超过订单可退金额"),
        Refusal.TOO_MANY_REFUNDS: ("ERROR", "订单已超过可退款的最大次数"),
        Refusal.REFUND_NOT_EXIST: ("REFUNDNOTEXIST", "退款订单查询失败"),
    }
    err_code, des = codes.get(refusal, ("ERROR", refusal.value))
    return V2BusinessError(err_code, des)


async def _handle(request: Request, endpoint: str, effect: Effect) -> Response:
    sim = sim_of(request)
    call = await admitted(request, endpoint)
    if isinstance(call, Response):
        return call
    try:
        fields = effect(sim, call)
    except TradeRefusedError as refused:
        return business_failure(sim.config, call.sign_type, _refused(sim.config, refused.refusal))
    except V2BusinessError as error:
        return business_failure(sim.config, call.sign_type, error)
    return await after_effect(sim, call, success(sim.config, call.sign_type, fields))


def _amount(call: V2Call, name: str) -> int:
    try:
        value = fen(call.get(name))
    except TenpayProtocolError:
        raise V2BusinessError("PARAM_ERROR", f"{name} 必须是整数（分）") from None
    if value <= 0:
        raise V2BusinessError("PARAM_ERROR", f"{name} 必须大于 0")
    return value


def _time_expire(call: V2Call) -> datetime | None:
    if not call.get("time_expire"):
        return None
    try:
        return parse_beijing_compact(call.get("time_expire"))
    except TenpayProtocolError:
        raise V2BusinessError("PARAM_ERROR", "time_expire 时间格式错误") from None


def _unifiedorder(sim: TenpaySimState, call: V2Call) -> dict[str, str]:
    call.require("body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url")
    call.require("trade_type")
    trade_type = call.get("trade_type")
    if trade_type not in ("JSAPI", "NATIVE"):
        raise V2BusinessError("PARAM_ERROR", "trade_type 只支持 JSAPI 和 NATIVE")
    if trade_type == "JSAPI" and not call.get("openid"):
        raise V2BusinessError("PARAM_ERROR", "JSAPI支付必须传openid")
    if trade_type == "NATIVE" and not call.get("product_id"):
        raise V2BusinessError("PARAM_ERROR", "NATIVE支付必须传product_id")
    if "?" in call.get("notify_url"):
        raise V2BusinessError("PARAM_ERROR", "notify_url 不能携带参数")
    fingerprint = sorted((k, v) for k, v in call.params.items() if k not in _NOT_FINGERPRINTED)
    trade = sim.ledger.place_order(
        OrderRequest(
            api_version="v2",
            out_trade_no=call.get("out_trade_no"),
            fingerprint=repr(fingerprint),
            trade_type=trade_type,
            amount_fen=_amount(call, "total_fee"),
            description=call.get("body"),
            notify_url=call.get("notify_url"),
            attach=call.get("attach"),
            openid=call.get("openid") or None,
            sign_type=call.sign_type,
            time_expire=_time_expire(call),
        )
    )
    fields = {"trade_type": trade_type, "prepay_id": trade.prepay_id}
    if trade.code_url is not None:
        fields["code_url"] = trade.code_url
    return fields


def _orderquery(sim: TenpaySimState, call: V2Call) -> dict[str, str]:
    if not call.get("transaction_id") and not call.get("out_trade_no"):
        raise V2BusinessError("LACK_PARAMS", "缺少参数 transaction_id 或 out_trade_no")
    transaction_id = call.get("transaction_id") or None
    trade = sim.ledger.find(
        out_trade_no=None if transaction_id else call.get("out_trade_no"),
        transaction_id=transaction_id,
    )
    # Before payment (or while a notify_before_query mask holds) no transaction_id is known.
    if trade is None or (transaction_id and trade.shown_state() not in ("SUCCESS", "REFUND")):
        raise TradeRefusedError(Refusal.ORDER_NOT_EXIST)
    return v2_trade_fields(sim.config, trade)


def _closeorder(sim: TenpaySimState, call: V2Call) -> dict[str, str]:
    call.require("out_trade_no")
    sim.ledger.close(call.get("out_trade_no"), min_age_s=sim.config.close_min_age_s)
    return {"result_msg": "OK"}


def _refund_fields(refund: Refund) -> dict[str, str]:
    amount, total = str(refund.amount_fen), str(refund.request.total_fen)
    return {
        "transaction_id": refund.transaction_id,
        "out_trade_no": refund.out_trade_no,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_fee": amount,
        "settlement_refund_fee": amount,
        "total_fee": total,
        "settlement_total_fee": total,
        "fee_type": "CNY",
        "cash_fee": total,
        "cash_refund_fee": amount,
        "refund_channel": "",
    }


def _refund(sim: TenpaySimState, call: V2Call) -> dict[str, str]:
    call.require("out_refund_no", "total_fee", "refund_fee")
    if not call.get("transaction_id") and not call.get("out_trade_no"):
        raise V2BusinessError("LACK_PARAMS", "缺少参数 transaction_id 或 out_trade_no")
    refund, new = sim.ledger.refund(
        RefundRequest(
            api_version="v2",
            out_refund_no=call.get("out_refund_no"),
            out_trade_no=call.get("out_trade_no") or None,
            transaction_id=call.get("transaction_id") or None,
            total_fen=_amount(call, "total_fee"),
            refund_fen=_amount(call, "refund_fee"),
            reason=call.get("refund_desc"),
            notify_url=call.get("notify_url") or None,
        ),
        settle_after_s=sim.config.refund_settle_s,
    )
    if new:
        sim.refund_accepted(refund)
    return _refund_fields(refund)


def _refunds_asked(sim: TenpaySimState, call: V2Call) -> tuple[list[Refund], bool]:
    """By refund_id, out_refund_no, transaction_id or out_trade_no, in that priority (§1.8);
    True when asked by order (the answer then counts all of the order's refunds)."""
    ledger = sim.ledger
    if call.get("refund_id") or call.get("out_refund_no"):
        found = (
            ledger.find_refund_by_id(call.get("refund_id"))
            if call.get("refund_id")
            else ledger.find_refund(call.get("out_refund_no"))
        )
        return ([found] if found is not None else []), False
    if not call.get("transaction_id") and not call.get("out_trade_no"):
        raise V2BusinessError("LACK_PARAMS", "缺少参数 refund_id、out_refund_no 或订单号")
    transaction_id = call.get("transaction_id") or None
    trade = ledger.find(
        out_trade_no=None if transaction_id else call.get("out_trade_no"),
        transaction_id=transaction_id,
    )
    return (ledger.refunds_of(trade.out_trade_no) if trade is not None else []), True


def _refundquery(sim: TenpaySimState, call: V2Call) -> dict[str, str]:
    refunds, by_order = _refunds_asked(sim, call)
    if not refunds:
        raise TradeRefusedError(Refusal.REFUND_NOT_EXIST)
    offset = int(call.get("offset")) if call.get("offset").isdigit() else 0
    page = refunds[offset : offset + REFUNDS_PER_PAGE]
    first = refunds[0]
    fields = {
        "transaction_id": first.transaction_id,
        "out_trade_no": first.out_trade_no,
        "total_fee": str(first.request.total_fen),
        "cash_fee": str(first.request.total_fen),
        "fee_type": "CNY",
        "refund_fee": str(sum(refund.amount_fen for refund in refunds)),
        "refund_count": str(len(page)),
    }
    if by_order:
        fields["total_refund_count"] = str(len(refunds))
    for n, refund in enumerate(page):
        fields |= {
            f"out_refund_no_{n}": refund.out_refund_no,
            f"refund_id_{n}": refund.refund_id,
            f"refund_channel_{n}": "ORIGINAL",
            f"refund_fee_{n}": str(refund.amount_fen),
            f"settlement_refund_fee_{n}": str(refund.amount_fen),
            f"refund_status_{n}": refund.state,
            f"refund_recv_accout_{n}": REFUND_ACCOUNT,
        }
        if refund.success_at is not None:
            fields[f"refund_success_time_{n}"] = format_beijing_dashed(refund.success_at)
    return fields


def _bill_day(raw: str) -> date | None:
    """`bill_date=yyyyMMdd`: a Beijing calendar day, no time of day to convert."""
    if not _BILL_DATE_RE.fullmatch(raw):
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:  # 20240230
        return None


@router.post("/pay/unifiedorder")
async def post_unifiedorder(request: Request) -> Response:
    return await _handle(request, "order", _unifiedorder)


@router.post("/pay/orderquery")
async def post_orderquery(request: Request) -> Response:
    return await _handle(request, "query", _orderquery)


@router.post("/pay/closeorder")
async def post_closeorder(request: Request) -> Response:
    return await _handle(request, "close", _closeorder)


@router.post("/secapi/pay/refund")
async def post_refund(request: Request) -> Response:
    """Needs mutual TLS with the merchant certificate at WeChat (spec §1.7); this loopback
    simulator speaks plain HTTP and checks only the sign."""
    return await _handle(request, "refund", _refund)


@router.post("/pay/refundquery")
async def post_refundquery(request: Request) -> Response:
    return await _handle(request, "refund_query", _refundquery)


@router.post("/pay/downloadbill")
async def post_downloadbill(request: Request) -> Response:
    """Plain text on success, an unsigned FAIL otherwise (spec §1.10)."""
    sim = sim_of(request)
    call = await admitted(request, "bill")
    if isinstance(call, Response):
        return call
    bill_type = call.get("bill_type") or "ALL"
    day = _bill_day(call.get("bill_date"))
    if day is None:
        return protocol_failure("bill_date 参数错误")
    if bill_type not in BILL_TYPES:
        return protocol_failure("bill_type 参数错误")
    text = bill_text(sim.config, sim.ledger, day, bill_type)
    if text is None:
        return protocol_failure("No Bill Exist")
    content = text.encode("utf-8")
    if call.get("tar_type") == "GZIP":
        answer = Response(gzip.compress(content), media_type="application/octet-stream")
    else:
        answer = Response(content, media_type="text/plain; charset=utf-8")
    return await after_effect(sim, call, answer)
