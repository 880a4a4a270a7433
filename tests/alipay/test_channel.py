"""AlipayChannel against the Alipay simulator over real HTTP on loopback (spec §3, §6): the SDK
signs our requests and the simulator verifies them, the simulator signs its answers and notifies
and we verify them. Prepay, query, close, refunds, notifies, faults and the trade bill."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from payments.alipay.client import AlipayChannel
from payments.alipay.signing import BEIJING, load_public_key, request_sign_content, rsa2_verify
from payments.alipay.sim_state import FaultMode
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
from tests.alipay.channel_support import (
    APP_ID,
    OTHER_APP_ID,
    SELLER_ID,
    RunningAlipay,
    alipay_settings,
    app_keys,
    make_sim_config,
    new_no,
    prepay_request,
    refund_request,
    running_alipay,
)
from tests.lbs.sim_helpers import serving
from tests.tenpay.client_support import NotifyCapture
from tests.tenpay.sim_support import wait_until


@pytest.fixture(scope="module")
def capture_url() -> Iterator[tuple[NotifyCapture, str]]:
    capture = NotifyCapture()
    with serving(capture.app) as url:
        yield capture, f"{url}/notify"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningAlipay]:
    with running_alipay(make_sim_config()) as sim:
        yield sim


@pytest.fixture
def sim(running: RunningAlipay) -> RunningAlipay:
    running.state.reset()
    return running


@pytest.fixture
def channel(sim: RunningAlipay) -> Iterator[AlipayChannel]:
    with httpx.Client(timeout=5.0) as http:
        yield AlipayChannel(alipay_settings(sim.gateway_url), http=http)


@pytest.fixture
def capture(capture_url: tuple[NotifyCapture, str], channel: AlipayChannel) -> NotifyCapture:
    capture_url[0].reset(channel)
    return capture_url[0]


@pytest.fixture
def notify_url(capture_url: tuple[NotifyCapture, str], capture: NotifyCapture) -> str:
    return capture_url[1]


def precreated(channel: AlipayChannel, notify_url: str, fen: int = 8888) -> str:
    out_trade_no = new_no()
    channel.prepay(prepay_request(out_trade_no, notify_url=notify_url, amount_fen=fen))
    return out_trade_no


def paid_trade(channel: AlipayChannel, sim: RunningAlipay, notify_url: str, fen: int) -> str:
    out_trade_no = precreated(channel, notify_url, fen)
    sim.state.pay(out_trade_no)
    return out_trade_no


# -- prepay -------------------------------------------------------------------------------------


def test_native_prepay_gives_a_qr_code(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    request = prepay_request(new_no(), notify_url=notify_url)
    prepay = channel.prepay(request)
    assert prepay.method is PayMethod.native
    assert prepay.code_url is not None
    assert prepay.code_url.startswith("https://qr.alipay.com/")
    trade = sim.state.ledger.find(out_trade_no=request.out_trade_no, hidden=True)
    assert trade is not None
    assert (trade.amount_fen, trade.qr_code, trade.request.notify_url) == (
        8888,
        prepay.code_url,
        notify_url,
    )
    assert trade.request.timeout_s == 15 * 60  # timeout_express=15m


def test_repeat_precreate_gives_the_same_qr_and_changes_are_refused(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    request = prepay_request(new_no(), notify_url=notify_url)
    first = channel.prepay(request)
    assert channel.prepay(request).code_url == first.code_url
    with pytest.raises(OrderNumberUsedError) as changed:
        channel.prepay(replace(request, amount_fen=request.amount_fen + 1))
    assert changed.value.code == "ACQ.CONTEXT_INCONSISTENT"
    sim.state.pay(request.out_trade_no)
    with pytest.raises(TradeAlreadyPaidError) as paid:
        channel.prepay(request)
    assert paid.value.code == "ACQ.TRADE_HAS_SUCCESS"


def test_page_prepay_is_a_signed_gateway_url_made_without_a_call(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    request = prepay_request(new_no(), notify_url=notify_url, method=PayMethod.page)
    prepay = channel.prepay(request)
    assert prepay.method is PayMethod.page
    assert prepay.page_url is not None
    assert sim.state.ledger.find(out_trade_no=request.out_trade_no, hidden=True) is None
    url = urlsplit(prepay.page_url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == sim.gateway_url
    params = dict(parse_qsl(url.query, keep_blank_values=True))
    assert params["method"] == "alipay.trade.wap.pay"
    assert (params["app_id"], params["return_url"]) == (APP_ID, "http://127.0.0.1:9/pay/return")
    app_public = load_public_key(app_keys()["public_key_pem"])
    assert rsa2_verify(app_public, request_sign_content(params), params["sign"])
    biz = json.loads(params["biz_content"])
    assert biz["product_code"] == "QUICK_WAP_WAY"
    assert biz["time_expire"] == request.expires_at.astimezone(BEIJING).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    # The payer's browser opens it: the simulator verifies our signature and opens the trade.
    opened = httpx.get(prepay.page_url, timeout=5.0)
    assert opened.status_code == 200, opened.text
    trade = sim.state.ledger.find(out_trade_no=request.out_trade_no)
    assert trade is not None
    assert trade.amount_fen == 8888


def test_a_wap_trade_closed_unpaid_notifies_closed(
    channel: AlipayChannel, sim: RunningAlipay, capture: NotifyCapture, notify_url: str
) -> None:
    """Wap pay also notifies TRADE_CLOSED (§3.3); without refund fields it is "closed"."""
    request = prepay_request(new_no(), notify_url=notify_url, method=PayMethod.page)
    page_url = channel.prepay(request).page_url
    assert page_url is not None
    assert httpx.get(page_url, timeout=5.0).status_code == 200
    sim.state.decline(request.out_trade_no)
    [captured] = capture.wait_for(lambda c: len(c) >= 1)
    assert isinstance(captured.notice, PaymentNotice)
    status = captured.notice.status
    assert (status.state, status.channel_state, status.paid_at) == (
        TradeState.closed,
        "TRADE_CLOSED",
        None,
    )
    assert status == channel.query(request.out_trade_no)


def test_a_timestamp_in_host_local_time_is_refused(sim: RunningAlipay) -> None:
    """Why we stamp requests ourselves (§3.5, §6): the SDK's `datetime.now()` on a UTC host is
    Beijing time less 8 hours, and the gateway refuses it."""

    def utc_wall_time_read_as_beijing() -> datetime:
        return datetime.now(UTC).replace(tzinfo=BEIJING)

    sdk_like = AlipayChannel(alipay_settings(sim.gateway_url), clock=utc_wall_time_read_as_beijing)
    with pytest.raises(ChannelDeclinedError) as refused:
        sdk_like.query(new_no())
    assert refused.value.code == "isv.invalid-timestamp"


def test_jsapi_is_declined_without_a_call(channel: AlipayChannel) -> None:
    request = prepay_request(new_no(), notify_url="http://x/", method=PayMethod.jsapi)
    with pytest.raises(ChannelDeclinedError) as declined:
        channel.prepay(request)
    assert declined.value.code == "METHOD_NOT_SUPPORTED"


# -- query --------------------------------------------------------------------------------------


def test_query_before_scan_is_not_found_then_unpaid_once_scanned(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    out_trade_no = precreated(channel, notify_url)
    status = channel.query(out_trade_no)
    assert (status.state, status.channel_state) == (TradeState.not_found, "ACQ.TRADE_NOT_EXIST")
    sim.state.scan(out_trade_no)
    status = channel.query(out_trade_no)
    assert (status.state, status.channel_state, status.paid_at) == (
        TradeState.unpaid,
        "WAIT_BUYER_PAY",
        None,
    )
    assert status.amount_fen == 8888


def test_paid_trade_queries_as_paid_with_amount_trade_no_and_time(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, sim, notify_url, 8888)
    trade = sim.state.ledger.find(out_trade_no=out_trade_no)
    assert trade is not None
    status = channel.query(out_trade_no)
    assert (status.state, status.channel_state) == (TradeState.paid, "TRADE_SUCCESS")
    assert (status.amount_fen, status.channel_trade_no) == (8888, trade.trade_no)
    assert (status.paid_at, status.payer_id) == (trade.paid_at, trade.buyer_id)
    assert status.paid_at is not None
    assert status.paid_at.tzinfo is UTC


def test_paying_10003_is_paying_and_then_paid(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, sim, notify_url, 500)
    sim.state.add_fault("query", "paying_10003")
    status = channel.query(out_trade_no)
    assert (status.state, status.channel_state) == (TradeState.paying, "10003")
    assert channel.query(out_trade_no).state is TradeState.paid


def test_a_declined_payment_is_closed(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    out_trade_no = precreated(channel, notify_url)
    sim.state.decline(out_trade_no)
    status = channel.query(out_trade_no)
    assert (status.state, status.channel_state, status.paid_at) == (
        TradeState.closed,
        "TRADE_CLOSED",
        None,
    )


# -- close --------------------------------------------------------------------------------------


def test_closing_before_the_scan_after_it_and_again_all_succeed(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    unscanned = precreated(channel, notify_url)
    channel.close(unscanned)  # ACQ.TRADE_NOT_EXIST: nothing can be paid
    scanned = precreated(channel, notify_url)
    sim.state.scan(scanned)
    channel.close(scanned)
    assert channel.query(scanned).state is TradeState.closed
    channel.close(scanned)
    channel.close(new_no())


def test_closing_a_paid_trade_says_already_paid(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, sim, notify_url, 500)
    with pytest.raises(TradeAlreadyPaidError) as paid:
        channel.close(out_trade_no)
    assert paid.value.code == "ACQ.TRADE_STATUS_ERROR"
    assert channel.query(out_trade_no).state is TradeState.paid


# -- refunds ------------------------------------------------------------------------------------


def test_partial_and_full_refunds_repeat_safely_and_over_refund_is_declined(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, sim, notify_url, 10000)
    with pytest.raises(ChannelDeclinedError) as over:
        channel.refund(refund_request(out_trade_no, new_no("R"), refund_fen=10001, total_fen=10000))
    assert over.value.code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    partial = refund_request(out_trade_no, new_no("R"), refund_fen=3000, total_fen=10000)
    first = channel.refund(partial)
    assert (first.state, first.channel_state, first.amount_fen) == (
        RefundState.succeeded,
        "REFUND_SUCCESS",
        3000,
    )
    assert first.succeeded_at is not None
    # The repeat answers fund_change=N; the refund query confirms the one refund.
    assert channel.refund(partial) == first
    trade = sim.state.ledger.find(out_trade_no=out_trade_no)
    assert trade is not None
    assert trade.refunded_fen == 3000
    rest = replace(partial, out_refund_no=new_no("R"), refund_fen=7000)
    assert channel.refund(rest).amount_fen == 7000
    # Fully refunded: Alipay says TRADE_CLOSED, which is still "paid" (money moved).
    status = channel.query(out_trade_no)
    assert (status.state, status.channel_state, status.amount_fen) == (
        TradeState.paid,
        "TRADE_CLOSED",
        10000,
    )
    with pytest.raises(TradeAlreadyPaidError):
        channel.close(out_trade_no)
    with pytest.raises(ChannelDeclinedError):
        channel.refund(replace(partial, out_refund_no=new_no("R"), refund_fen=1))


def test_refund_query_finds_the_trade_by_memory_argument_or_numbering(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, sim, notify_url, 2000)
    out_refund_no = f"{out_trade_no}R1"  # payments' numbering (payments/service.py)
    accepted = channel.refund(
        refund_request(out_trade_no, out_refund_no, refund_fen=500, total_fen=2000)
    )
    assert channel.query_refund(out_refund_no) == accepted
    fresh = AlipayChannel(alipay_settings(sim.gateway_url))  # no memory of the refund
    assert fresh.query_refund(out_refund_no) == accepted
    assert fresh.query_refund(out_refund_no, out_trade_no=out_trade_no) == accepted
    unknown = channel.query_refund(f"{out_trade_no}R2")
    assert (unknown.state, unknown.channel_state) == (RefundState.processing, "NOT_CONFIRMED")
    with pytest.raises(ChannelDeclinedError) as declined:
        fresh.query_refund("refund-without-a-trade")
    assert declined.value.code == "OUT_TRADE_NO_UNKNOWN"


# -- notifies -----------------------------------------------------------------------------------


def _payment_captures(capture: NotifyCapture) -> list[PaymentNotice]:
    found = capture.wait_for(lambda c: any(isinstance(x.notice, PaymentNotice) for x in c))
    return [c.notice for c in found if isinstance(c.notice, PaymentNotice)]


def test_payment_notify_parses_into_the_queried_status(
    channel: AlipayChannel, sim: RunningAlipay, capture: NotifyCapture, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, sim, notify_url, 8888)
    [payment] = _payment_captures(capture)
    wait_until(lambda: any(d.answered_ok for d in sim.state.deliveries), what="the answer")
    [delivery] = [d for d in sim.state.deliveries if d.answered_ok]
    assert payment.account == APP_ID
    assert payment.event_id == delivery.fields["notify_id"]
    queried = channel.query(out_trade_no)
    assert payment.status == queried
    assert (payment.status.state, payment.status.amount_fen) == (TradeState.paid, 8888)
    assert delivery.answer == "success"


def _genuine_notify(
    channel: AlipayChannel, sim: RunningAlipay, capture: NotifyCapture, notify_url: str
) -> dict[str, str]:
    paid_trade(channel, sim, notify_url, 300)
    _payment_captures(capture)
    return dict(parse_qsl(capture.captured[0].body.decode(), keep_blank_values=True))


def _form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def test_tampered_foreign_or_misread_notifies_are_rejected(
    channel: AlipayChannel, sim: RunningAlipay, capture: NotifyCapture, notify_url: str
) -> None:
    fields = _genuine_notify(channel, sim, capture, notify_url)
    assert isinstance(channel.parse_notify({}, _form(fields)), PaymentNotice)
    other_app = AlipayChannel(alipay_settings(sim.gateway_url, app_id=OTHER_APP_ID))
    other_seller = AlipayChannel(alipay_settings(sim.gateway_url, seller_id="2088000000000001"))
    for reader, body, reason in (
        (channel, _form(fields | {"total_amount": "0.01"}), "does not verify"),
        (channel, _form(fields | {"sign_type": "RSA"}), "RSA2"),
        (channel, _form({k: v for k, v in fields.items() if k != "sign"}), "unsigned"),
        (channel, _form(fields) + b"&total_amount=0.01", "repeats"),
        (channel, _form(fields).replace(b"out_trade_no", b"\xff"), "UTF-8"),
        (channel, b"", "empty"),
        (other_app, _form(fields), "another app_id"),
        (other_seller, _form(fields), "another seller_id"),
    ):
        with pytest.raises(NotifyRejectedError, match=reason):
            reader.parse_notify({}, body)


def test_a_notify_verified_with_sign_type_in_the_content_fails(
    channel: AlipayChannel, sim: RunningAlipay, capture: NotifyCapture, notify_url: str
) -> None:
    """The classic mistake (§3.2), seen from the merchant's side: the simulator signs without
    sign_type, so content built with the request rule does not verify."""
    fields = _genuine_notify(channel, sim, capture, notify_url)
    alipay_public = load_public_key(make_sim_config().alipay_public_key_pem)
    assert not rsa2_verify(alipay_public, request_sign_content(fields), fields["sign"])
    assert isinstance(channel.parse_notify({}, _form(fields)), PaymentNotice)


def test_a_badly_signed_notify_is_refused_and_its_redelivery_accepted(
    channel: AlipayChannel, sim: RunningAlipay, capture: NotifyCapture, notify_url: str
) -> None:
    sim.state.add_fault("notify", "bad_notify_signature")
    paid_trade(channel, sim, notify_url, 400)
    _payment_captures(capture)
    refused, accepted = capture.captured[0], capture.captured[-1]
    assert refused.notice is None
    assert refused.refusal is not None
    assert "does not verify" in refused.refusal
    assert isinstance(accepted.notice, PaymentNotice)
    # Our receiver answers before the simulator records the answer: wait for the record.
    wait_until(
        lambda: any(d.answered_ok for d in sim.state.deliveries), what="the answered redelivery"
    )
    answers = [d.answer for d in sim.state.deliveries]
    assert answers[0] == "fail"
    assert answers[-1] == "success"


def test_refund_notifies_name_the_refund(
    capture_url: tuple[NotifyCapture, str],
) -> None:
    """A partial refund (where the product notifies it) and the full refund that closes the
    trade both arrive on the trade notify with out_biz_no: RefundNotices."""
    capture, notify_url = capture_url
    config = make_sim_config(
        notify_statuses={"precreate": frozenset({"TRADE_SUCCESS", "TRADE_CLOSED"})},
        notify_partial_refunds=True,
    )
    with running_alipay(config) as sim, httpx.Client(timeout=5.0) as http:
        channel = AlipayChannel(alipay_settings(sim.gateway_url), http=http)
        capture.reset(channel)
        out_trade_no = paid_trade(channel, sim, notify_url, 1000)
        partial, rest = f"{out_trade_no}R1", f"{out_trade_no}R2"
        channel.refund(refund_request(out_trade_no, partial, refund_fen=400, total_fen=1000))
        channel.refund(refund_request(out_trade_no, rest, refund_fen=600, total_fen=1000))
        captured = capture.wait_for(
            lambda c: sum(isinstance(x.notice, RefundNotice) for x in c) >= 2
        )
    refunds = [c.notice for c in captured if isinstance(c.notice, RefundNotice)]
    assert {(n.status.out_refund_no, n.status.channel_state) for n in refunds} == {
        (partial, "TRADE_SUCCESS"),
        (rest, "TRADE_CLOSED"),
    }
    assert all(n.status.state is RefundState.succeeded for n in refunds)
    assert all(n.status.out_trade_no == out_trade_no for n in refunds)
    assert all(n.status.succeeded_at is not None for n in refunds)
    assert len({n.event_id for n in refunds}) == 2
    assert all(c.refusal is None for c in captured)


def test_notify_answers_are_alipays_plain_text() -> None:
    channel = AlipayChannel(alipay_settings("http://127.0.0.1:9/gateway.do"))
    ack, nack = channel.notify_ack(), channel.notify_nack("the signature does not verify")
    assert (ack.status_code, ack.body, ack.media_type) == (200, b"success", "text/plain")
    assert (nack.status_code, nack.body, nack.media_type) == (200, b"fail", "text/plain")


# -- faults -------------------------------------------------------------------------------------


def test_timeout_is_retryable_and_the_trade_is_learnable(
    sim: RunningAlipay, channel: AlipayChannel, notify_url: str
) -> None:
    impatient = AlipayChannel(alipay_settings(sim.gateway_url, timeout_s=0.3))
    sim.state.add_fault("precreate", "timeout", delay_s=1.0)
    request = prepay_request(new_no(), notify_url=notify_url)
    with pytest.raises(ChannelRetryableError) as unknown:
        impatient.prepay(request)
    assert unknown.value.code == "TIMEOUT"
    trade = sim.state.ledger.find(out_trade_no=request.out_trade_no, hidden=True)
    assert trade is not None  # the effect took place
    assert channel.prepay(request).code_url == trade.qr_code


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("http_500", "HTTP_500"),
        ("system_error", "ACQ.SYSTEM_ERROR"),
        ("service_unavailable", "isp.unknow-error"),
        ("unsigned_response", "BAD_RESPONSE"),
        ("bad_response_signature", "BAD_RESPONSE"),
    ],
)
def test_gateway_faults_are_retryable(
    mode: FaultMode, code: str, channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, sim, notify_url, 600)
    sim.state.add_fault("query", mode)
    with pytest.raises(ChannelRetryableError) as unknown:
        channel.query(out_trade_no)
    assert unknown.value.code == code
    assert channel.query(out_trade_no).state is TradeState.paid


def test_a_refund_whose_answer_does_not_verify_is_retryable_and_refunds_once(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    out_trade_no = paid_trade(channel, sim, notify_url, 900)
    request = refund_request(out_trade_no, f"{out_trade_no}R1", refund_fen=900, total_fen=900)
    sim.state.add_fault("refund", "bad_response_signature")
    with pytest.raises(ChannelRetryableError):
        channel.refund(request)
    retried = channel.refund(request)  # the same number: fund_change=N, confirmed by query
    assert (retried.state, retried.amount_fen) == (RefundState.succeeded, 900)
    trade = sim.state.ledger.find(out_trade_no=out_trade_no)
    assert trade is not None
    assert trade.refunded_fen == 900


# -- statements ---------------------------------------------------------------------------------


def _beijing_today(sim: RunningAlipay) -> datetime:
    return sim.state.now().astimezone(BEIJING)


def test_statement_lists_the_days_payments_and_refunds_in_exact_fen(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    big = paid_trade(channel, sim, notify_url, 8888)
    small = paid_trade(channel, sim, notify_url, 1234)
    out_refund_no = f"{big}R1"
    channel.refund(refund_request(big, out_refund_no, refund_fen=1000, total_fen=8888))
    statement = channel.download_statement(_beijing_today(sim).date())
    assert (statement.channel, statement.account) == ("alipay", APP_ID)
    lines = {
        (x.kind, x.out_trade_no, x.amount_fen, x.out_refund_no, x.fee_fen) for x in statement.lines
    }
    assert lines == {
        ("payment", big, 8888, None, 53),  # 88.88 × 0.6% = 0.53 yuan
        ("payment", small, 1234, None, 7),
        ("refund", big, 1000, out_refund_no, -6),
    }
    trade = sim.state.ledger.find(out_trade_no=big)
    assert trade is not None
    paid = {x.out_trade_no: x for x in statement.lines if x.kind == "payment"}
    assert (paid[big].channel_trade_no, paid[big].at) == (trade.trade_no, trade.paid_at)


def test_statement_of_a_day_without_trades_is_empty(
    channel: AlipayChannel, sim: RunningAlipay
) -> None:
    yesterday = (_beijing_today(sim) - timedelta(days=1)).date()
    assert channel.download_statement(yesterday).lines == ()


def test_a_bill_not_made_yet_is_retryable_not_empty(
    channel: AlipayChannel, sim: RunningAlipay, notify_url: str
) -> None:
    paid_trade(channel, sim, notify_url, 100)
    tomorrow = (_beijing_today(sim) + timedelta(days=1)).date()
    with pytest.raises(ChannelRetryableError) as later:
        channel.download_statement(tomorrow)
    assert later.value.code == "BILL_NOT_READY"


# -- who we are ---------------------------------------------------------------------------------


def test_the_channel_is_named_alipay_and_its_account_is_the_app_id() -> None:
    channel = AlipayChannel(alipay_settings("http://127.0.0.1:9/gateway.do"))
    assert (channel.name, channel.account) == ("alipay", APP_ID)
    assert SELLER_ID.startswith("2088")
