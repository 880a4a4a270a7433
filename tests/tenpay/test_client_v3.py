"""TenpayV3Channel against the WeChat Pay simulator over real HTTP on loopback (spec §2, §6):
prepay, query, close, refunds, notifies, faults, platform keys and the trade bill."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.responses import Response

from payments.channels import (
    ChannelDeclinedError,
    ChannelRetryableError,
    NotifyRejectedError,
    OrderNumberUsedError,
    PaymentNotice,
    PayMethod,
    RefundNotice,
    RefundState,
    TradeAlreadyPaidError,
    TradeState,
)
from tenpay_adapter.client import build_tenpay_channels, default_http_client
from tenpay_adapter.client_v2 import TenpayV2Channel
from tenpay_adapter.client_v3 import TenpayV3Channel
from tenpay_adapter.config import TenpaySettings
from tenpay_adapter.sim_keys import KeyPair, generate_key_pair
from tenpay_adapter.sim_messages import v3_signed_headers
from tenpay_adapter.v3_signing import load_public_key, rsa_verify
from tests.lbs.sim_helpers import serving
from tests.tenpay.client_support import (
    FakeGateway,
    NotifyCapture,
    SimControl,
    new_no,
    prepay_request,
    refund_request,
    v2_account,
    v3_account,
)
from tests.tenpay.sim_support import (
    API_KEY,
    APPID,
    MCHID,
    OPENID,
    RunningTenpay,
    make_config,
    merchant_keys,
    platform_keys,
    running_tenpay,
)


@functools.cache
def stale_platform_keys() -> KeyPair:
    return generate_key_pair("retired platform")


@pytest.fixture(scope="module")
def capture_url() -> Iterator[tuple[NotifyCapture, str]]:
    capture = NotifyCapture()
    with serving(capture.app) as url:
        yield capture, f"{url}/notify"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningTenpay]:
    with running_tenpay(make_config()) as sim:
        yield sim


@pytest.fixture
def control(running: RunningTenpay) -> Iterator[SimControl]:
    running.state.reset()
    sim_control = SimControl(running.base_url)
    yield sim_control
    sim_control.close()


@pytest.fixture
def channel(running: RunningTenpay, control: SimControl) -> Iterator[TenpayV3Channel]:
    account = v3_account(running.base_url)
    with default_http_client(account) as http:
        yield TenpayV3Channel(account, http=http)


@pytest.fixture
def capture(capture_url: tuple[NotifyCapture, str], channel: TenpayV3Channel) -> NotifyCapture:
    capture_url[0].reset(channel)
    return capture_url[0]


@pytest.fixture
def notify_url(capture_url: tuple[NotifyCapture, str], capture: NotifyCapture) -> str:
    return capture_url[1]


def paid_trade(channel: TenpayV3Channel, control: SimControl, notify_url: str, fen: int) -> str:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url, amount_fen=fen))
    control.pay(out_trade_no)
    return out_trade_no


# -- prepay -------------------------------------------------------------------------------------


def test_jsapi_prepay_gives_bridge_params_signed_with_the_merchant_key(
    channel: TenpayV3Channel, running: RunningTenpay, notify_url: str
) -> None:
    request = prepay_request(new_no(), notify_url=notify_url)
    prepay = channel.prepay(request)
    params = prepay.jsapi_params
    assert prepay.method is PayMethod.jsapi
    assert params is not None
    assert params["package"] == f"prepay_id={prepay.prepay_id}"
    assert (params["appId"], params["signType"]) == (APPID, "RSA")
    message = "".join(params[k] + "\n" for k in ("appId", "timeStamp", "nonceStr", "package"))
    merchant_public = load_public_key(merchant_keys().certificate_pem)
    assert rsa_verify(merchant_public, message.encode(), params["paySign"])
    trade = running.state.ledger.find(out_trade_no=request.out_trade_no)
    assert trade is not None
    assert trade.prepay_id == prepay.prepay_id
    assert trade.request.time_expire == request.expires_at
    assert (trade.amount_fen, trade.request.openid) == (8888, OPENID)


def test_native_prepay_gives_a_code_url(channel: TenpayV3Channel, notify_url: str) -> None:
    prepay = channel.prepay(
        prepay_request(new_no(), notify_url=notify_url, method=PayMethod.native)
    )
    assert prepay.method is PayMethod.native
    assert prepay.jsapi_params is None
    assert prepay.code_url is not None
    assert prepay.code_url.startswith("weixin://wxpay/bizpayurl")


def test_repeat_prepay_gives_the_same_prepay_and_a_changed_amount_is_refused(
    channel: TenpayV3Channel, notify_url: str
) -> None:
    request = prepay_request(new_no(), notify_url=notify_url)
    first = channel.prepay(request)
    assert channel.prepay(request).prepay_id == first.prepay_id
    with pytest.raises(OrderNumberUsedError) as refused:
        channel.prepay(replace(request, amount_fen=request.amount_fen + 1))
    assert refused.value.code == "INVALID_REQUEST"  # the live form, "201 商户订单号重复"


def test_documented_duplicate_code_is_order_number_used_too(notify_url: str) -> None:
    with running_tenpay(make_config(duplicate_order_form="OUT_TRADE_NO_USED")) as sim:
        account = v3_account(sim.base_url)
        with default_http_client(account) as http:
            channel = TenpayV3Channel(account, http=http)
            request = prepay_request(new_no(), notify_url=notify_url)
            channel.prepay(request)
            with pytest.raises(OrderNumberUsedError) as refused:
                channel.prepay(replace(request, description="改了描述"))
    assert refused.value.code == "OUT_TRADE_NO_USED"


def test_prepay_of_a_paid_or_closed_number_is_refused(
    channel: TenpayV3Channel, control: SimControl, notify_url: str
) -> None:
    paid = paid_trade(channel, control, notify_url, 100)
    with pytest.raises(TradeAlreadyPaidError):
        channel.prepay(prepay_request(paid, notify_url=notify_url, amount_fen=100))
    closed = prepay_request(new_no(), notify_url=notify_url)
    channel.prepay(closed)
    channel.close(closed.out_trade_no)
    with pytest.raises(OrderNumberUsedError):
        channel.prepay(closed)


def test_page_payments_are_declined_without_a_call(channel: TenpayV3Channel) -> None:
    request = replace(prepay_request(new_no(), notify_url="http://x/"), method=PayMethod.page)
    with pytest.raises(ChannelDeclinedError) as declined:
        channel.prepay(request)
    assert declined.value.code == "METHOD_NOT_SUPPORTED"


# -- query and close ----------------------------------------------------------------------------


def test_query_says_unpaid_before_payment_and_not_found_for_an_unknown_number(
    channel: TenpayV3Channel, notify_url: str
) -> None:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url))
    status = channel.query(out_trade_no)
    assert (status.state, status.channel_state, status.paid_at) == (
        TradeState.unpaid,
        "NOTPAY",
        None,
    )
    assert channel.query(new_no()).state is TradeState.not_found


def test_paid_trade_queries_as_paid_with_amount_and_transaction_id(
    channel: TenpayV3Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, control, notify_url, 8888)
    trade = control.trade(out_trade_no)
    status = channel.query(out_trade_no)
    assert status.state is TradeState.paid
    assert status.channel_state == "SUCCESS"
    assert (status.amount_fen, status.currency, status.payer_id) == (8888, "CNY", OPENID)
    assert status.channel_trade_no == trade["transaction_id"]
    assert status.paid_at is not None
    assert status.paid_at.isoformat() == trade["paid_at"]


def test_declined_payment_queries_as_failed(
    channel: TenpayV3Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url))
    control.decline(out_trade_no)
    status = channel.query(out_trade_no)
    assert (status.state, status.channel_state) == (TradeState.failed, "PAYERROR")


def test_closed_trade_queries_as_closed_and_closing_again_or_unknown_is_fine(
    channel: TenpayV3Channel, notify_url: str
) -> None:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url))
    channel.close(out_trade_no)
    assert channel.query(out_trade_no).state is TradeState.closed
    channel.close(out_trade_no)
    channel.close(new_no())


def test_closing_a_paid_trade_says_already_paid(
    channel: TenpayV3Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, control, notify_url, 500)
    with pytest.raises(TradeAlreadyPaidError):
        channel.close(out_trade_no)
    assert channel.query(out_trade_no).state is TradeState.paid


# -- refunds ------------------------------------------------------------------------------------


def test_partial_and_full_refunds_repeat_safely_and_over_refund_is_declined(
    channel: TenpayV3Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, control, notify_url, 10000)
    partial = refund_request(
        out_trade_no, new_no("R"), refund_fen=3000, total_fen=10000, notify_url=notify_url
    )
    first = channel.refund(partial)
    assert first.state in (RefundState.processing, RefundState.succeeded)
    assert (first.amount_fen, first.out_trade_no) == (3000, out_trade_no)
    again = channel.refund(partial)
    assert again.channel_refund_no == first.channel_refund_no
    rest = replace(partial, out_refund_no=new_no("R"), refund_fen=7000)
    channel.refund(rest)
    assert (control.trade(out_trade_no)["refunded_fen"], channel.refund(rest).amount_fen) == (
        10000,
        7000,
    )
    with pytest.raises(ChannelDeclinedError) as declined:
        channel.refund(replace(partial, out_refund_no=new_no("R"), refund_fen=1))
    assert declined.value.code == "INVALID_REQUEST"
    assert channel.query(out_trade_no).state is TradeState.paid  # REFUND is still paid


def test_refund_query_reports_the_outcome_and_an_unknown_refund_is_declined(
    channel: TenpayV3Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, control, notify_url, 2000)
    out_refund_no = new_no("R")
    request = refund_request(
        out_trade_no, out_refund_no, refund_fen=500, total_fen=2000, notify_url=notify_url
    )
    accepted = channel.refund(request)
    status = channel.query_refund(out_refund_no)
    assert (status.state, status.channel_state, status.amount_fen) == (
        RefundState.succeeded,
        "SUCCESS",
        500,
    )
    assert status.channel_refund_no == accepted.channel_refund_no
    assert status.succeeded_at is not None
    with pytest.raises(ChannelDeclinedError) as declined:
        channel.query_refund(new_no("R"))
    assert declined.value.code == "RESOURCE_NOT_EXISTS"


# -- notifies -----------------------------------------------------------------------------------


def _payment_captures(capture: NotifyCapture) -> list[PaymentNotice]:
    found = capture.wait_for(lambda c: any(isinstance(x.notice, PaymentNotice) for x in c))
    return [c.notice for c in found if isinstance(c.notice, PaymentNotice)]


def test_payment_and_refund_notifies_parse_into_notices(
    channel: TenpayV3Channel, control: SimControl, capture: NotifyCapture, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, control, notify_url, 8888)
    [payment] = _payment_captures(capture)
    assert payment.account == MCHID
    assert payment.event_id.startswith("EV-")
    assert payment.status == channel.query(out_trade_no)
    out_refund_no = new_no("R")
    channel.refund(
        refund_request(
            out_trade_no, out_refund_no, refund_fen=888, total_fen=8888, notify_url=notify_url
        )
    )
    captured = capture.wait_for(lambda c: any(isinstance(x.notice, RefundNotice) for x in c))
    [refund] = [c.notice for c in captured if isinstance(c.notice, RefundNotice)]
    assert refund.event_id.startswith("EV-")
    assert refund.event_id != payment.event_id
    assert refund.status == channel.query_refund(out_refund_no)
    assert all(c.refusal is None for c in captured)


def test_tampered_foreign_or_stale_notifies_are_rejected(
    running: RunningTenpay,
    channel: TenpayV3Channel,
    control: SimControl,
    capture: NotifyCapture,
    notify_url: str,
) -> None:
    paid_trade(channel, control, notify_url, 300)
    _payment_captures(capture)
    genuine = next(c for c in capture.captured if c.notice is not None)
    headers, body = genuine.headers, genuine.body
    tampered = body.replace(b'"summary":"', b'"summary":"!')
    wrong_serial = headers | {"wechatpay-serial": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"}
    account = v3_account(running.base_url)
    other_mchid = TenpayV3Channel(account.model_copy(update={"mchid": "1900000109"}))
    later = TenpayV3Channel(account, clock=lambda: time.time() + account.notify_window_s + 5)
    probe = headers | {"wechatpay-signature": "WECHATPAY/SIGNTEST/AAAA"}
    unsigned = {k: v for k, v in headers.items() if k != "wechatpay-signature"}
    for reader, notify_headers, notify_body, reason in (
        (channel, headers, tampered, "does not verify"),
        (channel, wrong_serial, body, "unknown Wechatpay-Serial"),
        (channel, probe, body, "probe"),
        (channel, unsigned, body, "unsigned"),
        (other_mchid, headers, body, "another merchant"),
        (later, headers, body, "Timestamp"),
    ):
        with pytest.raises(NotifyRejectedError, match=reason):
            reader.parse_notify(notify_headers, notify_body)
    assert isinstance(channel.parse_notify(headers, body), PaymentNotice)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("signtest_probe", "probe"),
        ("stale_notify_timestamp", "Timestamp"),
        ("bad_notify_signature", "does not verify"),
    ],
)
def test_notify_faults_are_refused_and_the_redelivery_accepted(
    fault: str,
    reason: str,
    channel: TenpayV3Channel,
    control: SimControl,
    capture: NotifyCapture,
    notify_url: str,
) -> None:
    control.fault("payment_notify", fault)
    paid_trade(channel, control, notify_url, 400)
    _payment_captures(capture)
    refused, accepted = capture.captured[0], capture.captured[-1]
    assert refused.notice is None
    assert refused.refusal is not None
    assert reason in refused.refusal
    assert isinstance(accepted.notice, PaymentNotice)


def test_notify_answers_are_v3s_own() -> None:
    account = v3_account("http://127.0.0.1:9")
    channel = TenpayV3Channel(account)
    ack, nack = channel.notify_ack(), channel.notify_nack("the signature does not verify")
    assert 200 <= ack.status_code < 300
    assert nack.status_code == 500
    assert json.loads(nack.body) == {"code": "FAIL", "message": "失败"}


# -- faults -------------------------------------------------------------------------------------


def test_timeout_is_retryable_and_the_trade_is_learnable_by_query(
    running: RunningTenpay, channel: TenpayV3Channel, control: SimControl, notify_url: str
) -> None:
    account = v3_account(running.base_url, timeout_s=0.3)
    with default_http_client(account) as http:
        impatient = TenpayV3Channel(account, http=http)
        control.fault("order", "timeout", delay_s=1.0)
        request = prepay_request(new_no(), notify_url=notify_url)
        with pytest.raises(ChannelRetryableError) as unknown:
            impatient.prepay(request)
    assert unknown.value.code == "TIMEOUT"
    assert channel.query(request.out_trade_no).state is TradeState.unpaid
    assert channel.prepay(request).prepay_id == control.trade(request.out_trade_no)["prepay_id"]


@pytest.mark.parametrize("mode", ["http_500", "system_error"])
def test_gateway_errors_are_retryable(
    mode: str, channel: TenpayV3Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url))
    control.fault("query", mode)
    with pytest.raises(ChannelRetryableError):
        channel.query(out_trade_no)
    assert channel.query(out_trade_no).state is TradeState.unpaid


def _fake_answer(kind: str) -> Response:
    body = b'{"prepay_id":"wx201410272009395522657a690389285100"}'
    config = make_config()
    if kind == "unsigned":
        return Response(body, media_type="application/json")
    headers = {
        "bad_signature": lambda: v3_signed_headers(config, body, bad_signature=True),
        "probe": lambda: v3_signed_headers(config, body, probe=True),
        "stale": lambda: v3_signed_headers(config, body, timestamp=int(time.time()) - 3600),
    }[kind]()
    return Response(body, headers=headers, media_type="application/json")


@pytest.mark.parametrize("kind", ["bad_signature", "unsigned", "probe", "stale"])
def test_an_answer_that_does_not_verify_is_retryable(kind: str) -> None:
    gateway = FakeGateway(lambda _path: _fake_answer(kind))
    with serving(gateway.app) as base_url:
        account = v3_account(base_url)
        with default_http_client(account) as http:
            channel = TenpayV3Channel(account, http=http)
            with pytest.raises(ChannelRetryableError) as unknown:
                channel.prepay(prepay_request(new_no(), notify_url="http://127.0.0.1:9/n"))
    assert unknown.value.code == "BAD_RESPONSE"


# -- platform keys ------------------------------------------------------------------------------


def test_an_unknown_platform_serial_is_learned_from_the_certificates(
    running: RunningTenpay, control: SimControl
) -> None:
    account = v3_account(
        running.base_url, platform_certificate_pem=stale_platform_keys().certificate_pem
    )
    with default_http_client(account) as http:
        channel = TenpayV3Channel(account, http=http)
        assert channel.query(new_no()).state is TradeState.not_found
        assert channel.query(new_no()).state is TradeState.not_found


def test_wechat_pay_public_key_mode_verifies_by_key_id(notify_url: str) -> None:
    key_id = "PUB_KEY_ID_0114232134912410000000000000"
    with running_tenpay(make_config(public_key_id=key_id)) as sim:
        account = v3_account(
            sim.base_url,
            platform_certificate_pem=None,
            platform_public_key_pem=platform_keys().public_key_pem,
            platform_public_key_id=key_id,
        )
        with default_http_client(account) as http:
            channel = TenpayV3Channel(account, http=http)
            prepay = channel.prepay(prepay_request(new_no(), notify_url=notify_url))
    assert prepay.prepay_id


# -- statements ---------------------------------------------------------------------------------


def test_statement_lists_the_days_payments_and_refunds_in_exact_fen(
    channel: TenpayV3Channel, control: SimControl, notify_url: str
) -> None:
    big = paid_trade(channel, control, notify_url, 8888)
    small = paid_trade(channel, control, notify_url, 1234)
    out_refund_no = new_no("R")
    channel.refund(
        refund_request(big, out_refund_no, refund_fen=1000, total_fen=8888, notify_url=notify_url)
    )
    channel.query_refund(out_refund_no)  # settles it at the simulator
    statement = channel.download_statement(control.today())
    assert (statement.channel, statement.account) == ("tenpay_v3", MCHID)
    lines = {
        (x.kind, x.out_trade_no, x.amount_fen, x.out_refund_no, x.fee_fen) for x in statement.lines
    }
    assert lines == {
        ("payment", big, 8888, None, 53),  # 88.88 × 0.6% = 0.53 yuan
        ("payment", small, 1234, None, 7),
        ("refund", big, 1000, out_refund_no, -6),
    }
    paid = {x.out_trade_no: x.channel_trade_no for x in statement.lines if x.kind == "payment"}
    assert paid[big] == control.trade(big)["transaction_id"]


def test_statement_of_a_day_without_trades_is_empty(
    channel: TenpayV3Channel, control: SimControl
) -> None:
    assert channel.download_statement(control.today()).lines == ()


# -- the factory --------------------------------------------------------------------------------


def test_build_tenpay_channels_makes_one_channel_per_account_by_api_version() -> None:
    base = "http://127.0.0.1:9"
    default = v3_account(base)
    settings = TenpaySettings(
        mchid=default.mchid,
        apiv3_key=default.apiv3_key,
        merchant_private_key_pem=default.merchant_private_key_pem,
        merchant_serial_no=default.merchant_serial_no,
        platform_certificate_pem=default.platform_certificate_pem,
        accounts=[v2_account(base, mchid="1900000109", api_key=API_KEY)],
    )
    channels = build_tenpay_channels(settings, default_appid=APPID)
    assert [(type(c), c.name, c.account) for c in channels] == [
        (TenpayV3Channel, "tenpay_v3", MCHID),
        (TenpayV2Channel, "tenpay_v2", "1900000109"),
    ]
    assert build_tenpay_channels(TenpaySettings(), default_appid=APPID) == []


def test_a_v2_account_is_not_a_v3_channel() -> None:
    with pytest.raises(ValueError, match="v2"):
        TenpayV3Channel(v2_account("http://127.0.0.1:9"))
