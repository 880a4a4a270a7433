"""What every v3 route of the simulator shares (spec §2.1, §2.2, §2.4): checking the merchant's
`Authorization`, signing every answer with the platform key (errors included), the JSON error
shape, and the request faults.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import Request, Response
from fastapi.responses import PlainTextResponse

from tenpay_adapter.sim_config import TenpaySimConfig
from tenpay_adapter.sim_messages import compact_json, v3_signed_headers
from tenpay_adapter.sim_state import REQUEST_FAULTS, Fault, TenpaySimState
from tenpay_adapter.v3_signing import (
    TenpayProtocolError,
    parse_authorization,
    request_message,
    rsa_verify,
    same_serial,
)


class V3Error(Exception):
    """An error answer: `{"code", "message"}` with its HTTP status (spec §2.4)."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{status_code} {code}")
        self.status_code = status_code
        self.code = code
        self.message = message


def sim_of(request: Request) -> TenpaySimState:
    state: TenpaySimState = request.app.state.sim
    return state


def signed_answer(
    config: TenpaySimConfig, status_code: int, payload: object | None = None
) -> Response:
    """Every v3 answer is signed over its exact body bytes; a 204 over the empty body."""
    body = b"" if payload is None else compact_json(payload)
    headers = v3_signed_headers(config, body)
    media_type = None if payload is None else "application/json"
    return Response(body, status_code=status_code, headers=headers, media_type=media_type)


def error_answer(config: TenpaySimConfig, error: V3Error) -> Response:
    return signed_answer(config, error.status_code, {"code": error.code, "message": error.message})


def signed_url(request: Request) -> str:
    """The URL as the merchant signed it: the raw path and query, exactly as sent (§2.1)."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    url = raw_path.decode("latin-1")
    return f"{url}?{query.decode('latin-1')}" if query else url


def check_authorization(config: TenpaySimConfig, request: Request, body: bytes) -> None:
    """WECHATPAY2-SHA256-RSA2048 over method, path?query, timestamp, nonce and the raw body,
    verified with the merchant's public key; else 401 SIGN_ERROR."""
    header = request.headers.get("authorization")
    if not header:
        raise V3Error(401, "SIGN_ERROR", "缺少 Authorization 请求头")
    try:
        items = parse_authorization(header)
    except TenpayProtocolError as exc:
        raise V3Error(401, "SIGN_ERROR", f"Authorization 格式错误: {exc}") from None
    if items["mchid"] != config.mchid:
        raise V3Error(401, "SIGN_ERROR", "Authorization 中的商户号与配置不符")
    if not same_serial(items["serial_no"], config.merchant_serial_no):
        raise V3Error(401, "SIGN_ERROR", "商户证书序列号有误")
    timestamp = items["timestamp"]
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > config.timestamp_window_s:
        raise V3Error(401, "SIGN_ERROR", "请求时间戳超出允许范围")
    try:
        message = request_message(
            request.method, signed_url(request), timestamp, items["nonce_str"], body
        )
    except ValueError:
        raise V3Error(401, "SIGN_ERROR", "签名串无法构造") from None
    if not rsa_verify(config.merchant_public_key, message, items["signature"]):
        raise V3Error(401, "SIGN_ERROR", "错误的签名，验签失败")


async def admitted(request: Request, endpoint: str) -> tuple[bytes, Fault | None] | Response:
    """The raw body once the signature checks, and a `timeout` fault to apply after the effect.
    `http_500` (an unsigned gateway error) and `system_error` (500 SYSTEM_ERROR) answer here,
    before anything happens."""
    sim = sim_of(request)
    body = await request.body()
    try:
        check_authorization(sim.config, request, body)
    except V3Error as error:
        return error_answer(sim.config, error)
    fault = sim.take_fault(endpoint, REQUEST_FAULTS)
    if fault is not None and fault.mode == "http_500":
        return PlainTextResponse("Internal Server Error", status_code=500)
    if fault is not None and fault.mode == "system_error":
        return error_answer(sim.config, V3Error(500, "SYSTEM_ERROR", "系统错误"))
    return body, fault


async def after_effect(sim: TenpaySimState, fault: Fault | None, answer: Response) -> Response:
    """The `timeout` fault: the request took effect, but the caller gives up before this."""
    if fault is not None and fault.mode == "timeout":
        await asyncio.sleep(sim.timeout_s(fault))
    return answer


def json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise V3Error(400, "PARAM_ERROR", "请求体不是合法的 JSON") from None
    if not isinstance(value, dict):
        raise V3Error(400, "PARAM_ERROR", "请求体必须是 JSON 对象")
    return value


def required_str(body: dict[str, Any], name: str, *, max_len: int = 256) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise V3Error(400, "PARAM_ERROR", f"输入源“/body/{name}”必填性规则校验失败，此字段为必填项")
    if len(value) > max_len:
        raise V3Error(400, "PARAM_ERROR", f"输入源“/body/{name}”长度超过 {max_len}")
    return value


def amount_fen(value: object, where: str) -> int:
    # bool is an int in Python, never an amount.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise V3Error(400, "PARAM_ERROR", f"输入源“/body/{where}”必须是正整数（分）")
    return value


def check_mchid(config: TenpaySimConfig, mchid: object) -> None:
    if mchid != config.mchid:
        raise V3Error(400, "PARAM_ERROR", "mchid 与请求签名的商户号不一致")
