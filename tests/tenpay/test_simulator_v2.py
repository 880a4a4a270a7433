"""The WeChat Pay simulator's API v2 over real HTTP on loopback, driven with raw httpx and the
codecs (spec §1, §5): signed XML both ways, the repeat-order quirk, the 5-minute close rule on
the simulated clock, refund caps, notifies (signed payment, encrypted refund), bills, faults."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from tenpay_adapter.bill import parse_bill
from tenpay_adapter.timefmt import BEIJING
from tenpay_adapter.v2_signing import SIGN_HMAC, SIGN_MD5, parse_xml, to_xml, verify_v2
from tests.lbs.sim_helpers import serving
from tests.tenpay.sim_support import (
    API_KEY,
    OPENID,
    NotifyReceiver,
    Received,
    RunningTenpay,
    delivered,
    make_config,
    running_tenpay,
    v2_call,
    wait_until,
)

XXE = (
    b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<xml><appid>&x;</appid></xml>"
)


@pytest.fixture(scope="module")
def receiver_url() -> Iterator[tuple[NotifyReceiver, str]]:
    receiver = NotifyReceiver()
    with serving(receiver.app) as url:
        yield receiver, url


@pytest.fixture(scope="module")
def running() -> Iterator[RunningTenpay]:
    with running_tenpay(make_config(max_partial_refunds=3)) as sim:
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
    return f"{receiver_url[1]}/v2/notify"


@pytest.fixture
def http(sim: RunningTenpay) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=5) as client:
        yield client


def call(
    http: httpx.Client, path: str, params: dict[str, str], *, sign_type: str = SIGN_MD5
) -> dict[str, str]:
    response = http.post(path, content=v2_call(params, sign_type=sign_type))
    assert response.status_code == 200, response.text
    return parse_xml(response.content)


def order(out_trade_no: str, notify_url: str, **overrides: str) -> dict[str, str]:
    params = {
        "body": "Coupon order - Lakeside Cafe",
        "out_trade_no": out_trade_no,
        "total_fee": "8888",
        "spbill_create_ip": "127.0.0.1",
        "notify_url": notify_url,
        "trade_type": "JSAPI",
        "openid": OPENID,
        "attach": "offer=OFF-7731",
    }
    return params | overrides


def new_no() -> str:
    return f"ORD{secrets.token_hex(8)}"


def placed(http: httpx.Client, notify_url: str, **overrides: str) -> str:
    out_trade_no = new_no()
    answer = call(http, "/pay/unifiedorder", order(out_trade_no, notify_url, **overrides))
    assert answer["result_code"] == "SUCCESS", answer
    return out_trade_no


# -- the protocol layer ----------------------------------------------------------------------------


@pytest.mark.parametrize("sign_type", [SIGN_MD5, SIGN_HMAC])
def test_unifiedorder_answers_signed_with_the_requests_sign_type(
    sign_type: str, http: httpx.Client, notify_url: str
) -> None:
    answer = call(http, "/pay/unifiedorder", order(new_no(), notify_url), sign_type=sign_type)
    assert (answer["return_code"], answer["result_code"]) == ("SUCCESS", "SUCCESS")
    assert answer["prepay_id"].startswith("wx")
    assert len(answer["sign"]) == (32 if sign_type == SIGN_MD5 else 64)
    assert verify_v2(answer, API_KEY)  # no sign_type in answers: the length tells


def test_bad_sign_and_hostile_xml_are_protocol_failures_without_a_sign(http: httpx.Client) -> None:
    tampered = parse_xml(v2_call(order(new_no(), "http://127.0.0.1:9/n")))
    tampered["total_fee"] = "1"
    for body in (to_xml(tampered), XXE, b"not xml"):
        answer = parse_xml(http.post("/pay/unifiedorder", content=body).content)
        assert answer["return_code"] == "FAIL"
        assert "sign" not in answer


def test_jsapi_needs_openid_and_native_needs_product_id(
    http: httpx.Client, notify_url: str
) -> None:
    no_openid = order(new_no(), notify_url)
    del no_openid["openid"]
    assert call(http, "/pay/unifiedorder", no_openid)["err_code"] == "PARAM_ERROR"
    native = order(new_no(), notify_url, trade_type="NATIVE")
    del native["openid"]
    assert call(http, "/pay/unifiedorder", native)["err_code"] == "PARAM_ERROR"
    answer = call(http, "/pay/unifiedorder", native | {"product_id": "OFF-7731"})
    assert answer["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")


def test_repeat_order_quirk(sim: RunningTenpay, http: httpx.Client, notify_url: str) -> None:
    out_trade_no = new_no()
    first = call(http, "/pay/unifiedorder", order(out_trade_no, notify_url))
    again = call(http, "/pay/unifiedorder", order(out_trade_no, notify_url))
    assert again["prepay_id"] == first["prepay_id"]
    changed = call(http, "/pay/unifiedorder", order(out_trade_no, notify_url, total_fee="1"))
    assert (changed["err_code"], changed["err_code_des"]) == (
        "INVALID_REQUEST",
        "201 商户订单号重复",
    )
    sim.state.pay(out_trade_no)
    assert (
        call(http, "/pay/unifiedorder", order(out_trade_no, notify_url))["err_code"] == "ORDERPAID"
    )


def test_repeat_after_the_prepay_expired_is_refused(
    sim: RunningTenpay, http: httpx.Client, notify_url: str
) -> None:
    out_trade_no = new_no()
    call(http, "/pay/unifiedorder", order(out_trade_no, notify_url))
    sim.state.advance_clock(7200)
    again = call(http, "/pay/unifiedorder", order(out_trade_no, notify_url))
    assert again["err_code"] == "INVALID_REQUEST"
    assert httpx.post(f"{sim.base_url}/sim/trades/{out_trade_no}/pay").status_code == 409


def test_duplicate_order_in_its_documented_form(notify_url: str) -> None:
    with (
        running_tenpay(make_config(duplicate_order_form="OUT_TRADE_NO_USED")) as sim,
        httpx.Client(base_url=sim.base_url) as http,
    ):
        out_trade_no = new_no()
        call(http, "/pay/unifiedorder", order(out_trade_no, notify_url))
        changed = call(http, "/pay/unifiedorder", order(out_trade_no, notify_url, body="other"))
    assert changed["err_code"] == "OUT_TRADE_NO_USED"


# -- close -----------------------------------------------------------------------------------------


def test_close_waits_five_minutes_on_the_simulated_clock(
    sim: RunningTenpay, http: httpx.Client, notify_url: str
) -> None:
    out_trade_no = placed(http, notify_url)
    early = call(http, "/pay/closeorder", {"out_trade_no": out_trade_no})
    assert early["err_code"] == "SYSTEMERROR"
    httpx.post(f"{sim.base_url}/sim/clock", json={"advance_s": 300})
    assert call(http, "/pay/closeorder", {"out_trade_no": out_trade_no})["result_code"] == "SUCCESS"
    again = call(http, "/pay/closeorder", {"out_trade_no": out_trade_no})
    assert again["err_code"] == "ORDERCLOSED"
    query = call(http, "/pay/orderquery", {"out_trade_no": out_trade_no})
    assert query["trade_state"] == "CLOSED"
    paid_no = placed(http, notify_url)
    sim.state.pay(paid_no)
    assert call(http, "/pay/closeorder", {"out_trade_no": paid_no})["err_code"] == "ORDERPAID"
    unknown = call(http, "/pay/closeorder", {"out_trade_no": "NOSUCHORDER"})
    assert unknown["err_code"] == "ORDERNOTEXIST"


# -- payment and its notify ------------------------------------------------------------------------


def test_paid_order_queries_as_success_and_its_notify_is_signed(
    sim: RunningTenpay, http: httpx.Client, receiver: NotifyReceiver, notify_url: str
) -> None:
    out_trade_no = placed(http, notify_url)
    assert call(http, "/pay/orderquery", {"out_trade_no": out_trade_no})["trade_state"] == "NOTPAY"
    trade = sim.state.pay(out_trade_no)
    query = call(http, "/pay/orderquery", {"out_trade_no": out_trade_no})
    assert query["trade_state"] == "SUCCESS"
    assert query["transaction_id"] == trade.transaction_id
    assert trade.paid_at is not None
    assert query["time_end"] == trade.paid_at.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
    [notified] = receiver.wait_for(1)
    fields = notified.resource
    assert (fields["out_trade_no"], fields["total_fee"]) == (out_trade_no, "8888")
    assert "sign_type" not in fields  # an MD5 order's notify does not name it
    assert delivered(sim.state)[-1].answered_ok


def _for(receiver: NotifyReceiver, out_trade_no: str) -> list[Received]:
    return [r for r in receiver.accepted if r.resource.get("out_trade_no") == out_trade_no]


def test_hmac_notify_can_omit_its_sign_type(receiver_url: tuple[NotifyReceiver, str]) -> None:
    receiver, url = receiver_url
    receiver.reset()
    config = make_config(v2_notify_omits_hmac_sign_type=True)
    with running_tenpay(config) as sim, httpx.Client(base_url=sim.base_url) as http:
        params = order(new_no(), f"{url}/v2/notify")
        call(http, "/pay/unifiedorder", params, sign_type=SIGN_HMAC)
        sim.state.pay(params["out_trade_no"])
        # The receiver is shared by the module: a late redelivery from another test's trade may
        # arrive too, so pick ours.
        deadline = time.monotonic() + 5
        while not (ours := _for(receiver, params["out_trade_no"])):
            assert time.monotonic() < deadline, "no notify for this trade"
            time.sleep(0.01)
    notified = ours[0]
    assert "sign_type" not in notified.resource
    assert len(notified.resource["sign"]) == 64  # verified by its length (spec §1.9)


def test_notify_is_redelivered_until_the_success_reply(
    sim: RunningTenpay, http: httpx.Client, receiver: NotifyReceiver, notify_url: str
) -> None:
    receiver.reset(fail_first=1)
    sim.state.pay(placed(http, notify_url))
    receiver.wait_for(1)
    assert [d.answered_ok for d in delivered(sim.state)] == [False, True]


def test_bad_notify_signature_is_refused_then_redelivered(
    sim: RunningTenpay, http: httpx.Client, receiver: NotifyReceiver, notify_url: str
) -> None:
    sim.state.add_fault("payment_notify", "bad_notify_signature")
    sim.state.pay(placed(http, notify_url))
    receiver.wait_for(1)
    assert len(receiver.rejected) == 1
    assert [d.answered_ok for d in delivered(sim.state)] == [False, True]


# -- refunds ---------------------------------------------------------------------------------------


def refund(
    http: httpx.Client, out_trade_no: str, out_refund_no: str, fen: int, **extra: str
) -> dict[str, str]:
    params = {
        "out_trade_no": out_trade_no,
        "out_refund_no": out_refund_no,
        "total_fee": "8888",
        "refund_fee": str(fen),
    }
    return call(http, "/secapi/pay/refund", params | extra)


def test_refund_caps_and_refund_fee_mismatch(
    sim: RunningTenpay, http: httpx.Client, notify_url: str
) -> None:
    out_trade_no = placed(http, notify_url)
    assert refund(http, out_trade_no, "RF0", 100)["err_code"] == "ERROR"  # not paid yet
    sim.state.pay(out_trade_no)
    first = refund(http, out_trade_no, "RF1", 3000)
    assert first["result_code"] == "SUCCESS"
    assert refund(http, out_trade_no, "RF1", 3000)["refund_id"] == first["refund_id"]
    assert refund(http, out_trade_no, "RF1", 2000)["err_code"] == "REFUND_FEE_MISMATCH"
    assert refund(http, out_trade_no, "RF2", 5889)["err_code"] == "ERROR"  # more than is left
    assert refund(http, out_trade_no, "RF2", 10)["result_code"] == "SUCCESS"
    assert refund(http, out_trade_no, "RF3", 10)["result_code"] == "SUCCESS"
    assert refund(http, out_trade_no, "RF4", 10)["err_code"] == "ERROR"  # max_partial_refunds=3
    found = call(http, "/pay/refundquery", {"out_trade_no": out_trade_no})
    assert (found["total_refund_count"], found["refund_status_0"]) == ("3", "SUCCESS")
    assert [found[f"out_refund_no_{n}"] for n in range(3)] == ["RF1", "RF2", "RF3"]
    missing = call(http, "/pay/refundquery", {"out_refund_no": "NOSUCHREFUND"})
    assert missing["err_code"] == "REFUNDNOTEXIST"


def test_refund_notify_carries_encrypted_req_info_and_no_sign(
    sim: RunningTenpay, http: httpx.Client, receiver: NotifyReceiver, notify_url: str
) -> None:
    out_trade_no = placed(http, notify_url)
    sim.state.pay(out_trade_no)
    receiver.wait_for(1)
    refund(http, out_trade_no, "RF1", 3000, notify_url=notify_url)
    notified = receiver.wait_for(2)[1]
    outer = parse_xml(notified.body)
    assert "sign" not in outer
    assert outer["return_code"] == "SUCCESS"
    req_info = notified.resource
    assert (req_info["out_refund_no"], req_info["refund_fee"]) == ("RF1", "3000")
    assert req_info["refund_status"] == "SUCCESS"
    assert req_info["refund_recv_accout"] == "支付用户零钱"


# -- bills -----------------------------------------------------------------------------------------


def test_downloadbill_is_plain_text_from_the_ledger(
    sim: RunningTenpay, http: httpx.Client, notify_url: str
) -> None:
    out_trade_no = placed(http, notify_url)
    sim.state.pay(out_trade_no)
    refund(http, out_trade_no, "RF1", 3000)
    today = sim.state.now().astimezone(BEIJING).strftime("%Y%m%d")
    answer = http.post(
        "/pay/downloadbill", content=v2_call({"bill_date": today, "bill_type": "ALL"})
    )
    bill = parse_bill(answer.text)
    assert [row.trade_state for row in bill.rows] == ["SUCCESS", "REFUND"]
    assert (bill.trade_count, bill.total_fen, bill.refund_total_fen) == (2, 8888, 3000)
    assert str(bill.fee_total_yuan) == "0.35000"  # 0.53 on the payment, -0.18 on the refund
    assert bill.rows[0].raw["商户数据包"] == "offer=OFF-7731"


def test_downloadbill_of_an_empty_day_is_no_bill_exist(http: httpx.Client) -> None:
    answer = parse_xml(
        http.post("/pay/downloadbill", content=v2_call({"bill_date": "20200101"})).content
    )
    assert (answer["return_code"], answer["return_msg"]) == ("FAIL", "No Bill Exist")


# -- faults ----------------------------------------------------------------------------------------


def test_system_error_fault_has_no_effect(
    sim: RunningTenpay, http: httpx.Client, notify_url: str
) -> None:
    sim.state.add_fault("order", "system_error")
    out_trade_no = new_no()
    answer = call(http, "/pay/unifiedorder", order(out_trade_no, notify_url))
    assert (answer["return_code"], answer["err_code"]) == ("SUCCESS", "SYSTEMERROR")
    assert verify_v2(answer, API_KEY)
    assert sim.state.ledger.find(out_trade_no=out_trade_no) is None


def test_timeout_fault_on_refund_takes_effect(
    sim: RunningTenpay, http: httpx.Client, notify_url: str
) -> None:
    out_trade_no = placed(http, notify_url)
    sim.state.pay(out_trade_no)
    sim.state.add_fault("refund", "timeout", delay_s=1.0)
    params = {"out_trade_no": out_trade_no, "out_refund_no": "RF1"}
    body = v2_call(params | {"total_fee": "8888", "refund_fee": "100"})
    with pytest.raises(httpx.TimeoutException):
        http.post("/secapi/pay/refund", content=body, timeout=0.2)
    wait_until(lambda: sim.state.ledger.find_refund("RF1") is not None)
    # The caller retries with the same out_refund_no: the same refund, not a second one.
    assert refund(http, out_trade_no, "RF1", 100)["result_code"] == "SUCCESS"


def test_http_500_fault(sim: RunningTenpay, http: httpx.Client) -> None:
    sim.state.add_fault("query", "http_500")
    response = http.post("/pay/orderquery", content=v2_call({"out_trade_no": "X"}))
    assert response.status_code == 500


def test_lost_and_duplicate_notifies(
    sim: RunningTenpay, http: httpx.Client, receiver: NotifyReceiver, notify_url: str
) -> None:
    sim.state.add_fault("payment_notify", "lost_notify")
    lost_no = placed(http, notify_url)
    sim.state.pay(lost_no)
    assert sim.state.lost_notifies == [lost_no]
    sim.state.add_fault("payment_notify", "duplicate_notify")
    twice_no = placed(http, notify_url)
    sim.state.pay(twice_no)
    notified = receiver.wait_for(2)
    assert [r.resource["out_trade_no"] for r in notified] == [twice_no, twice_no]


def test_notify_before_query_shows_notpay_for_a_while(
    sim: RunningTenpay, http: httpx.Client, receiver: NotifyReceiver, notify_url: str
) -> None:
    sim.state.add_fault(
        "payment_notify", "notify_before_query", delay_s=5, masked_state="USERPAYING"
    )
    out_trade_no = placed(http, notify_url)
    trade = sim.state.pay(out_trade_no)
    receiver.wait_for(1)
    query = call(http, "/pay/orderquery", {"out_trade_no": out_trade_no})
    assert (query["trade_state"], "transaction_id" in query) == ("USERPAYING", False)
    by_id = call(http, "/pay/orderquery", {"transaction_id": trade.transaction_id or ""})
    assert by_id["err_code"] == "ORDERNOTEXIST"
    # Closing meanwhile finds the truth: the trade is paid (spec §6, closing vs paying races).
    sim.state.advance_clock(300)
    assert call(http, "/pay/closeorder", {"out_trade_no": out_trade_no})["err_code"] == "ORDERPAID"
