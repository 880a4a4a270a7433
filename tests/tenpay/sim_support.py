"""The WeChat Pay simulator on loopback for tests: throwaway keys (made once per session, RSA
key generation is slow), a signing v3 client built from the codecs, and a notify receiver
standing in for the merchant's notify URLs.

    with running_tenpay(make_config()) as sim:
        merchant = V3Merchant(sim.base_url)
        prepay = merchant.post("/v3/pay/transactions/jsapi", order_body(...))
        sim.state.pay(out_trade_no)
"""

from __future__ import annotations

import functools
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenpay_adapter.sim_config import TenpaySimConfig
from tenpay_adapter.sim_keys import KeyPair, generate_key_pair
from tenpay_adapter.sim_notify import Delivery
from tenpay_adapter.sim_state import TenpaySimState
from tenpay_adapter.simulator import create_simulator_app
from tenpay_adapter.v2_signing import (
    SIGN_MD5,
    decrypt_req_info,
    notify_reply,
    parse_xml,
    signed,
    to_xml,
    verify_v2,
)
from tenpay_adapter.v3_signing import (
    aes_gcm_decrypt,
    authorization_header,
    load_private_key,
    load_public_key,
    verify_response,
)
from tests.lbs.sim_helpers import serving

APPID = "wx2421b1c4370ec43b"
MCHID = "1900009191"
API_KEY = "192006250b4c09247ec02edce69f6a2d"
APIV3_KEY = "NNBrid9HKLvoQm1PqwZnYtjbyg3uIf6I"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
# Redelivery in milliseconds instead of minutes: 15 s × 0.001 = 15 ms.
FAST_RETRY = 0.001


@functools.cache
def merchant_keys() -> KeyPair:
    return generate_key_pair("test merchant")


@functools.cache
def platform_keys() -> KeyPair:
    return generate_key_pair("test platform")


def make_config(**overrides: Any) -> TenpaySimConfig:
    merchant, platform = merchant_keys(), platform_keys()
    config = TenpaySimConfig(
        appid=APPID,
        mchid=MCHID,
        api_key=API_KEY,
        apiv3_key=APIV3_KEY,
        merchant_public_key_pem=merchant.certificate_pem,
        merchant_serial_no=merchant.serial_no,
        platform_private_key_pem=platform.private_key_pem,
        platform_certificate_pem=platform.certificate_pem,
        retry_scale=FAST_RETRY,
        notify_timeout_s=2.0,
    )
    return replace(config, **overrides)


@dataclass(frozen=True)
class RunningTenpay:
    base_url: str
    state: TenpaySimState


@contextmanager
def running_tenpay(config: TenpaySimConfig) -> Iterator[RunningTenpay]:
    app = create_simulator_app(config)
    with serving(app) as base_url:
        yield RunningTenpay(base_url=base_url, state=app.state.sim)


