"""TenpayV2Channel against the WeChat Pay simulator over real HTTP on loopback (spec §1, §6):
unifiedorder, orderquery, closeorder, refunds, notifies (signed and req_info), faults and the
downloadbill statement."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from pathlib import Path

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
from tenpay_adapter.client import default_http_client
from tenpay_adapter.client_v2 import TenpayV2Channel
from tenpay_adapter.sim_keys import generate_key_pair
from tenpay_adapter.v2_signing import (
    encrypt_req_info,
    parse_xml,
    sign_v2,
    signed,
    to_xml,
)
from tests.lbs.sim_helpers import serving
from tests.tenpay.client_support import (
    FakeGateway,
    NotifyCapture,
    SimControl,
    new_no,
    prepay_request,
    refund_request,
    v2_account,
)
from tests.tenpay.sim_support import (
    API_KEY,
    APPID,
    MCHID,
    OPENID,
    RunningTenpay,
    make_config,
    running_tenpay,
    wait_until,
)

OTHER_KEY = "0123456789abcdef0123456789abcdef"
FIVE_MINUTES_S = 301


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
def channel(running: RunningTenpay, control: SimControl) -> Iterator[TenpayV2Channel]:
    account = v2_account(running.base_url)
    with default_http_client(account) as http:
        yield TenpayV2Channel(account, http=http)


@pytest.fixture
def capture(capture_url: tuple[NotifyCapture, str], channel: TenpayV2Channel) -> NotifyCapture:
    capture_url[0].reset(channel)
    return capture_url[0]


@pytest.fixture
def notify_url(capture_url: tuple[NotifyCapture, str], capture: NotifyCapture) -> str:
    return capture_url[1]


def paid_trade(channel: TenpayV2Channel, control: SimControl, notify_url: str, fen: int) -> str:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url, amount_fen=fen))
    control.pay(out_trade_no)
    return out_trade_no


# -- prepay -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_jsapi_prepay_gives_bridge_params_signed_with_the_api_key(
    sign_type: str, running: RunningTenpay, control: SimControl, notify_url: str
) -> None:
    account = v2_account(running.base_url, sign_type=sign_type)
    with default_http_client(account) as http:
        request = prepay_request(new_no(), notify_url=notify_url)
        prepay = TenpayV2Channel(account, http=http).prepay(request)
    params = prepay.jsapi_params
    assert prepay.method is PayMethod.jsapi
    assert params is not None
    assert (params["appId"], params["signType"]) == (APPID, sign_type)
    assert params["package"] == f"prepay_id={prepay.prepay_id}"
    unsigned = {name: value for name, value in params.items() if name != "paySign"}
    assert params["paySign"] == sign_v2(unsigned, API_KEY, sign_type)
    trade = running.state.ledger.find(out_trade_no=request.out_trade_no)
    assert trade is not None
    assert trade.prepay_id == prepay.prepay_id
    assert trade.request.time_expire == request.expires_at.astimezone(UTC)
    assert (trade.amount_fen, trade.request.openid, trade.request.sign_type) == (
        8888,
        OPENID,
        sign_type,
    )


def test_native_prepay_gives_a_code_url(channel: TenpayV2Channel, notify_url: str) -> None:
    prepay = channel.prepay(
        prepay_request(new_no(), notify_url=notify_url, method=PayMethod.native)
    )
    assert prepay.method is PayMethod.native
    assert prepay.jsapi_params is None
    assert prepay.code_url is not None
    assert prepay.code_url.startswith("weixin://wxpay/bizpayurl")


def test_repeat_prepay_gives_the_same_prepay_and_a_changed_amount_is_refused(
    channel: TenpayV2Channel, notify_url: str
) -> None:
    request = prepay_request(new_no(), notify_url=notify_url)
    first = channel.prepay(request)
    assert channel.prepay(request).prepay_id == first.prepay_id
    with pytest.raises(OrderNumberUsedError) as refused:
        channel.prepay(replace(request, amount_fen=request.amount_fen + 1))
    assert refused.value.code == "INVALID_REQUEST"


def test_prepay_of_a_paid_or_closed_number_is_refused(
    channel: TenpayV2Channel, control: SimControl, notify_url: str
) -> None:
    paid = paid_trade(channel, control, notify_url, 100)
    with pytest.raises(TradeAlreadyPaidError):
        channel.prepay(prepay_request(paid, notify_url=notify_url, amount_fen=100))
    closed = prepay_request(new_no(), notify_url=notify_url)
    channel.prepay(closed)
    control.advance_clock(FIVE_MINUTES_S)
    channel.close(closed.out_trade_no)
    with pytest.raises(OrderNumberUsedError):
        channel.prepay(closed)


# -- query and close ----------------------------------------------------------------------------


def test_query_says_unpaid_before_payment_and_not_found_for_an_unknown_number(
    channel: TenpayV2Channel, notify_url: str
) -> None:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url))
    status = channel.query(out_trade_no)
    assert (status.state, status.channel_state, status.paid_at) == (
        TradeState.unpaid,
        "NOTPAY",
        None,
    )
    missing = channel.query(new_no())
    assert (missing.state, missing.channel_state) == (TradeState.not_found, "ORDERNOTEXIST")


def test_paid_trade_queries_as_paid_with_amount_and_transaction_id(
    channel: TenpayV2Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, control, notify_url, 8888)
    trade = control.trade(out_trade_no)
    status = channel.query(out_trade_no)
    assert (status.state, status.channel_state) == (TradeState.paid, "SUCCESS")
    assert (status.amount_fen, status.currency, status.payer_id) == (8888, "CNY", OPENID)
    assert status.channel_trade_no == trade["transaction_id"]
    assert status.paid_at is not None
    assert status.paid_at.isoformat() == trade["paid_at"]


def test_declined_payment_queries_as_failed(
    channel: TenpayV2Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url))
    control.decline(out_trade_no)
    assert channel.query(out_trade_no).state is TradeState.failed


def test_close_waits_five_minutes_then_closes_and_closing_again_is_fine(
    channel: TenpayV2Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url))
    with pytest.raises(ChannelRetryableError) as too_early:  # spec §1.6
        channel.close(out_trade_no)
    assert too_early.value.code == "SYSTEMERROR"
    control.advance_clock(FIVE_MINUTES_S)
    channel.close(out_trade_no)
    assert channel.query(out_trade_no).state is TradeState.closed
    channel.close(out_trade_no)  # ORDERCLOSED
    channel.close(new_no())  # ORDERNOTEXIST


def test_closing_a_paid_trade_says_already_paid(
    channel: TenpayV2Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, control, notify_url, 500)
    control.advance_clock(FIVE_MINUTES_S)
    with pytest.raises(TradeAlreadyPaidError):
        channel.close(out_trade_no)


# -- refunds ------------------------------------------------------------------------------------


def test_partial_and_full_refunds_repeat_safely_and_over_refund_is_declined(
    channel: TenpayV2Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, control, notify_url, 10000)
    partial = refund_request(
        out_trade_no, new_no("R"), refund_fen=3000, total_fen=10000, notify_url=notify_url
    )
    first = channel.refund(partial)
    assert (first.state, first.amount_fen, first.out_trade_no) == (
        RefundState.processing,
        3000,
        out_trade_no,
    )
    assert channel.refund(partial).channel_refund_no == first.channel_refund_no
    channel.refund(replace(partial, out_refund_no=new_no("R"), refund_fen=7000))
    assert control.trade(out_trade_no)["refunded_fen"] == 10000
    with pytest.raises(ChannelDeclinedError) as over:
        channel.refund(replace(partial, out_refund_no=new_no("R"), refund_fen=1))
    assert over.value.code == "ERROR"
    with pytest.raises(ChannelDeclinedError) as mismatch:
        channel.refund(replace(partial, refund_fen=2999))
    assert mismatch.value.code == "REFUND_FEE_MISMATCH"
    assert channel.query(out_trade_no).channel_state == "REFUND"


def test_refund_query_reports_the_outcome_and_an_unknown_refund_is_declined(
    channel: TenpayV2Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, control, notify_url, 2000)
    out_refund_no = new_no("R")
    accepted = channel.refund(
        refund_request(
            out_trade_no, out_refund_no, refund_fen=500, total_fen=2000, notify_url=notify_url
        )
    )
    status = channel.query_refund(out_refund_no)
    assert (status.state, status.amount_fen, status.out_trade_no) == (
        RefundState.succeeded,
        500,
        out_trade_no,
    )
    assert status.channel_refund_no == accepted.channel_refund_no
    assert status.succeeded_at is not None
    with pytest.raises(ChannelDeclinedError) as declined:
        channel.query_refund(new_no("R"))
    assert declined.value.code == "REFUNDNOTEXIST"


# -- notifies -----------------------------------------------------------------------------------


def _payment_notices(capture: NotifyCapture) -> list[PaymentNotice]:
    found = capture.wait_for(lambda c: any(isinstance(x.notice, PaymentNotice) for x in c))
    return [c.notice for c in found if isinstance(c.notice, PaymentNotice)]


def test_payment_and_refund_notifies_parse_into_notices(
    channel: TenpayV2Channel, control: SimControl, capture: NotifyCapture, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, control, notify_url, 8888)
    [payment] = _payment_notices(capture)
    status = channel.query(out_trade_no)
    assert payment.status == status
    assert payment.account == MCHID
    assert payment.event_id == f"{status.channel_trade_no}:SUCCESS"
    out_refund_no = new_no("R")
    channel.refund(
        refund_request(
            out_trade_no, out_refund_no, refund_fen=888, total_fen=8888, notify_url=notify_url
        )
    )
    captured = capture.wait_for(lambda c: any(isinstance(x.notice, RefundNotice) for x in c))
    [refund] = [c.notice for c in captured if isinstance(c.notice, RefundNotice)]
    assert refund.status == channel.query_refund(out_refund_no)
    assert refund.event_id == f"{refund.status.channel_refund_no}:SUCCESS"
    assert all(c.refusal is None for c in captured)


def test_hmac_notify_without_sign_type_verifies_by_the_sign_length(notify_url: str) -> None:
    config = make_config(v2_notify_omits_hmac_sign_type=True)
    with running_tenpay(config) as sim, SimControl(sim.base_url) as control:
        account = v2_account(sim.base_url, sign_type="HMAC-SHA256")
        with default_http_client(account) as http:
            channel = TenpayV2Channel(account, http=http)
            out_trade_no = new_no()
            channel.prepay(prepay_request(out_trade_no, notify_url=notify_url))
            control.pay(out_trade_no)
            wait_until(lambda: sim.state.deliveries, what="the payment notify")
            deliveries = sim.state.deliveries
            fields = parse_xml(deliveries[0].body)
            notice = channel.parse_notify({}, deliveries[0].body)
    assert "sign_type" not in fields
    assert len(fields["sign"]) == 64
    assert isinstance(notice, PaymentNotice)
    assert notice.status.out_trade_no == out_trade_no


def test_tampered_hostile_or_foreign_notifies_are_rejected(
    running: RunningTenpay,
    channel: TenpayV2Channel,
    control: SimControl,
    capture: NotifyCapture,
    notify_url: str,
) -> None:
    paid_trade(channel, control, notify_url, 300)
    _payment_notices(capture)
    body = next(c.body for c in capture.captured if c.notice is not None)
    fields = parse_xml(body)
    other_mchid = TenpayV2Channel(v2_account(running.base_url, mchid="1900000109"))
    refund_info = {"out_refund_no": "R1", "refund_id": "5000", "refund_status": "SUCCESS"}
    refund_info |= {"refund_fee": "100", "success_time": "2024-01-02 03:04:05"}
    outer = {"return_code": "SUCCESS", "appid": APPID, "mch_id": MCHID, "nonce_str": "n"}
    for reader, notify_body, reason in (
        (channel, to_xml(fields | {"total_fee": "301"}), "does not verify"),
        (channel, to_xml({k: v for k, v in fields.items() if k != "sign"}), "does not verify"),
        (channel, b'<!DOCTYPE xml [<!ENTITY x "y">]>' + body, "unreadable"),
        (channel, to_xml(fields | {"return_code": "FAIL"}), "FAIL"),
        (other_mchid, body, "another merchant"),
        (channel, to_xml(outer | {"req_info": encrypt_req_info(refund_info, OTHER_KEY)}), "notify"),
        (channel, to_xml(outer | {"req_info": "bm90IGEgYmxvY2s="}), "req_info"),
    ):
        with pytest.raises(NotifyRejectedError, match=reason):
            reader.parse_notify({}, notify_body)
    assert isinstance(channel.parse_notify({}, body), PaymentNotice)
    genuine_refund = to_xml(outer | {"req_info": encrypt_req_info(refund_info, API_KEY)})
    assert isinstance(channel.parse_notify({}, genuine_refund), RefundNotice)


def test_badly_signed_notify_is_refused_and_the_redelivery_accepted(
    channel: TenpayV2Channel, control: SimControl, capture: NotifyCapture, notify_url: str
) -> None:
    control.fault("payment_notify", "bad_notify_signature")
    paid_trade(channel, control, notify_url, 400)
    _payment_notices(capture)
    refused, accepted = capture.captured[0], capture.captured[-1]
    assert refused.refusal is not None
    assert "does not verify" in refused.refusal
    assert isinstance(accepted.notice, PaymentNotice)


def test_notify_answers_are_v2s_own_xml() -> None:
    channel = TenpayV2Channel(v2_account("http://127.0.0.1:9"))
    ack, nack = channel.notify_ack(), channel.notify_nack("bad\x00 sign")
    assert ack.status_code == 200
    assert ack.body == (
        b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
        b"<return_msg><![CDATA[OK]]></return_msg></xml>"
    )
    assert parse_xml(nack.body) == {"return_code": "FAIL", "return_msg": "bad sign"}


# -- faults -------------------------------------------------------------------------------------


def test_timeout_is_retryable_and_the_trade_is_learnable_by_query(
    running: RunningTenpay, channel: TenpayV2Channel, control: SimControl, notify_url: str
) -> None:
    account = v2_account(running.base_url, timeout_s=0.3)
    with default_http_client(account) as http:
        control.fault("order", "timeout", delay_s=1.0)
        request = prepay_request(new_no(), notify_url=notify_url)
        with pytest.raises(ChannelRetryableError) as unknown:
            TenpayV2Channel(account, http=http).prepay(request)
    assert unknown.value.code == "TIMEOUT"
    assert channel.query(request.out_trade_no).state is TradeState.unpaid


@pytest.mark.parametrize(
    ("mode", "code"), [("http_500", "HTTP_500"), ("system_error", "SYSTEMERROR")]
)
def test_gateway_errors_are_retryable(
    mode: str, code: str, channel: TenpayV2Channel, control: SimControl, notify_url: str
) -> None:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url))
    control.fault("query", mode)
    with pytest.raises(ChannelRetryableError) as unknown:
        channel.query(out_trade_no)
    assert unknown.value.code == code


def _fake_answer(kind: str) -> Response:
    answer = {"return_code": "SUCCESS", "return_msg": "OK", "appid": APPID, "mch_id": MCHID}
    answer |= {"nonce_str": "abc", "result_code": "SUCCESS", "prepay_id": "wx2014"}
    answer |= {"trade_type": "JSAPI"}
    if kind == "bad_sign":
        body = to_xml(signed(answer, OTHER_KEY, "HMAC-SHA256"))
    elif kind == "unsigned":
        body = to_xml(answer)
    else:
        body = to_xml({"return_code": "FAIL", "return_msg": kind})
    return Response(body, media_type="text/xml")


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("bad_sign", ChannelRetryableError, "BAD_RESPONSE"),
        ("unsigned", ChannelRetryableError, "BAD_RESPONSE"),
        ("签名错误", ChannelDeclinedError, "FAIL"),
        ("系统繁忙,请稍后再试", ChannelRetryableError, "FAIL"),
    ],
)
def test_answers_are_trusted_only_when_signed(kind: str, error: type[Exception], code: str) -> None:
    gateway = FakeGateway(lambda _path: _fake_answer(kind))
    with serving(gateway.app) as base_url:
        account = v2_account(base_url)
        with default_http_client(account) as http, pytest.raises(error) as raised:
            TenpayV2Channel(account, http=http).prepay(
                prepay_request(new_no(), notify_url="http://x/")
            )
    assert getattr(raised.value, "code", None) == code


def test_a_wrong_api_key_is_declined_by_the_gateway(
    running: RunningTenpay, control: SimControl
) -> None:
    account = v2_account(running.base_url, api_key=OTHER_KEY)
    with default_http_client(account) as http, pytest.raises(ChannelDeclinedError) as declined:
        TenpayV2Channel(account, http=http).query(new_no())
    assert declined.value.code == "FAIL"


# -- statements ---------------------------------------------------------------------------------


def test_statement_lists_the_days_payments_and_refunds_in_exact_fen(
    channel: TenpayV2Channel, control: SimControl, notify_url: str
) -> None:
    big = paid_trade(channel, control, notify_url, 8888)
    small = paid_trade(channel, control, notify_url, 29)  # the int(0.29 * 100) == 28 trap, §6
    out_refund_no = new_no("R")
    channel.refund(
        refund_request(big, out_refund_no, refund_fen=1000, total_fen=8888, notify_url=notify_url)
    )
    channel.query_refund(out_refund_no)
    statement = channel.download_statement(control.today())
    assert (statement.channel, statement.account) == ("tenpay_v2", MCHID)
    lines = {
        (x.kind, x.out_trade_no, x.amount_fen, x.out_refund_no, x.fee_fen) for x in statement.lines
    }
    assert lines == {
        ("payment", big, 8888, None, 53),
        ("payment", small, 29, None, 0),
        ("refund", big, 1000, out_refund_no, -6),
    }


def test_statement_of_a_day_without_trades_is_empty(
    channel: TenpayV2Channel, control: SimControl
) -> None:
    assert channel.download_statement(control.today()).lines == ()


# -- mutual TLS ----------------------------------------------------------------------------------


def test_refunds_can_carry_the_merchant_certificate(tmp_path: Path) -> None:
    pair = generate_key_pair("apiclient")
    cert, key = tmp_path / "apiclient_cert.pem", tmp_path / "apiclient_key.pem"
    cert.write_text(pair.certificate_pem)
    key.write_text(pair.private_key_pem)
    account = v2_account("https://api.mch.weixin.qq.com")
    channel = TenpayV2Channel(account, client_cert_path=str(cert), client_key_path=str(key))
    assert channel.account == MCHID
    with pytest.raises(FileNotFoundError):
        TenpayV2Channel(account, client_cert_path=str(tmp_path / "missing.pem"))
