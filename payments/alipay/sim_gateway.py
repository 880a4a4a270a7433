"""`/gateway.do` of the simulated Alipay open platform (spec §3.1, §3.2, §3.4, §5).

Every call: merge the query string and the form body (the official SDK sends the common
parameters in the query and biz_content in the body) → common checks (app_id, method, format,
charset, sign_type, timestamp within the window, version) → RSA2 verification with the
application public key over the request rule (sign_type kept) → request faults → the method →
the answer, signed with the Alipay key over its exact text; a `timeout` fault then holds it.

Page and wap pay (GET, or the SDK's auto-submitting POST form) answer with the cashier page
itself, as Alipay does; their errors are an HTML page too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from payments.alipay.errors import AlipayProtocolError
from payments.alipay.signing import (
    ERROR_RESPONSE_KEY,
    parse_beijing,
    request_sign_content,
    response_key,
    rsa2_verify,
)
from payments.alipay.sim_bill import bill_download_url
from payments.alipay.sim_cashier import cashier_page, gateway_error_page
from payments.alipay.sim_config import AlipaySimConfig, Product
from payments.alipay.sim_methods import HANDLERS, Handler, open_page_trade
from payments.alipay.sim_state import REQUEST_FAULTS, AlipaySimState, Fault
from payments.alipay.sim_wire import (
    Call,
    GatewayError,
    answer_text,
    parse_biz_content,
    service_unavailable,
    system_error,
)

BILL_METHOD = "alipay.data.dataservice.bill.downloadurl.query"
PAGE_PRODUCTS: dict[str, Product] = {
    "alipay.trade.wap.pay": "wap",
    "alipay.trade.page.pay": "page",
}
# Method → the fault endpoint that names it.
ENDPOINTS: dict[str, str] = {
    "alipay.trade.precreate": "precreate",
    "alipay.trade.create": "create",
    "alipay.trade.pay": "pay",
    "alipay.trade.wap.pay": "wap",
    "alipay.trade.page.pay": "page",
    "alipay.trade.query": "query",
    "alipay.trade.close": "close",
    "alipay.trade.cancel": "cancel",
    "alipay.trade.refund": "refund",
    "alipay.trade.fastpay.refund.query": "refund_query",
    BILL_METHOD: "bill",
}
_JSON_HANDLERS: dict[str, Handler] = HANDLERS | {BILL_METHOD: bill_download_url}
_JSON_TYPE = "application/json;charset=utf-8"

router = APIRouter()


def _sim(request: Request) -> AlipaySimState:
    state: AlipaySimState = request.app.state.sim
    return state


async def merged_params(request: Request) -> dict[str, str]:
    """Query string first, then the form body (a name in both: the body's value)."""
    params = dict(parse_qsl(request.url.query, keep_blank_values=True))
    if request.method == "POST":
        if request.headers.get("content-type", "").startswith("multipart/"):
            form = await request.form()
            params.update({name: v for name, v in form.items() if isinstance(v, str)})
        else:
            body = (await request.body()).decode("utf-8", "replace")
            params.update(parse_qsl(body, keep_blank_values=True))
    return params


def _missing(name: str, sub_code: str, what: str) -> GatewayError:
    return GatewayError("40001", f"isv.missing-{sub_code}", f"缺少{what}参数")


def _check_common(config: AlipaySimConfig, params: dict[str, str]) -> None:
    required = (
        ("app_id", "app-id", "AppID"),
        ("method", "method", "方法名"),
        ("charset", "charset", "字符集"),
        ("sign_type", "signature-type", "签名类型"),
        ("sign", "signature", "签名"),
        ("timestamp", "timestamp", "时间戳"),
        ("version", "version", "版本"),
    )
    for name, sub_code, what in required:
        if not params.get(name):
            raise _missing(name, sub_code, what)
    if params["method"] not in ENDPOINTS:
        raise GatewayError("40002", "isv.invalid-method", "不存在的方法名")
    if params.get("format", "JSON").upper() != "JSON":
        raise GatewayError("40002", "isv.invalid-format", "无效的数据格式")
    if params["charset"].lower() != "utf-8":
        raise GatewayError("40002", "isv.invalid-charset", "字符集错误")
    if params["sign_type"] != "RSA2":
        raise GatewayError("40002", "isv.invalid-signature-type", "无效的签名类型")
    if params["version"] != "1.0":
        raise GatewayError("40002", "isv.invalid-version", "版本号错误")
    _check_timestamp(config, params["timestamp"])
    if params["app_id"] != config.app_id:
        raise GatewayError("40002", "isv.invalid-app-id", "无效的AppID参数")
    content = request_sign_content(params)
    if not rsa2_verify(config.app_public_key, content, params["sign"]):
        # Like Alipay, say what was verified: the merchant compares it with what it signed.
        raise GatewayError(
            "40002",
            "isv.invalid-signature",
            "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为："
            + content,
        )
    enabled = config.enabled_methods
    if enabled is not None and params["method"] not in enabled:
        raise GatewayError(
            "40006",
            "isv.insufficient-isv-permissions",
            "ISV权限不足，建议在开发者中心检查签约是否已经生效",
        )


def _check_timestamp(config: AlipaySimConfig, text: str) -> None:
    """The merchant's clock, in Beijing time, against the real one (not the simulated)."""
    try:
        stamped = parse_beijing(text)
    except AlipayProtocolError:
        raise GatewayError("40002", "isv.invalid-timestamp", "非法的时间戳参数") from None
    if abs(stamped.timestamp() - time.time()) > config.timestamp_window_s:
        raise GatewayError(
            "40002", "isv.invalid-timestamp", "非法的时间戳参数（与支付宝服务器时间相差过大）"
        )


def _payload(fields: dict[str, Any]) -> dict[str, Any]:
    """code and msg first (unless the handler set them), then the fields; empty ones left out,
    as Alipay leaves them out."""
    head = {"code": "10000", "msg": "Success"}
    if "code" in fields:
        head = {"code": fields["code"], "msg": fields["msg"]}
    rest = {k: v for k, v in fields.items() if k not in ("code", "msg") and v != ""}
    return head | rest


def _json_answer(
    config: AlipaySimConfig, key: str, payload: dict[str, Any], fault: Fault | None
) -> Response:
    sign = "good"
    if fault is not None and fault.mode == "unsigned_response":
        sign = "none"
    elif fault is not None and fault.mode == "bad_response_signature":
        sign = "bad"
    text = answer_text(config, key, payload, sign=sign)
    return Response(text.encode("utf-8"), headers={"Content-Type": _JSON_TYPE})


def _refusal(request: Request, method: str, error: GatewayError) -> Response:
    sim = _sim(request)
    if method in PAGE_PRODUCTS:
        return gateway_error_page(request, error)
    key = response_key(method) if method in ENDPOINTS else ERROR_RESPONSE_KEY
    return _json_answer(sim.config, key, error.payload(), None)


def _run(call: Call) -> Response:
    product = PAGE_PRODUCTS.get(call.method)
    config = call.config
    try:
        if product is not None:
            trade = open_page_trade(call, product)
            return cashier_page(call.request, trade, return_url=trade.request.return_url)
        fields = _JSON_HANDLERS[call.method](call)
        payload = _payload(fields)
    except GatewayError as error:
        if product is not None:
            return gateway_error_page(call.request, error)
        payload = error.payload()
    return _json_answer(config, response_key(call.method), payload, call.fault)


@router.api_route("/gateway.do", methods=["GET", "POST"])
async def gateway(request: Request) -> Response:
    sim = _sim(request)
    params = await merged_params(request)
    method = params.get("method", "")
    try:
        _check_common(sim.config, params)
        call = Call(sim, request, method, params, parse_biz_content(params))
    except GatewayError as error:
        return _refusal(request, method, error)
    fault = sim.take_fault(ENDPOINTS[method], REQUEST_FAULTS)
    if fault is not None and fault.mode == "http_500":
        return PlainTextResponse("Internal Server Error", status_code=500)
    if fault is not None and fault.mode in ("system_error", "service_unavailable"):
        failure = system_error() if fault.mode == "system_error" else service_unavailable()
        return _refusal(request, method, failure)
    call.fault = fault
    sim.sweep()  # trades past their timeout close (and notify) before anyone looks
    answer = _run(call)
    if fault is not None and fault.mode == "timeout":
        # The effect took place; the caller has given up by the time this arrives.
        await asyncio.sleep(sim.timeout_s(fault))
    return answer