def wait_until(predicate: Any, *, timeout_s: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(0.01)


def delivered(state: TenpaySimState, count: int = 1) -> list[Delivery]:
    """Every delivery so far, once `count` of them were answered correctly. The merchant's
    receiver sees a notify before the simulator records the answer, so wait for the record."""
    wait_until(
        lambda: sum(d.answered_ok for d in state.deliveries) >= count, what="answered deliveries"
    )
    return state.deliveries


# -- v3 ------------------------------------------------------------------------------------------


class V3Merchant:
    """Raw httpx plus the codecs: what our channel client will do, nothing more."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, private_key_pem: str = "") -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout_s)
        self._key = load_private_key(private_key_pem or merchant_keys().private_key_pem)

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
        timestamp: int | None = None,
    ) -> httpx.Response:
        url = f"{path}?{urlencode(params)}" if params else path
        content = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        authorization = authorization_header(
            mchid=MCHID,
            serial_no=merchant_keys().serial_no,
            private_key=self._key,
            method=method,
            url=url,
            body=content,
            timestamp=str(timestamp if timestamp is not None else int(time.time())),
            nonce=secrets.token_hex(16),
        )
        headers = {"Authorization": authorization, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self.http.request(method, url, content=content, headers=headers)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.request("POST", path, body)

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.request("GET", path, params=params or None)


def response_verifies(response: httpx.Response) -> bool:
    """The Wechatpay-* signature over the raw body, with the platform key (spec §2.2)."""
    headers = response.headers
    if headers.get("Wechatpay-Serial") != platform_keys().serial_no:
        return False
    return verify_response(
        public_key=load_public_key(platform_keys().certificate_pem),
        timestamp=headers.get("Wechatpay-Timestamp", ""),
        nonce=headers.get("Wechatpay-Nonce", ""),
        body=response.content,
        signature_b64=headers.get("Wechatpay-Signature", ""),
    )


def order_body(out_trade_no: str, *, total: int = 7000, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "appid": APPID,
        "mchid": MCHID,
        "description": "电影票 2 张 - 3 号厅",
        "out_trade_no": out_trade_no,
        "notify_url": "http://127.0.0.1:9/v3/notify",
        "attach": "order=42",
        "amount": {"total": total, "currency": "CNY"},
        "payer": {"openid": OPENID},
    }
    return body | overrides


def v2_call(params: dict[str, str], *, sign_type: str = SIGN_MD5) -> bytes:
    base = {"appid": APPID, "mch_id": MCHID, "nonce_str": secrets.token_hex(16)}
    if sign_type != SIGN_MD5:
        base["sign_type"] = sign_type
    return to_xml(signed(base | params, API_KEY, sign_type))


# -- the merchant's notify URLs -------------------------------------------------------------------


@dataclass
class Received:
    api_version: str
    body: bytes
    headers: dict[str, str]
    resource: dict[str, Any] = field(default_factory=dict)  # v3: decrypted; v2: fields


class NotifyReceiver:
    """`/v3/notify` verifies the platform signature and the timestamp window and decrypts the
    resource; `/v2/notify` verifies the sign, or decrypts `req_info` for refund notifies.
    A notify that fails a check gets 401 (v3) or a FAIL reply (v2) and lands in `rejected`;
    the first `fail_first` good ones get HTTP 500, to exercise redelivery."""

    def __init__(self, *, fail_first: int = 0, window_s: float = 300.0) -> None:
        self.fail_first = fail_first
        self.window_s = window_s
        self.accepted: list[Received] = []
        self.rejected: list[Received] = []
        self.failed = 0
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v3/notify", self._v3, methods=["POST"]),
                Route("/v2/notify", self._v2, methods=["POST"]),
            ]
        )

    def reset(self, *, fail_first: int = 0) -> None:
        with self._lock:
            self.accepted.clear()
            self.rejected.clear()
            self.failed = 0
            self.fail_first = fail_first

    def wait_for(self, count: int, *, timeout_s: float = 5.0) -> list[Received]:
        wait_until(lambda: len(self.accepted) >= count, timeout_s=timeout_s, what="notifies")
        with self._lock:
            return list(self.accepted)

    def _judge(self, received: Received, *, genuine: bool) -> str:
        """ "reject" (a failed check), "fail" (one of the first `fail_first`) or "accept"."""
        with self._lock:
            if not genuine:
                self.rejected.append(received)
                return "reject"
            if self.failed < self.fail_first:
                self.failed += 1
                return "fail"
            self.accepted.append(received)
            return "accept"

    async def _v3(self, request: Request) -> Response:
        body, headers = await request.body(), dict(request.headers)
        received = Received("v3", body, headers)
        stamp = headers.get("wechatpay-timestamp", "")
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= self.window_s
        genuine = verify_response(
            public_key=load_public_key(platform_keys().certificate_pem),
            timestamp=stamp,
            nonce=headers.get("wechatpay-nonce", ""),
            body=body,
            signature_b64=headers.get("wechatpay-signature", ""),
        )
        if genuine and fresh:
            resource = json.loads(body)["resource"]
            plaintext = aes_gcm_decrypt(
                apiv3_key=APIV3_KEY,
                nonce=resource["nonce"],
                ciphertext_b64=resource["ciphertext"],
                associated_data=resource["associated_data"],
            )
            received.resource = json.loads(plaintext)
        verdict = self._judge(received, genuine=genuine and fresh)
        if verdict == "reject":
            return JSONResponse({"code": "FAIL", "message": "签名错误"}, status_code=401)
        if verdict == "fail":
            return JSONResponse({"code": "FAIL", "message": "失败"}, status_code=500)
        return Response(status_code=204)

    async def _v2(self, request: Request) -> Response:
        body = await request.body()
        fields = parse_xml(body)
        received = Received("v2", body, dict(request.headers), fields)
        if "req_info" in fields:
            ok = "sign" not in fields
            received.resource = decrypt_req_info(fields["req_info"], API_KEY) if ok else {}
        else:
            ok = verify_v2(fields, API_KEY)
        verdict = self._judge(received, genuine=ok)
        reply = notify_reply(ok=verdict == "accept", message="OK" if ok else "签名失败")
        return Response(reply, media_type="text/xml")
