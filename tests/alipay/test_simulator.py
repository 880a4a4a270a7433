"""The Alipay simulator over real HTTP on loopback, driven with raw httpx and the codecs (spec §3,
§5): signatures both ways, precreate and the scan, bar-code pay and 10003, page/wap pay through
the cashier, close and cancel, refunds and their idempotency, bills and notifies with
redelivery. Faults and the official SDK: test_simulator_faults.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from payments.alipay.bill import KIND_REFUND, KIND_TRADE, parse_bill
from payments.alipay.signing import (
    BEIJING,
    load_public_key,
    notify_sign_content,
    request_sign_content,
    rsa2_verify,
)
from tests.alipay.sim_support import (
    APP_ID,
    PRECREATE,
    QUERY,
    SELLER_ID,
    NotifyReceiver,
    RawMerchant,
    RunningSim,
    alipay_keys,
    delivered,
    make_config,
    new_no,
    paid_trade,
    precreate,
    query,
    read_answer,
    refund,
    running_sim,
    trade_biz,
    wait_until,
)
from tests.lbs.sim_helpers import serving


@pytest.fixture(scope="module")
def receiver_url() -> Iterator[tuple[NotifyReceiver, str]]:
    receiver = NotifyReceiver()
    with serving(receiver.app) as url:
        yield receiver, f"{url}/notify"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSim]:
    with running_sim(make_config()) as sim:
        yield sim


@pytest.fixture
def sim(running: RunningSim, receiver_url: tuple[NotifyReceiver, str]) -> RunningSim:
    running.state.reset()
    receiver_url[0].reset()
    return running


@pytest.fixture
def receiver(sim: RunningSim, receiver_url: tuple[NotifyReceiver, str]) -> NotifyReceiver:
    return receiver_url[0]


@pytest.fixture
def notify_url(receiver_url: tuple[NotifyReceiver, str]) -> str:
    return receiver_url[1]


@pytest.fixture
def merchant(sim: RunningSim) -> Iterator[RawMerchant]:
    client = RawMerchant(sim.base_url)
    yield client
    client.close()


# -- signatures ------------------------------------------------------------------------------------


def test_signed_precreate_gets_a_qr_code_signed_over_the_exact_answer_text(
    merchant: RawMerchant,
) -> None:
    answer = merchant.call(PRECREATE, trade_biz("ORD1"))
    assert answer.verified
    assert answer.key == "alipay_trade_precreate_response"
    assert answer.body["qr_code"].startswith("https://qr.alipay.com/")
    assert answer.response.text.startswith('{"alipay_trade_precreate_response":{"code":"10000"')
    assert answer.signed_text is not None
    assert answer.signed_text in answer.response.text
    public = load_public_key(alipay_keys()["public_key_pem"])
    sign = answer.response.json()["sign"]
    respaced = answer.signed_text.replace(",", ", ")  # a re-serialisation does not verify
    assert not rsa2_verify(public, respaced, sign)


def test_everything_in_the_query_string_verifies_too(merchant: RawMerchant) -> None:
    params = merchant.signed(PRECREATE, trade_biz(new_no()))
    answer = read_answer(merchant.send(params, http_method="GET"), PRECREATE)
    assert (answer.code, answer.verified) == ("10000", True)


def test_bad_signature_is_refused_with_a_signed_40002(sim: RunningSim) -> None:
    impostor = RawMerchant(sim.base_url, private_key_pem=alipay_keys()["private_key_pkcs8_pem"])
    answer = impostor.call(PRECREATE, trade_biz(new_no()))
    impostor.close()
    assert (answer.code, answer.sub_code, answer.verified) == (
        "40002",
        "isv.invalid-signature",
        True,
    )
    assert answer.body["msg"] == "Invalid Arguments"
    assert "sign_type=RSA2" in answer.body["sub_msg"]  # the content the gateway verified


@pytest.mark.parametrize(
    ("change", "code", "sub_code"),
    [
        ({"app_id": "2021000000000009"}, "40002", "isv.invalid-app-id"),
        ({"format": "XML"}, "40002", "isv.invalid-format"),
        ({"charset": "gbk"}, "40002", "isv.invalid-charset"),
        ({"sign_type": "RSA"}, "40002", "isv.invalid-signature-type"),
        ({"version": "2.0"}, "40002", "isv.invalid-version"),
        ({"timestamp": "2024/01/01 12:00:00"}, "40002", "isv.invalid-timestamp"),
        ({"timestamp": ""}, "40001", "isv.missing-timestamp"),
    ],
)
def test_common_parameters_are_checked_and_the_refusal_signed(
    merchant: RawMerchant, change: dict[str, Any], code: str, sub_code: str
) -> None:
    answer = merchant.call(PRECREATE, trade_biz(new_no()), **change)
    assert (answer.code, answer.sub_code, answer.verified) == (code, sub_code, True)


def test_timestamp_outside_the_window_and_unsigned_and_unknown_methods(
    merchant: RawMerchant,
) -> None:
    stale = datetime.now(UTC) - timedelta(hours=8)  # a UTC host's SDK, §3.5
    late = merchant.call(PRECREATE, trade_biz(new_no()), stamped_at=stale)
    assert (late.sub_code, late.verified) == ("isv.invalid-timestamp", True)
    params = merchant.signed(PRECREATE, trade_biz(new_no()))
    del params["sign"]
    unsigned = read_answer(merchant.send(params), PRECREATE)
    assert (unsigned.code, unsigned.sub_code) == ("40001", "isv.missing-signature")
    unknown = merchant.call("alipay.trade.nosuch", {})
    assert (unknown.key, unknown.sub_code, unknown.verified) == (
        "error_response",
        "isv.invalid-method",
        True,
    )


def test_methods_not_signed_up_for_answer_40006() -> None:
    with running_sim(make_config(enabled_methods=frozenset({QUERY}))) as sim:
        merchant = RawMerchant(sim.base_url)
        answer = merchant.call(PRECREATE, trade_biz(new_no()))
        merchant.close()
    assert (answer.code, answer.sub_code) == ("40006", "isv.insufficient-isv-permissions")


@pytest.mark.parametrize("amount", ["88.888", "0.00", "100000000.01", "-1", "8e1", ""])
def test_amounts_are_yuan_with_two_decimals_at_most(merchant: RawMerchant, amount: str) -> None:
    answer = merchant.call(PRECREATE, trade_biz(new_no(), amount=amount))
    assert answer.code == ("40001" if amount == "" else "40002")
    assert answer.verified


# -- trades ----------------------------------------------------------------------------------------


def test_precreate_trade_exists_only_once_the_buyer_scans(
    sim: RunningSim, merchant: RawMerchant, notify_url: str
) -> None:
    out_trade_no = precreate(merchant, notify_url)
    for method in (QUERY, "alipay.trade.close"):
        unseen = merchant.call(method, {"out_trade_no": out_trade_no})
        assert (unseen.code, unseen.sub_code) == ("40004", "ACQ.TRADE_NOT_EXIST")
    scanned = httpx.post(f"{sim.base_url}/sim/trades/{out_trade_no}/scan").json()
    assert scanned["status"] == "WAIT_BUYER_PAY"
    shown = query(merchant, out_trade_no)
    assert shown["trade_status"] == "WAIT_BUYER_PAY"
    assert shown["trade_no"] == scanned["trade_no"]
    assert "send_pay_date" not in shown


def test_repeating_a_precreate_is_the_same_trade_and_changing_it_is_refused(
    sim: RunningSim, merchant: RawMerchant
) -> None:
    out_trade_no = new_no()
    first = merchant.call(PRECREATE, trade_biz(out_trade_no)).body
    assert merchant.call(PRECREATE, trade_biz(out_trade_no)).body == first
    changed = merchant.call(PRECREATE, trade_biz(out_trade_no, amount="1.00"))
    assert changed.sub_code == "ACQ.CONTEXT_INCONSISTENT"
    sim.state.pay(out_trade_no)
    assert merchant.call(PRECREATE, trade_biz(out_trade_no)).sub_code == "ACQ.TRADE_HAS_SUCCESS"


def test_paid_trade_queries_as_success_and_its_notify_verifies_without_sign_type(
    sim: RunningSim, merchant: RawMerchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    out_trade_no = precreate(merchant, notify_url)
    paid = httpx.post(f"{sim.base_url}/sim/trades/{out_trade_no}/pay").json()
    shown = query(merchant, out_trade_no)
    assert shown["trade_status"] == "TRADE_SUCCESS"
    assert shown["total_amount"] == shown["receipt_amount"] == "88.88"
    assert shown["buyer_logon_id"] == "159****5620"
    year = datetime.now(BEIJING).year
    assert shown["trade_no"] == paid["trade_no"]
    assert shown["trade_no"].startswith(str(year))
    assert len(shown["trade_no"]) == 28
    [notified] = receiver.wait_for(1)
    fields = notified.fields
    assert notified.content_type.startswith("application/x-www-form-urlencoded")
    assert fields["trade_status"] == "TRADE_SUCCESS"
    assert fields["notify_type"] == "trade_status_sync"
    assert (fields["app_id"], fields["seller_id"], fields["sign_type"]) == (
        APP_ID,
        SELLER_ID,
        "RSA2",
    )
    assert fields["total_amount"] == "88.88"
    assert fields["gmt_payment"] == shown["send_pay_date"]
    public = load_public_key(alipay_keys()["public_key_pem"])
    # spec §3.2: sign_type is excluded from a notify's content; including it must fail.
    assert rsa2_verify(public, notify_sign_content(fields), fields["sign"])
    assert not rsa2_verify(public, request_sign_content(fields), fields["sign"])


def test_notify_is_redelivered_until_the_answer_is_exactly_success(
    sim: RunningSim, merchant: RawMerchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    receiver.reset(fail_first=2, fail_reply="SUCCESS")
    paid_trade(sim, merchant, notify_url)
    receiver.wait_for(1)
    deliveries = delivered(sim.state)
    assert [(d.attempt, d.answer, d.answered_ok) for d in deliveries] == [
        (0, "SUCCESS", False),
        (1, "SUCCESS", False),
        (2, "success", True),
    ]
    assert len({d.notify_id for d in deliveries}) == 1


def test_notify_gives_up_after_eight_attempts(
    sim: RunningSim, merchant: RawMerchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    receiver.reset(fail_first=100)
    paid_trade(sim, merchant, notify_url)
    wait_until(lambda: len(sim.state.deliveries) == 8, what="8 attempts")
    time.sleep(0.3)
    assert [d.attempt for d in sim.state.deliveries] == list(range(8))
    assert not any(d.answered_ok for d in sim.state.deliveries)


def test_bar_code_pay_answers_10000_paid(
    sim: RunningSim, merchant: RawMerchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    biz = trade_biz(new_no(), auth_code="287654321098765432", scene="bar_code")
    answer = merchant.call("alipay.trade.pay", biz, notify_url=notify_url)
    assert (answer.code, answer.verified) == ("10000", True)
    assert answer.body["gmt_payment"]
    assert answer.body["buyer_user_id"] == "2088102177846880"
    assert receiver.wait_for(1)[0].fields["trade_status"] == "TRADE_SUCCESS"
    bad_code = merchant.call(
        "alipay.trade.pay", trade_biz(new_no(), auth_code="1", scene="bar_code")
    )
    assert bad_code.sub_code == "ACQ.PAYMENT_AUTH_CODE_INVALID"


def test_bar_code_pay_answers_10003_then_the_trade_completes(
    sim: RunningSim, merchant: RawMerchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    sim.state.add_fault("pay", "paying_10003")
    out_trade_no = new_no()
    biz = trade_biz(out_trade_no, auth_code="287654321098765432", scene="bar_code")
    answer = merchant.call("alipay.trade.pay", biz, notify_url=notify_url)
    assert (answer.code, answer.body["msg"], answer.verified) == (
        "10003",
        "order success pay inprocess",
        True,
    )
    assert query(merchant, out_trade_no)["trade_status"] == "WAIT_BUYER_PAY"
    wait_until(lambda: query(merchant, out_trade_no)["trade_status"] == "TRADE_SUCCESS")
    receiver.wait_for(1)
    sim.state.add_fault("query", "paying_10003")
    still = merchant.call(QUERY, {"out_trade_no": out_trade_no})
    assert (still.code, still.body["trade_status"]) == ("10003", "WAIT_BUYER_PAY")


def test_close_only_closes_unpaid_trades(
    sim: RunningSim, merchant: RawMerchant, notify_url: str
) -> None:
    out_trade_no = precreate(merchant, notify_url)
    sim.state.scan(out_trade_no)
    closing = {"out_trade_no": out_trade_no}
    assert merchant.call("alipay.trade.close", closing).code == "10000"
    assert query(merchant, out_trade_no)["trade_status"] == "TRADE_CLOSED"
    assert merchant.call("alipay.trade.close", closing).code == "10000"  # a retry is harmless
    paid_no = paid_trade(sim, merchant, notify_url)
    refused = merchant.call("alipay.trade.close", {"out_trade_no": paid_no})
    assert (refused.code, refused.sub_code) == ("40004", "ACQ.TRADE_STATUS_ERROR")


def test_create_makes_a_trade_that_exists_at_once(merchant: RawMerchant) -> None:
    out_trade_no = new_no()
    biz = trade_biz(out_trade_no, buyer_id="2088102177846880")
    created = merchant.call("alipay.trade.create", biz)
    assert (created.code, created.verified) == ("10000", True)
    shown = query(merchant, out_trade_no)
    assert (shown["trade_no"], shown["trade_status"]) == (
        created.body["trade_no"],
        "WAIT_BUYER_PAY",
    )
    nobody = merchant.call("alipay.trade.create", trade_biz(new_no()))
    assert (nobody.code, nobody.sub_code) == ("40001", "isv.missing-parameter")


def test_a_finished_trade_can_no_longer_be_refunded(
    sim: RunningSim, merchant: RawMerchant, notify_url: str
) -> None:
    out_trade_no = paid_trade(sim, merchant, notify_url)
    finished = httpx.post(f"{sim.base_url}/sim/trades/{out_trade_no}/finish").json()
    assert finished["status"] == query(merchant, out_trade_no)["trade_status"] == "TRADE_FINISHED"
    assert refund(merchant, out_trade_no, "1.00", "RF1").sub_code == "ACQ.TRADE_HAS_FINISHED"


def test_cancel_closes_an_unpaid_trade_and_refunds_a_paid_one(
    sim: RunningSim, merchant: RawMerchant, notify_url: str
) -> None:
    sim.state.add_fault("pay", "paying_10003")
    waiting = new_no()
    biz = trade_biz(waiting, auth_code="287654321098765432", scene="bar_code")
    merchant.call("alipay.trade.pay", biz)
    cancelled = merchant.call("alipay.trade.cancel", {"out_trade_no": waiting})
    assert (cancelled.body["action"], cancelled.body["retry_flag"]) == ("close", "N")
    paid_no = paid_trade(sim, merchant, notify_url)
    reversed_ = merchant.call("alipay.trade.cancel", {"out_trade_no": paid_no})
    assert reversed_.body["action"] == "refund"
    assert query(merchant, paid_no)["trade_status"] == "TRADE_CLOSED"
    assert merchant.call("alipay.trade.cancel", {"out_trade_no": paid_no}).code == "10000"


# -- refunds ---------------------------------------------------------------------------------------


def test_refund_is_idempotent_per_out_request_no_and_capped(
    sim: RunningSim, merchant: RawMerchant, notify_url: str
) -> None:
    out_trade_no = paid_trade(sim, merchant, notify_url)
    first = refund(merchant, out_trade_no, "30.00", "RF1")
    assert (first.code, first.verified) == ("10000", True)
    assert (first.body["fund_change"], first.body["refund_fee"]) == ("Y", "30.00")
    again = refund(merchant, out_trade_no, "30.00", "RF1")
    assert (again.body["fund_change"], again.body["refund_fee"]) == ("N", "30.00")
    trade = httpx.get(f"{sim.base_url}/sim/trades/{out_trade_no}").json()
    assert trade["refunded_fen"] == 3000  # the repeat moved nothing
    over = refund(merchant, out_trade_no, "58.89", "RF2")
    assert (over.code, over.sub_code) == ("40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    assert query(merchant, out_trade_no)["trade_status"] == "TRADE_SUCCESS"
    assert refund(merchant, out_trade_no, "58.88", "RF2").body["refund_fee"] == "88.88"
    assert query(merchant, out_trade_no)["trade_status"] == "TRADE_CLOSED"


def test_refund_of_an_unpaid_trade_is_a_status_error(
    sim: RunningSim, merchant: RawMerchant, notify_url: str
) -> None:
    out_trade_no = precreate(merchant, notify_url)
    sim.state.scan(out_trade_no)
    refused = refund(merchant, out_trade_no, "1.00", "RF1")
    assert (refused.sub_code, refused.body["refund_fee"]) == ("ACQ.TRADE_STATUS_ERROR", "0.00")


def test_refund_query_confirms_a_refund_and_says_nothing_of_an_unknown_one(
    sim: RunningSim, merchant: RawMerchant, notify_url: str
) -> None:
    out_trade_no = paid_trade(sim, merchant, notify_url)
    refund(merchant, out_trade_no, "10.00", "RF1")
    method = "alipay.trade.fastpay.refund.query"
    found = merchant.call(method, {"out_trade_no": out_trade_no, "out_request_no": "RF1"})
    assert (found.body["refund_status"], found.body["refund_amount"]) == ("REFUND_SUCCESS", "10.00")
    unknown = merchant.call(method, {"out_trade_no": out_trade_no, "out_request_no": "RF9"})
    assert (unknown.code, unknown.verified) == ("10000", True)
    assert "refund_status" not in unknown.body
    assert "refund_amount" not in unknown.body


# -- page and wap pay, the cashier -----------------------------------------------------------------


def test_wap_pay_shows_the_cashier_and_returns_with_signed_parameters(
    sim: RunningSim, merchant: RawMerchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    out_trade_no = new_no()
    back = "http://127.0.0.1:8000/pay/return?order=42"
    biz = trade_biz(out_trade_no, product_code="QUICK_WAP_WAY", passback_params="order=42")
    params = merchant.signed("alipay.trade.wap.pay", biz, notify_url=notify_url, return_url=back)
    page = merchant.send(params, http_method="GET")
    assert page.status_code == 200
    assert 'id="pay"' in page.text
    assert 'id="decline"' in page.text
    assert "88.88" in page.text
    form = {"out_trade_no": out_trade_no, "return_url": back}
    paid = httpx.post(f"{sim.base_url}/sim/cashier/pay", data=form)
    assert paid.status_code == 303
    location = paid.headers["location"]
    assert location.startswith(back + "&")
    returned = dict(parse_qsl(urlsplit(location).query))
    assert returned.pop("order") == "42"  # the return URL's own query is not Alipay's to sign
    assert returned["method"] == "alipay.trade.wap.pay.return"
    assert receiver.verifies(returned)
    [notified] = receiver.wait_for(1)
    assert notified.fields["passback_params"] == "order=42"
    refund(merchant, out_trade_no, "88.88", "RF1")
    closed = receiver.wait_for(2)[1].fields  # wap notifies the full refund's TRADE_CLOSED
    assert (closed["trade_status"], closed["refund_fee"]) == ("TRADE_CLOSED", "88.88")
    assert closed["gmt_refund"]
    assert closed["gmt_close"]


def test_page_pay_refusal_is_an_error_page(sim: RunningSim) -> None:
    impostor = RawMerchant(sim.base_url, private_key_pem=alipay_keys()["private_key_pkcs8_pem"])
    params = impostor.signed("alipay.trade.page.pay", trade_biz(new_no()))
    page = impostor.send(params, http_method="GET")
    impostor.close()
    assert page.status_code == 400
    assert "isv.invalid-signature" in page.text


def test_cashier_opened_from_the_qr_code_scans_and_declining_closes(
    sim: RunningSim, merchant: RawMerchant, notify_url: str
) -> None:
    out_trade_no = new_no()
    qr_code = merchant.call(PRECREATE, trade_biz(out_trade_no)).body["qr_code"]
    page = httpx.get(f"{sim.base_url}/sim/cashier", params={"qr_code": qr_code})
    assert page.status_code == 200
    assert "等待付款" in page.text
    assert query(merchant, out_trade_no)["trade_status"] == "WAIT_BUYER_PAY"
    declined = httpx.post(
        f"{sim.base_url}/sim/cashier/decline", data={"out_trade_no": out_trade_no}
    )
    assert declined.status_code == 200
    assert query(merchant, out_trade_no)["trade_status"] == "TRADE_CLOSED"
    for evil in ("https://evil.example/", "http://127.0.0.1.evil.example/", "http://a@localhost/"):
        refused = httpx.get(
            f"{sim.base_url}/sim/cashier", params={"out_trade_no": out_trade_no, "return_url": evil}
        )
        assert refused.status_code == 400, evil


def test_an_unpaid_wap_trade_closes_when_the_clock_passes_its_timeout(
    sim: RunningSim, merchant: RawMerchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    out_trade_no = new_no()
    biz = trade_biz(out_trade_no, timeout_express="15m")
    merchant.send(merchant.signed("alipay.trade.wap.pay", biz, notify_url=notify_url))
    assert httpx.post(f"{sim.base_url}/sim/clock", json={"advance_s": 901}).status_code == 204
    assert receiver.wait_for(1)[0].fields["trade_status"] == "TRADE_CLOSED"
    assert query(merchant, out_trade_no)["trade_status"] == "TRADE_CLOSED"


# -- bills -----------------------------------------------------------------------------------------


def test_bill_download_lists_payments_and_refunds_and_parses_back(
    sim: RunningSim, merchant: RawMerchant, notify_url: str
) -> None:
    out_trade_no = paid_trade(sim, merchant, notify_url)
    refund(merchant, out_trade_no, "30.00", "RF1")
    today = sim.state.now().astimezone(BEIJING).date()
    method = "alipay.data.dataservice.bill.downloadurl.query"
    answer = merchant.call(method, {"bill_type": "trade", "bill_date": today.isoformat()})
    assert (answer.code, answer.verified) == ("10000", True)
    downloaded = httpx.get(answer.body["bill_download_url"])
    assert downloaded.headers["content-type"].startswith("text/csv")
    bill = parse_bill(downloaded.content.decode("utf-8"))
    assert bill.account == SELLER_ID
    assert [(row.kind, row.out_trade_no, row.received_fen) for row in bill.rows] == [
        (KIND_TRADE, out_trade_no, 8888),
        (KIND_REFUND, out_trade_no, -3000),
    ]
    assert bill.rows[1].out_request_no == "RF1"
    assert (bill.paid_total_fen, bill.refund_total_fen) == (8888, 3000)
    tomorrow = (today + timedelta(days=1)).isoformat()
    future = merchant.call(method, {"bill_type": "trade", "bill_date": tomorrow})
    assert future.sub_code == "isp.bill_not_exist"
