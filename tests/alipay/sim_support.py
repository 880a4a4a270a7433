"""The Alipay simulator on loopback for its own tests: the vectors' public test key pairs (no key
generation at test time), a raw signing client built from the codecs, and a notify receiver
standing in for the merchant's notify URL.

    with running_sim(make_config()) as sim:
        merchant = RawMerchant(sim.base_url)
        answer = merchant.call("alipay.trade.precreate", trade_biz(out_trade_no))
        sim.state.pay(out_trade_no)
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from payments.alipay.errors import AlipayProtocolError
from payments.alipay.signing import (
    beijing_timestamp,
    load_private_key,
    load_public_key,
    notify_sign_content,
    request_sign_content,
    response_key,
    rsa2_sign,
    rsa2_verify,
    signed_response_text,
)
from payments.alipay.sim_config import AlipaySimConfig
from payments.alipay.sim_notify import Delivery
from payments.alipay.sim_state import AlipaySimState
from payments.alipay.simulator import create_alipay_simulator_app
from tests.alipay.vectors import alipay_vector
from tests.lbs.sim_helpers import serving

APP_ID = "2021000000000001"
SELLER_ID = "2088102177296610"
# Redelivery in milliseconds: 4 min × 0.00002 = 4.8 ms; all 8 attempts within 2 s.
FAST_RETRY = 0.00002
# The parameters the official SDK puts in the query string; biz_content goes in the body.
COMMON_PARAMS = frozenset(
    {"app_id", "method", "format", "charset", "sign_type", "sign", "timestamp", "version",
     "notify_url", "return_url", "app_auth_token"}
)  # fmt: skip


def app_keys() -> dict[str, str]:
    """Ours: the application key pair (the merchant signs, the simulator verifies)."""
    return alipay_vector("app_keypair")


def alipay_keys() -> dict[str, str]:
    """Alipay's: the simulator signs answers and notifies, the merchant verifies."""
    return alipay_vector("alipay_keypair")


def make_config(**overrides: Any) -> AlipaySimConfig:
    config = AlipaySimConfig(
        app_id=APP_ID,
        seller_id=SELLER_ID,
        app_public_key_pem=app_keys()["public_key_pem"],
        alipay_private_key_pem=alipay_keys()["private_key_pkcs8_pem"],
        retry_scale=FAST_RETRY,
        notify_timeout_s=2.0,
        paying_settle_s=0.3,
        timeout_fault_s=2.0,
    )
    return replace(config, **overrides)


@dataclass(frozen=True)
class RunningSim:
    base_url: str
    state: AlipaySimState


@contextmanager
def running_sim(config: AlipaySimConfig) -> Iterator[RunningSim]:
    app = create_alipay_simulator_app(config)
    with serving(app) as base_url:
        yield RunningSim(base_url=base_url, state=app.state.sim)


def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 5.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(0.01)


def delivered(state: AlipaySimState, count: int = 1) -> list[Delivery]:
    """Every delivery so far, once `count` were answered correctly (the receiver sees a notify
    before the simulator records its answer, so wait for the record)."""
    wait_until(
        lambda: sum(d.answered_ok for d in state.deliveries) >= count, what="answered deliveries"
    )
    return state.deliveries


# -- the merchant ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A gateway answer as the merchant must read it: the `<method>_response` text cut out of
    the raw body, its sign, and whether that sign verifies with the Alipay public key."""

    response: httpx.Response
    key: str  # the member that holds the answer: <method>_response or error_response
    body: dict[str, Any]
    signed_text: str | None  # None: the answer carries no sign
    verified: bool

    @property
    def code(self) -> str:
        return str(self.body.get("code"))

    @property
    def sub_code(self) -> str | None:
        found = self.body.get("sub_code")
        return str(found) if found is not None else None


def read_answer(
    response: httpx.Response, method: str, *, alipay_public_key_pem: str = ""
) -> Answer:
    raw = response.text
    members: dict[str, Any] = json.loads(raw)
    key = response_key(method) if response_key(method) in members else "error_response"
    try:
        text, sign = signed_response_text(raw, method)
    except AlipayProtocolError:
        return Answer(response, key, members[key], None, False)
    public_key = load_public_key(alipay_public_key_pem or alipay_keys()["public_key_pem"])
    verified = rsa2_verify(public_key, text, sign)
    return Answer(response, key, json.loads(text), text, verified)


class RawMerchant:
    """httpx plus the codecs, sending like the official SDK: common parameters in the query
    string, biz_content in the form body."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        private_key_pem: str = "",
        app_id: str = APP_ID,
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout_s)
        self._key = load_private_key(private_key_pem or app_keys()["private_key_pkcs1_pem"])
        self._app_id = app_id

    def close(self) -> None:
        self.http.close()

    def signed(
        self,
        method: str,
        biz: dict[str, Any] | None = None,
        *,
        stamped_at: datetime | None = None,
        **common: str,
    ) -> dict[str, str]:
        params = {
            "app_id": self._app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": beijing_timestamp(stamped_at or datetime.now(UTC)),
            "version": "1.0",
        } | common
        if biz is not None:
            params["biz_content"] = json.dumps(biz, ensure_ascii=False, separators=(",", ":"))
        params["sign"] = rsa2_sign(self._key, request_sign_content(params))
        return params

    def send(self, params: dict[str, str], *, http_method: str = "POST") -> httpx.Response:
        if http_method == "GET":
            return self.http.get("/gateway.do", params=params)
        query = {k: v for k, v in params.items() if k in COMMON_PARAMS}
        form = {k: v for k, v in params.items() if k not in COMMON_PARAMS}
        return self.http.post(f"/gateway.do?{urlencode(query)}", data=form)

    def call(
        self,
        method: str,
        biz: dict[str, Any] | None = None,
        *,
        stamped_at: datetime | None = None,
        **common: str,
    ) -> Answer:
        params = self.signed(method, biz, stamped_at=stamped_at, **common)
        return read_answer(self.send(params), method)


