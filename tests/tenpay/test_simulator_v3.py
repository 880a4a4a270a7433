"""The WeChat Pay simulator's API v3 over real HTTP on loopback, driven with raw httpx and the
codecs (spec §2, §5): signatures both ways, orders, queries, close, refunds, certificates, bills,
notifies with redelivery, and each fault mode."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tenpay_adapter.bill import parse_bill
from tenpay_adapter.sim_state import NotifyFault
from tenpay_adapter.timefmt import BEIJING
from tenpay_adapter.v3_signing import SIGNTEST_PREFIX, aes_gcm_decrypt
from tests.lbs.sim_helpers import serving
from tests.tenpay.sim_support import (
    APIV3_KEY,
    MCHID,
    OPENID,
    NotifyReceiver,
    RunningTenpay,
    V3Merchant,
    delivered,
    make_config,
    order_body,
    platform_keys,
    response_verifies,
    running_tenpay,
    wait_until,
)

JSAPI = "/v3/pay/transactions/jsapi"
NATIVE = "/v3/pay/transactions/native"
REFUNDS = "/v3/refund/domestic/refunds"


@pytest.fixture(scope="module")
def receiver_url() -> Iterator[tuple[NotifyReceiver, str]]:
    receiver = NotifyReceiver()
    with serving(receiver.app) as url:
        yield receiver, url


@pytest.fixture(scope="module")
def running() -> Iterator[RunningTenpay]:
    with running_tenpay(make_config()) as sim:
        yield sim


@pytest.fixture
def sim(running: RunningTenpay, receiver_url: tuple[NotifyReceiver, str]) -> RunningTenpay:
    running.state.reset()
    receiver_url[0].reset()
    return running


@pytest.fixture
def receiver(sim: RunningTenpay, receiver_url: tuple[NotifyReceiver, str]) -> NotifyReceiver:
    return receiver_url[0]


@pytest.fixture
def notify_url(receiver_url: tuple[NotifyReceiver, str]) -> str:
    return f"{receiver_url[1]}/v3/notify"


@pytest.fixture
def merchant(sim: RunningTenpay) -> Iterator[V3Merchant]:
    client = V3Merchant(sim.base_url)
    yield client
    client.close()


def new_no() -> str:
    return f"ORD{secrets.token_hex(8)}"


def place(merchant: V3Merchant, notify_url: str, *, total: int = 7000) -> str:
    out_trade_no = new_no()
    response = merchant.post(JSAPI, order_body(out_trade_no, total=total, notify_url=notify_url))
    assert response.status_code == 200, response.text
    return out_trade_no


def query(merchant: V3Merchant, out_trade_no: str) -> dict[str, Any]:
    response = merchant.get(f"/v3/pay/transactions/out-trade-no/{out_trade_no}", mchid=MCHID)
    assert response.status_code == 200, response.text
    assert response_verifies(response)
    found: dict[str, Any] = response.json()
    return found


def paid_notifies(receiver: NotifyReceiver, out_trade_no: str) -> list[dict[str, Any]]:
    return [r.resource for r in receiver.accepted if r.resource.get("out_trade_no") == out_trade_no]


# -- signatures ------------------------------------------------------------------------------------


def test_signed_jsapi_order_gets_a_prepay_id_in_a_signed_answer(
    sim: RunningTenpay, merchant: V3Merchant
) -> None:
    response = merchant.post(JSAPI, order_body(new_no()))
    assert response.status_code == 200
    assert response.json()["prepay_id"].startswith("wx")
    assert response_verifies(response)
    assert response.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"


def test_bad_request_signature_is_refused_with_a_signed_401(sim: RunningTenpay) -> None:
    impostor = V3Merchant(sim.base_url, private_key_pem=platform_keys().private_key_pem)
    try:
        response = impostor.post(JSAPI, order_body(new_no()))
    finally:
        impostor.close()
    assert response.status_code == 401
    assert response.json()["code"] == "SIGN_ERROR"
    assert response_verifies(response)  # errors are signed too


def test_request_outside_the_timestamp_window_is_refused(merchant: V3Merchant) -> None:
    stale = int(time.time()) - 301
    response = merchant.request("POST", JSAPI, order_body(new_no()), timestamp=stale)
    assert (response.status_code, response.json()["code"]) == (401, "SIGN_ERROR")


def test_unsigned_request_is_refused(sim: RunningTenpay) -> None:
    response = httpx.post(f"{sim.base_url}{JSAPI}", json=order_body(new_no()))
    assert (response.status_code, response.json()["code"]) == (401, "SIGN_ERROR")


def test_certificates_decrypt_to_the_platform_certificate(merchant: V3Merchant) -> None:
    response = merchant.get("/v3/certificates")
    assert response_verifies(response)
    [item] = response.json()["data"]
    encrypted = item["encrypt_certificate"]
    assert encrypted["associated_data"] == "certificate"
    pem = aes_gcm_decrypt(
        apiv3_key=APIV3_KEY,
        nonce=encrypted["nonce"],
        ciphertext_b64=encrypted["ciphertext"],
        associated_data="certificate",
    )
    assert pem.decode() == platform_keys().certificate_pem
    assert item["serial_no"] == platform_keys().serial_no


# -- orders ----------------------------------------------------------------------------------------


def test_jsapi_order_needs_the_payer_openid(merchant: V3Merchant) -> None:
    body = order_body(new_no())
    del body["payer"]
    response = merchant.post(JSAPI, body)
    assert (response.status_code, response.json()["code"]) == (400, "PARAM_ERROR")


def test_native_order_gets_a_code_url(merchant: V3Merchant) -> None:
    body = order_body(new_no())
    del body["payer"]
    response = merchant.post(NATIVE, body)
    assert response.status_code == 200
    assert response.json()["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")


def test_repeating_an_order_gives_the_same_prepay_and_changing_it_is_refused(
    sim: RunningTenpay, merchant: V3Merchant
) -> None:
    out_trade_no = new_no()
    first = merchant.post(JSAPI, order_body(out_trade_no)).json()
    assert merchant.post(JSAPI, order_body(out_trade_no)).json() == first
    changed = merchant.post(JSAPI, order_body(out_trade_no, total=7001))
    assert changed.status_code == 400
    assert changed.json() == {"code": "INVALID_REQUEST", "message": "201 商户订单号重复"}
    sim.state.pay(out_trade_no)
    paid = merchant.post(JSAPI, order_body(out_trade_no))
    assert (paid.status_code, paid.json()["code"]) == (400, "ORDERPAID")


def test_duplicate_order_in_its_documented_form() -> None:
    with running_tenpay(make_config(duplicate_order_form="OUT_TRADE_NO_USED")) as sim:
        merchant = V3Merchant(sim.base_url)
        out_trade_no = new_no()
        merchant.post(JSAPI, order_body(out_trade_no))
        changed = merchant.post(JSAPI, order_body(out_trade_no, description="另一件商品"))
        merchant.close()
    assert (changed.status_code, changed.json()["code"]) == (403, "OUT_TRADE_NO_USED")


def test_paid_order_queries_as_success_and_its_notify_verifies_and_decrypts(
    sim: RunningTenpay, merchant: V3Merchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    out_trade_no = place(merchant, notify_url)
    assert query(merchant, out_trade_no)["trade_state"] == "NOTPAY"
    paid = httpx.post(f"{sim.base_url}/sim/trades/{out_trade_no}/pay").json()
    assert len(paid["transaction_id"]) == 28
    assert paid["transaction_id"].startswith("4200")
    shown = query(merchant, out_trade_no)
    assert shown["trade_state"] == "SUCCESS"
    assert shown["transaction_id"] == paid["transaction_id"]
    assert shown["success_time"].endswith("+08:00")
    [notified] = receiver.wait_for(1)
    envelope = json.loads(notified.body)
    assert envelope["event_type"] == "TRANSACTION.SUCCESS"
    assert envelope["resource"]["associated_data"] == "transaction"
    assert len(envelope["resource"]["nonce"]) == 12
    resource = notified.resource
    assert resource["trade_state"] == "SUCCESS"
    assert resource["payer"] == {"openid": OPENID}
    assert resource["amount"] == {
        "total": 7000,
        "payer_total": 7000,
        "currency": "CNY",
        "payer_currency": "CNY",
    }
    by_id = merchant.get(f"/v3/pay/transactions/id/{paid['transaction_id']}", mchid=MCHID)
    assert by_id.json()["out_trade_no"] == out_trade_no


def test_unknown_order_is_404_order_not_exist(merchant: V3Merchant) -> None:
    response = merchant.get("/v3/pay/transactions/out-trade-no/NOSUCHORDER", mchid=MCHID)
    assert (response.status_code, response.json()["code"]) == (404, "ORDER_NOT_EXIST")
    assert response_verifies(response)


def test_notify_is_redelivered_until_answered_with_success(
    sim: RunningTenpay, merchant: V3Merchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    receiver.reset(fail_first=2)
    out_trade_no = place(merchant, notify_url)
    sim.state.pay(out_trade_no)
    receiver.wait_for(1)
    attempts = [(d.attempt, d.status, d.answered_ok) for d in delivered(sim.state)]
    assert attempts == [(0, 500, False), (1, 500, False), (2, 204, True)]


def test_close_gives_204_and_a_paid_order_cannot_be_closed(
    sim: RunningTenpay, merchant: V3Merchant, notify_url: str
) -> None:
    out_trade_no = place(merchant, notify_url)
    close_path = f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close"
    closed = merchant.post(close_path, {"mchid": MCHID})
    assert (closed.status_code, closed.content) == (204, b"")
    assert response_verifies(closed)  # over the empty body
    assert query(merchant, out_trade_no)["trade_state"] == "CLOSED"
    assert merchant.post(close_path, {"mchid": MCHID}).status_code == 204
    reopened = merchant.post(JSAPI, order_body(out_trade_no, notify_url=notify_url))
    assert reopened.json()["code"] == "INVALID_REQUEST"
    paid_no = place(merchant, notify_url)
    sim.state.pay(paid_no)
    refused = merchant.post(f"/v3/pay/transactions/out-trade-no/{paid_no}/close", {"mchid": MCHID})
    assert (refused.status_code, refused.json()["code"]) == (400, "ORDERPAID")


# -- refunds ---------------------------------------------------------------------------------------


def refund_body(out_trade_no: str, out_refund_no: str, refund: int, **extra: Any) -> dict[str, Any]:
    amount = {"refund": refund, "total": 7000, "currency": "CNY"}
    return {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "amount": amount} | extra


def test_refund_succeeds_and_its_notify_decrypts(
    sim: RunningTenpay, merchant: V3Merchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    out_trade_no = place(merchant, notify_url)
    sim.state.pay(out_trade_no)
    receiver.wait_for(1)
    body = refund_body(out_trade_no, "RF1", 3000, notify_url=notify_url)
    accepted = merchant.post(REFUNDS, body)
    assert accepted.status_code == 200
    assert response_verifies(accepted)
    assert accepted.json()["status"] == "PROCESSING"
    notified = receiver.wait_for(2)[1]
    assert json.loads(notified.body)["event_type"] == "REFUND.SUCCESS"
    assert notified.resource["refund_status"] == "SUCCESS"
    assert notified.resource["amount"]["refund"] == 3000
    refund = merchant.get(f"{REFUNDS}/RF1").json()
    assert (refund["status"], refund["refund_id"]) == ("SUCCESS", accepted.json()["refund_id"])
    assert query(merchant, out_trade_no)["trade_state"] == "REFUND"


def test_refund_caps_and_a_reused_refund_number(
    sim: RunningTenpay, merchant: V3Merchant, notify_url: str
) -> None:
    out_trade_no = place(merchant, notify_url)
    sim.state.pay(out_trade_no)
    first = merchant.post(REFUNDS, refund_body(out_trade_no, "RF1", 5000)).json()
    again = merchant.post(REFUNDS, refund_body(out_trade_no, "RF1", 5000)).json()
    assert again["refund_id"] == first["refund_id"]  # a retry, not a second refund
    mismatch = merchant.post(REFUNDS, refund_body(out_trade_no, "RF1", 4000))
    assert mismatch.status_code == 400
    too_much = merchant.post(REFUNDS, refund_body(out_trade_no, "RF2", 2001))
    assert (too_much.status_code, too_much.json()["code"]) == (400, "INVALID_REQUEST")
    assert merchant.post(REFUNDS, refund_body(out_trade_no, "RF2", 2000)).status_code == 200
    unknown = merchant.get(f"{REFUNDS}/NOSUCHREFUND")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "RESOURCE_NOT_EXISTS")


# -- bills -----------------------------------------------------------------------------------------


def test_trade_bill_lists_payments_and_refunds_and_parses_back(
    sim: RunningTenpay, merchant: V3Merchant, notify_url: str
) -> None:
    out_trade_no = place(merchant, notify_url, total=8888)
    sim.state.pay(out_trade_no)
    refund = {"refund": 3000, "total": 8888, "currency": "CNY"}
    merchant.post(REFUNDS, {"out_trade_no": out_trade_no, "out_refund_no": "RF1", "amount": refund})
    today = sim.state.now().astimezone(BEIJING).date().isoformat()
    answer = merchant.get("/v3/bill/tradebill", bill_date=today, bill_type="ALL")
    assert answer.status_code == 200
    assert response_verifies(answer)
    link = answer.json()
    parts = urlsplit(link["download_url"])
    downloaded = merchant.get(parts.path, token=parts.query.removeprefix("token="))
    assert downloaded.status_code == 200
    assert hashlib.sha1(downloaded.content).hexdigest() == link["hash_value"]
    bill = parse_bill(downloaded.text)
    assert [(row.trade_state, row.out_trade_no) for row in bill.rows] == [
        ("SUCCESS", out_trade_no),
        ("REFUND", out_trade_no),
    ]
    assert (bill.total_fen, bill.refund_total_fen) == (8888, 3000)


def test_trade_bill_of_an_empty_day_does_not_exist(merchant: V3Merchant) -> None:
    answer = merchant.get("/v3/bill/tradebill", bill_date=date(2020, 1, 1).isoformat())
    assert (answer.status_code, answer.json()["code"]) == (400, "NO_STATEMENT_EXIST")


# -- faults ----------------------------------------------------------------------------------------


def test_timeout_fault_takes_effect_but_the_caller_never_hears(
    sim: RunningTenpay, notify_url: str
) -> None:
    sim.state.add_fault("order", "timeout", delay_s=1.0)
    impatient = V3Merchant(sim.base_url, timeout_s=0.2)
    out_trade_no = new_no()
    with pytest.raises(httpx.TimeoutException):
        impatient.post(JSAPI, order_body(out_trade_no, notify_url=notify_url))
    impatient.close()
    wait_until(lambda: sim.state.ledger.find(out_trade_no=out_trade_no) is not None)


def test_http_500_and_system_error_faults_have_no_effect(
    sim: RunningTenpay, merchant: V3Merchant
) -> None:
    httpx.post(f"{sim.base_url}/sim/faults", json={"endpoint": "order", "mode": "http_500"})
    sim.state.add_fault("*", "system_error")
    first, second = new_no(), new_no()
    gateway = merchant.post(JSAPI, order_body(first))
    assert gateway.status_code == 500
    assert "Wechatpay-Signature" not in gateway.headers
    system = merchant.post(JSAPI, order_body(second))
    assert (system.status_code, system.json()["code"]) == (500, "SYSTEM_ERROR")
    assert response_verifies(system)
    assert sim.state.ledger.find(out_trade_no=first) is None
    assert sim.state.ledger.find(out_trade_no=second) is None
    assert merchant.post(JSAPI, order_body(first)).status_code == 200


def test_lost_notify_is_never_sent(
    sim: RunningTenpay, merchant: V3Merchant, notify_url: str
) -> None:
    sim.state.add_fault("payment_notify", "lost_notify")
    out_trade_no = place(merchant, notify_url)
    sim.state.pay(out_trade_no)
    time.sleep(0.2)
    assert sim.state.deliveries == []
    assert len(sim.state.lost_notifies) == 1
    assert query(merchant, out_trade_no)["trade_state"] == "SUCCESS"  # the query still knows


def test_duplicate_notify_delivers_the_same_event_twice(
    sim: RunningTenpay, merchant: V3Merchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    sim.state.add_fault("payment_notify", "duplicate_notify")
    out_trade_no = place(merchant, notify_url)
    sim.state.pay(out_trade_no)
    first, second = receiver.wait_for(2)
    assert json.loads(first.body)["id"] == json.loads(second.body)["id"]


def test_notify_can_arrive_while_the_query_still_says_notpay(
    sim: RunningTenpay, merchant: V3Merchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    sim.state.add_fault("payment_notify", "notify_before_query", delay_s=2.0)
    out_trade_no = place(merchant, notify_url)
    sim.state.pay(out_trade_no)
    [notified] = receiver.wait_for(1)
    assert notified.resource["trade_state"] == "SUCCESS"
    assert len(notified.resource["transaction_id"]) == 28
    masked = query(merchant, out_trade_no)
    assert masked["trade_state"] == "NOTPAY"
    assert "transaction_id" not in masked
    wait_until(lambda: query(merchant, out_trade_no)["trade_state"] == "SUCCESS", timeout_s=5)


@pytest.mark.parametrize("mode", ["stale_notify_timestamp", "bad_notify_signature"])
def test_stale_or_badly_signed_notify_is_refused_then_redelivered(
    mode: NotifyFault,
    sim: RunningTenpay,
    merchant: V3Merchant,
    receiver: NotifyReceiver,
    notify_url: str,
) -> None:
    sim.state.add_fault("payment_notify", mode)
    out_trade_no = place(merchant, notify_url)
    sim.state.pay(out_trade_no)
    receiver.wait_for(1)
    assert len(receiver.rejected) == 1
    deliveries = delivered(sim.state)
    assert [d.status for d in deliveries] == [401, 204]
    stamps = [int(d.headers["Wechatpay-Timestamp"]) for d in deliveries]
    assert (time.time() - stamps[0] > 300) is (mode == "stale_notify_timestamp")


def test_signtest_probe_is_sent_before_the_notify_and_must_be_refused(
    sim: RunningTenpay, merchant: V3Merchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    sim.state.add_fault("*", "signtest_probe")
    out_trade_no = place(merchant, notify_url)
    sim.state.pay(out_trade_no)
    receiver.wait_for(1)
    probe = delivered(sim.state)[0]
    assert probe.kind == "probe"
    assert probe.headers["Wechatpay-Signature"].startswith(SIGNTEST_PREFIX)
    assert (probe.status, probe.answered_ok) == (401, True)  # refused, as it must be
    assert len(paid_notifies(receiver, out_trade_no)) == 1


# -- the cashier page ------------------------------------------------------------------------------


def test_cashier_page_pays_and_redirects_back_to_loopback(
    sim: RunningTenpay, merchant: V3Merchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    out_trade_no = new_no()
    prepay = merchant.post(JSAPI, order_body(out_trade_no, notify_url=notify_url)).json()
    back = "http://127.0.0.1:8000/orders/42"
    page = httpx.get(
        f"{sim.base_url}/sim/cashier", params={"prepay_id": prepay["prepay_id"], "redirect": back}
    )
    assert page.status_code == 200
    assert 'id="pay"' in page.text
    assert 'id="decline"' in page.text
    assert "70.00" in page.text
    form = {"prepay_id": prepay["prepay_id"], "redirect": back}
    paid = httpx.post(f"{sim.base_url}/sim/cashier/pay", data=form)
    assert (paid.status_code, paid.headers["location"]) == (303, back)
    assert query(merchant, out_trade_no)["trade_state"] == "SUCCESS"
    receiver.wait_for(1)


def test_cashier_refuses_a_redirect_off_loopback(sim: RunningTenpay, merchant: V3Merchant) -> None:
    prepay = merchant.post(JSAPI, order_body(new_no())).json()["prepay_id"]
    for evil in (
        "https://evil.example/",
        "http://127.0.0.1.evil.example/",
        "http://localhost@evil.example/",
    ):
        page = httpx.get(
            f"{sim.base_url}/sim/cashier", params={"prepay_id": prepay, "redirect": evil}
        )
        assert page.status_code == 400, evil


def test_declined_payment_is_payerror(sim: RunningTenpay, merchant: V3Merchant) -> None:
    out_trade_no = place(merchant, "http://127.0.0.1:9/v3/notify")
    declined = httpx.post(f"{sim.base_url}/sim/trades/{out_trade_no}/decline")
    assert declined.json()["state"] == "PAYERROR"
    assert query(merchant, out_trade_no)["trade_state"] == "PAYERROR"
    assert sim.state.deliveries == []


def test_reset_forgets_trades_faults_and_the_clock(
    sim: RunningTenpay, merchant: V3Merchant
) -> None:
    out_trade_no = place(merchant, "http://127.0.0.1:9/v3/notify")
    sim.state.add_fault("*", "http_500")
    sim.state.advance_clock(86400)
    assert httpx.post(f"{sim.base_url}/sim/reset").status_code == 204
    assert httpx.get(f"{sim.base_url}/sim/trades/{out_trade_no}").status_code == 404
    assert merchant.post(JSAPI, order_body(out_trade_no)).status_code == 200
    assert abs((sim.state.now() - datetime.now(UTC)).total_seconds()) < 5
