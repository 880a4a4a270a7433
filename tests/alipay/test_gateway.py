"""The request AlipayChannel sends and the answers it believes, against a fake gateway that says
what the simulator never would (spec §3.1, §3.2, §3.4, §3.5): the SDK's signature over our
parameters, Beijing timestamps, answers signed with the wrong key or SHA-1, unknown codes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payments.alipay.client import AlipayChannel
from payments.alipay.signing import (
    load_private_key,
    load_public_key,
    request_sign_content,
    rsa2_sign,
    rsa2_verify,
)
from payments.channels import (
    ChannelDeclinedError,
    ChannelRetryableError,
    ChannelUnreachableError,
    TradeState,
)
from tests.alipay.channel_support import (
    APP_ID,
    alipay_keys,
    alipay_settings,
    app_keys,
    new_no,
    prepay_request,
)
from tests.lbs.sim_helpers import serving

Answer = Callable[[dict[str, str]], Response]


class FakeGateway:
    """Records each request's merged parameters and answers with `answer(params)`."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[dict[str, str]] = []
        self.content_types: list[str] = []
        self.app = Starlette(routes=[Route("/gateway.do", self._gateway, methods=["POST"])])

    async def _gateway(self, request: Request) -> Response:
        form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        params = dict(parse_qsl(request.url.query, keep_blank_values=True)) | dict(form)
        self.requests.append(params)
        self.content_types.append(request.headers.get("content-type", ""))
        return self.answer(params)


def _alipay_key() -> RSAPrivateKey:
    return load_private_key(alipay_keys()["private_key_pkcs8_pem"])


def signed(method: str, inner: dict[str, Any], *, key: RSAPrivateKey | None = None) -> Response:
    text = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
    sign = rsa2_sign(key or _alipay_key(), text)
    body = '{"' + method.replace(".", "_") + '_response":' + text + ',"sign":"' + sign + '"}'
    return Response(body, media_type="application/json;charset=utf-8")