def trade_biz(out_trade_no: str, *, amount: str = "88.88", **extra: Any) -> dict[str, Any]:
    return {"out_trade_no": out_trade_no, "total_amount": amount, "subject": "优惠券订单"} | extra


# -- trades the tests make -----------------------------------------------------------------------

PRECREATE = "alipay.trade.precreate"
QUERY = "alipay.trade.query"
REFUND = "alipay.trade.refund"


def new_no() -> str:
    return f"ORD{secrets.token_hex(8)}"


def precreate(merchant: RawMerchant, notify_url: str, *, amount: str = "88.88") -> str:
    out_trade_no = new_no()
    answer = merchant.call(PRECREATE, trade_biz(out_trade_no, amount=amount), notify_url=notify_url)
    assert (answer.code, answer.verified) == ("10000", True), answer.body
    return out_trade_no


def paid_trade(
    sim: RunningSim, merchant: RawMerchant, notify_url: str, *, amount: str = "88.88"
) -> str:
    out_trade_no = precreate(merchant, notify_url, amount=amount)
    sim.state.pay(out_trade_no)
    return out_trade_no


def query(merchant: RawMerchant, out_trade_no: str) -> dict[str, Any]:
    answer = merchant.call(QUERY, {"out_trade_no": out_trade_no})
    assert answer.verified
    return answer.body


def refund(merchant: RawMerchant, out_trade_no: str, amount: str, request_no: str) -> Answer:
    biz = {"out_trade_no": out_trade_no, "refund_amount": amount, "out_request_no": request_no}
    return merchant.call(REFUND, biz)


# -- the merchant's notify URL --------------------------------------------------------------------


@dataclass
class Received:
    fields: dict[str, str]
    raw: bytes
    genuine: bool
    content_type: str = ""


class NotifyReceiver:
    """`/notify` verifies the RSA2 sign by the notify rule (sign and sign_type excluded) with the
    Alipay public key and answers `success`. A notify that fails the check is answered `fail` and
    lands in `rejected`; the first `fail_first` genuine ones are answered `fail_reply`."""

    def __init__(self) -> None:
        self.accepted: list[Received] = []
        self.rejected: list[Received] = []
        self.fail_first = 0
        self.fail_reply = "fail"
        self._failed = 0
        self._lock = threading.Lock()
        self._public_key = load_public_key(alipay_keys()["public_key_pem"])
        self.app = Starlette(routes=[Route("/notify", self._notify, methods=["POST"])])

    def reset(self, *, fail_first: int = 0, fail_reply: str = "fail") -> None:
        with self._lock:
            self.accepted.clear()
            self.rejected.clear()
            self.fail_first, self.fail_reply, self._failed = fail_first, fail_reply, 0

    def wait_for(self, count: int, *, timeout_s: float = 5.0) -> list[Received]:
        wait_until(lambda: len(self.accepted) >= count, timeout_s=timeout_s, what="notifies")
        with self._lock:
            return list(self.accepted)

    def verifies(self, fields: dict[str, str]) -> bool:
        return rsa2_verify(self._public_key, notify_sign_content(fields), fields.get("sign", ""))

    async def _notify(self, request: Request) -> Response:
        raw = await request.body()
        fields = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        received = Received(fields, raw, self.verifies(fields), request.headers["content-type"])
        with self._lock:
            if not received.genuine:
                self.rejected.append(received)
                return PlainTextResponse("fail")
            if self._failed < self.fail_first:
                self._failed += 1
                return PlainTextResponse(self.fail_reply)
            self.accepted.append(received)
        return PlainTextResponse("success")
