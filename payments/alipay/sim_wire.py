"""What every gateway method of the simulator shares (spec §3.1, §3.2, §3.4): the error answer
(`code`, `msg`, `sub_code`, `sub_msg`), the signed answer text, and reading biz_content.

The answer is `{"<method>_response":{…},"sign":"…"}`: the inner object is serialised once and
signed as those exact characters, which are then embedded as they are (spec §3.2: the merchant
verifies the substring, never a re-serialisation). Every answer is signed, errors included
(§3.5: an unsigned one makes the official SDK raise "response shape maybe illegal").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from fastapi import Request

from payments.alipay.errors import AlipayProtocolError
from payments.alipay.signing import fen_of, parse_beijing, rsa2_sign
from payments.alipay.sim_config import AlipaySimConfig
from payments.alipay.sim_state import AlipaySimState, Fault
from payments.alipay.sim_trades import Refusal

MESSAGES: Final = {
    "10000": "Success",
    "10003": "order success pay inprocess",
    "20000": "Service Currently Unavailable",
    "40001": "Missing Required Arguments",
    "40002": "Invalid Arguments",
    "40004": "Business Failed",
    "40006": "Insufficient Permissions",
}
_REFUSAL_TEXT: Final = {
    Refusal.TRADE_NOT_EXIST: "交易不存在",
    Refusal.TRADE_HAS_SUCCESS: "交易已被支付",
    Refusal.TRADE_HAS_CLOSE: "交易已经关闭",
    Refusal.TRADE_HAS_FINISHED: "交易已经完结",
    Refusal.TRADE_STATUS_ERROR: "交易状态不合法",
    Refusal.CONTEXT_INCONSISTENT: "交易信息被篡改",
}
_OUT_NO_RE = re.compile(r"[0-9A-Za-z_\-]{1,64}")
# timeout_express: 1m to 15d; 1c ("by the end of today") is read as one day.
_TIMEOUT_RE = re.compile(r"([1-9][0-9]{0,4})([mhdc])")
_TIMEOUT_UNIT_S: Final = {"m": 60, "h": 3600, "d": 86400, "c": 86400}


class GatewayError(Exception):
    """An answer that is not 10000: its code, sub_code and sub_msg, and fields kept with it
    (a refund error still names out_trade_no, refund_fee…)."""

    def __init__(
        self, code: str, sub_code: str, sub_msg: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code} {sub_code}")
        self.code = code
        self.sub_code = sub_code
        self.sub_msg = sub_msg
        self.extra = extra or {}

    def payload(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "msg": MESSAGES[self.code],
            "sub_code": self.sub_code,
            "sub_msg": self.sub_msg,
            **self.extra,
        }


def missing(name: str) -> GatewayError:
    return GatewayError("40001", "isv.missing-parameter", f"缺少必选参数 {name}")


def invalid(name: str, why: str = "") -> GatewayError:
    return GatewayError("40002", "isv.invalid-parameter", f"参数 {name} 无效{why}")


def refused(config: AlipaySimConfig, refusal: Refusal, **extra: Any) -> GatewayError:
    if refusal is Refusal.OVER_REFUND:
        return GatewayError("40004", config.over_refund_sub_code, "退款金额超限", extra)
    return GatewayError("40004", refusal.value, _REFUSAL_TEXT[refusal], extra)


def system_error() -> GatewayError:
    return GatewayError("40004", "ACQ.SYSTEM_ERROR", "系统错误")


def service_unavailable() -> GatewayError:
    return GatewayError("20000", "isp.unknow-error", "系统繁忙")


@dataclass
class Call:
    """One gateway request past the common checks."""

    sim: AlipaySimState
    request: Request
    method: str
    params: dict[str, str]  # query string and form merged
    biz: dict[str, Any] = field(default_factory=dict)
    fault: Fault | None = None  # a request fault that shapes the answer, not the effect

    @property
    def config(self) -> AlipaySimConfig:
        return self.sim.config

    def fault_is(self, mode: str) -> bool:
        return self.fault is not None and self.fault.mode == mode

    # -- biz_content --------------------------------------------------------------------------

    def text(self, name: str, *, required: bool = False, max_len: int = 256) -> str:
        value = self.biz.get(name, "")
        if not isinstance(value, str):
            raise invalid(name, "（应为字符串）")
        if required and not value:
            raise missing(name)
        if len(value) > max_len:
            raise invalid(name, f"（超过 {max_len} 个字符）")
        return value

    def out_no(self, name: str, *, required: bool = False) -> str:
        value = self.text(name, required=required, max_len=64)
        if value and not _OUT_NO_RE.fullmatch(value):
            raise invalid(name, "（只能是字母、数字、下划线和短横线）")
        return value

    def amount_fen(self, name: str) -> int:
        """A yuan string, 0.01 to 100000000, two decimals at most (spec §3.1)."""
        value = self.biz.get(name)
        if value is None or value == "":
            raise missing(name)
        if not isinstance(value, str):
            # A JSON number was already rounded by someone's float: refused, never trusted.
            raise invalid(name, "（金额应为字符串）")
        try:
            return fen_of(value)
        except AlipayProtocolError:
            raise invalid(
                name, "（单位为元，精确到小数点后两位，取值范围 [0.01,100000000]）"
            ) from None

    def trade_ids(self) -> tuple[str | None, str | None]:
        """out_trade_no and trade_no: one of them at least."""
        out_trade_no = self.out_no("out_trade_no") or None
        trade_no = self.text("trade_no", max_len=64) or None
        if out_trade_no is None and trade_no is None:
            raise GatewayError(
                "40004", "ACQ.INVALID_PARAMETER", "out_trade_no 和 trade_no 不能同时为空"
            )
        return out_trade_no, trade_no

    def time_expire(self) -> datetime | None:
        """The absolute deadline (Beijing time) wap/page pay and others accept."""
        value = self.text("time_expire", max_len=19)
        if not value:
            return None
        try:
            deadline = parse_beijing(value)
        except AlipayProtocolError:
            raise invalid("time_expire", "（格式为 yyyy-MM-dd HH:mm:ss）") from None
        if deadline <= self.sim.now():
            raise invalid("time_expire", "（已过期）")
        return deadline

    def timeout_s(self) -> float | None:
        value = self.text("timeout_express", max_len=8)
        if not value:
            return None
        found = _TIMEOUT_RE.fullmatch(value)
        seconds = int(found.group(1)) * _TIMEOUT_UNIT_S[found.group(2)] if found else 0
        if not 60 <= seconds <= 15 * 86400:
            raise invalid("timeout_express", "（取值范围 1m～15d）")
        return float(seconds)


def parse_biz_content(params: dict[str, str]) -> dict[str, Any]:
    raw = params.get("biz_content", "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid("biz_content", "（不是合法的 JSON）") from None
    if not isinstance(value, dict):
        raise invalid("biz_content", "（应为 JSON 对象）")
    return value


def answer_text(
    config: AlipaySimConfig, key: str, payload: dict[str, Any], *, sign: str = "good"
) -> str:
    """The whole answer. `sign`: "good"; "none" (the `unsigned_response` fault); "bad" (a
    sign over other text, the `bad_response_signature` fault)."""
    inner = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    head = json.dumps(key)
    if sign == "none":
        return "{" + head + ":" + inner + "}"
    signed_text = inner if sign == "good" else inner + " "
    signature = rsa2_sign(config.alipay_private_key, signed_text)
    return "{" + head + ":" + inner + ',"sign":' + json.dumps(signature) + "}"