def _not_exist(_params: dict[str, str]) -> Response:
    return signed(
        "alipay.trade.query",
        {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"},
    )


@pytest.fixture
def fake() -> Iterator[tuple[FakeGateway, AlipayChannel]]:
    gateway = FakeGateway(_not_exist)
    with serving(gateway.app) as base_url, httpx.Client(timeout=5.0) as http:
        yield gateway, AlipayChannel(alipay_settings(f"{base_url}/gateway.do"), http=http)


def test_requests_carry_the_common_parameters_signed_by_the_sdk(
    fake: tuple[FakeGateway, AlipayChannel],
) -> None:
    gateway, channel = fake
    before = datetime.now(UTC).replace(microsecond=0)
    assert channel.query("ORD20240101123045003").state is TradeState.not_found
    [params] = gateway.requests
    assert {k: params[k] for k in ("app_id", "method", "format", "charset", "sign_type")} == {
        "app_id": APP_ID,
        "method": "alipay.trade.query",
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
    }
    assert params["version"] == "1.0"
    assert params["biz_content"] == '{"out_trade_no":"ORD20240101123045003"}'
    # Beijing wall time whatever the host's zone (the SDK would stamp local time, §3.5).
    stamped = datetime.strptime(params["timestamp"] + "+0800", "%Y-%m-%d %H:%M:%S%z")
    assert 0 <= (stamped - before).total_seconds() <= 5
    app_public = load_public_key(app_keys()["public_key_pem"])
    assert rsa2_verify(app_public, request_sign_content(params), params["sign"])
    assert gateway.content_types[0].startswith("application/x-www-form-urlencoded")


def test_the_request_timestamp_follows_the_channels_clock(
    fake: tuple[FakeGateway, AlipayChannel],
) -> None:
    gateway, channel = fake
    settings = alipay_settings(channel._gateway.gateway_url)
    fixed = AlipayChannel(settings, clock=lambda: datetime(2024, 1, 1, 4, 30, 45, tzinfo=UTC))
    fixed.query(new_no())
    assert gateway.requests[-1]["timestamp"] == "2024-01-01 12:30:45"


def _sha1_signed(_params: dict[str, str]) -> Response:
    text = '{"code":"10000","msg":"Success","out_trade_no":"T1","trade_status":"TRADE_SUCCESS"}'
    sign = _alipay_key().sign(text.encode(), padding.PKCS1v15(), hashes.SHA1())
    body = '{"alipay_trade_query_response":' + text + ',"sign":"' + base64.b64encode(sign).decode()
    return Response(body + '"}', media_type="application/json")


def _wrong_key(_params: dict[str, str]) -> Response:
    app_key = load_private_key(app_keys()["private_key_pkcs8_pem"])
    return signed(
        "alipay.trade.query", {"code": "10000", "trade_status": "TRADE_SUCCESS"}, key=app_key
    )


def _unsigned_error(_params: dict[str, str]) -> Response:
    inner = '{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}'
    return Response('{"alipay_trade_query_response":' + inner + "}")


def _not_json(_params: dict[str, str]) -> Response:
    return Response("<html>502 Bad Gateway</html>", media_type="text/html")


def _another_trade(_params: dict[str, str]) -> Response:
    return signed(
        "alipay.trade.query",
        {"code": "10000", "out_trade_no": "SOMEONE-ELSE", "trade_status": "TRADE_SUCCESS"},
    )


def _unknown_code(_params: dict[str, str]) -> Response:
    return signed("alipay.trade.query", {"code": "50000", "msg": "?"})


def _float_amount(_params: dict[str, str]) -> Response:
    text = (
        '{"code":"10000","out_trade_no":"T1","trade_no":"2024","trade_status":"TRADE_SUCCESS",'
        '"total_amount":88.88}'
    )
    body = '{"alipay_trade_query_response":' + text + ',"sign":"' + rsa2_sign(_alipay_key(), text)
    return Response(body + '"}', media_type="application/json")


@pytest.mark.parametrize(
    "answer",
    [
        _sha1_signed,
        _wrong_key,
        _unsigned_error,
        _not_json,
        _another_trade,
        _unknown_code,
        _float_amount,
    ],
)
def test_answers_that_cannot_be_believed_are_retryable(answer: Answer) -> None:
    gateway = FakeGateway(answer)
    with serving(gateway.app) as base_url:
        channel = AlipayChannel(alipay_settings(f"{base_url}/gateway.do"))
        with pytest.raises(ChannelRetryableError) as unknown:
            channel.query("T1")
    assert unknown.value.code == "BAD_RESPONSE"


def _error_response(_params: dict[str, str]) -> Response:
    # A gateway-level refusal may come under error_response, signed all the same.
    return signed(
        "error",
        {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id"},
    )


def _no_permission(_params: dict[str, str]) -> Response:
    return signed("alipay.trade.precreate", {"code": "40006", "msg": "Insufficient Permissions"})


@pytest.mark.parametrize(
    ("answer", "code"),
    [(_error_response, "isv.invalid-app-id"), (_no_permission, "40006")],
)
def test_final_refusals_are_declined_with_the_sub_code_or_code(answer: Answer, code: str) -> None:
    gateway = FakeGateway(answer)
    with serving(gateway.app) as base_url:
        channel = AlipayChannel(alipay_settings(f"{base_url}/gateway.do"))
        with pytest.raises(ChannelDeclinedError) as declined:
            channel.prepay(prepay_request(new_no(), notify_url="http://127.0.0.1:9/n"))
    assert declined.value.code == code
    assert not isinstance(declined.value, ChannelRetryableError)


def test_an_unreachable_gateway_is_told_apart_from_an_unknown_outcome() -> None:
    gateway = FakeGateway(_not_exist)
    with serving(gateway.app) as base_url:
        url = f"{base_url}/gateway.do"
    channel = AlipayChannel(alipay_settings(url))  # the server is gone: connection refused
    with pytest.raises(ChannelUnreachableError) as unreachable:
        channel.query("T1")
    # Still retryable (settled by asking again), and nothing left us: routing may go elsewhere.
    assert isinstance(unreachable.value, ChannelRetryableError)
    assert unreachable.value.code == "UNREACHABLE"
