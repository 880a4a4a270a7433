"""What every v2 route of the simulator shares (spec §1.1, §1.2): parsing the XML safely,
checking the sign with the request's sign_type, answering in the three layers (protocol
`return_code`, business `result_code`, then the data) signed the same way the request was,
and the request faults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Request, Response
from fastapi.responses import PlainTextResponse

from tenpay_adapter.sim_config import TenpaySimConfig
from tenpay_adapter.sim_state import REQUEST_FAULTS, Fault, TenpaySimState
from tenpay_adapter.v2_signing import (
    SIGN_MD5,
    SIGN_TYPES,
    TenpayProtocolError,
    nonce_str,
    parse_xml,
    signed,
    to_xml,
    verify_v2,
)

XML_MEDIA_TYPE = "text/xml; charset=utf-8"


class V2BusinessError(Exception):
    """result_code=FAIL with err_code/err_code_des: a signed answer (spec §1.1)."""

    def __init__(self, err_code: str, err_code_des: str) -> None:
        super().__init__(err_code)
        self.err_code = err_code
        self.err_code_des = err_code_des


@dataclass(frozen=True)
class V2Call:
    params: dict[str, str]
    sign_type: str
    fault: Fault | None  # a `timeout` to apply after the effect

    def get(self, name: str) -> str:
        return self.params.get(name, "")

    def require(self, *names: str) -> None:
        missing = [name for name in names if not self.params.get(name)]
        if missing:
            raise V2BusinessError("LACK_PARAMS", f"缺少参数 {', '.join(missing)}")


def sim_of(request: Request) -> TenpaySimState:
    state: TenpaySimState = request.app.state.sim
    return state


def protocol_failure(message: str) -> Response:
    """return_code=FAIL: bad XML, bad sign and the like. Such answers carry no sign (§1.1)."""
    body = to_xml({"return_code": "FAIL", "return_msg": message})
    return Response(body, media_type=XML_MEDIA_TYPE)


def _answer(config: TenpaySimConfig, sign_type: str, fields: Mapping[str, str]) -> Response:
    params = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": config.appid,
        "mch_id": config.mchid,
        "nonce_str": nonce_str(),
        **fields,
    }
    # Answers are signed with the algorithm the request used (§1.1); they never name it.
    body = to_xml(signed(params, config.api_key, sign_type))
    return Response(body, media_type=XML_MEDIA_TYPE)


def success(config: TenpaySimConfig, sign_type: str, fields: Mapping[str, str]) -> Response:
    return _answer(config, sign_type, {"result_code": "SUCCESS", **fields})


def business_failure(config: TenpaySimConfig, sign_type: str, error: V2BusinessError) -> Response:
    fields = {"result_code": "FAIL", "err_code": error.err_code, "err_code_des": error.err_code_des}
    return _answer(config, sign_type, fields)


def _sign_type(params: Mapping[str, str]) -> str | None:
    declared = params.get("sign_type")
    if declared is None:
        # A request without sign_type is MD5 (§1.1). verify_v2 would also accept a 64-hex
        # HMAC sign here (it is lenient for notifies, §6); the gateway is not.
        return SIGN_MD5 if len(params.get("sign", "")) == 32 else None
    return declared if declared in SIGN_TYPES else None


async def admitted(request: Request, endpoint: str) -> V2Call | Response:
    """The verified call, or the answer that ends it: a protocol failure (unsigned), a
    configuration error, or an injected `http_500` / `system_error` (nothing takes effect)."""
    sim = sim_of(request)
    config = sim.config
    try:
        params = parse_xml(await request.body())
    except TenpayProtocolError:
        return protocol_failure("XML格式错误")
    sign_type = _sign_type(params)
    if not params.get("nonce_str") or len(params["nonce_str"]) > 32:
        return protocol_failure("nonce_str 参数错误")
    if sign_type is None or not verify_v2(params, config.api_key):
        return protocol_failure("签名错误")
    if params.get("appid") != config.appid or params.get("mch_id") != config.mchid:
        error = V2BusinessError("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        return business_failure(config, sign_type, error)
    fault = sim.take_fault(endpoint, REQUEST_FAULTS)
    if fault is not None and fault.mode == "http_500":
        return PlainTextResponse("Internal Server Error", status_code=500)
    if fault is not None and fault.mode == "system_error":
        return business_failure(config, sign_type, V2BusinessError("SYSTEMERROR", "系统错误"))
    return V2Call(params, sign_type, fault)


async def after_effect(sim: TenpaySimState, call: V2Call, answer: Response) -> Response:
    """The `timeout` fault: the request took effect, but the caller gives up before this."""
    if call.fault is not None and call.fault.mode == "timeout":
        await asyncio.sleep(sim.timeout_s(call.fault))
    return answer
