"""The Alipay simulator's fault modes over real HTTP on loopback (spec §5: timeouts after the
effect, system errors, bare 5xx, unsigned or badly signed answers, lost, duplicate, early and
badly signed notifies), its control routes, and the official SDK talking to it (§3.5)."""

from __future__ import annotations

import http.client
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest

from payments.alipay.sim_state import RequestFault
from tests.alipay.sim_support import (
    APP_ID,
    PRECREATE,
    QUERY,
    NotifyReceiver,
    RawMerchant,
    RunningSim,
    alipay_keys,
    app_keys,
    delivered,
    make_config,
    new_no,
    paid_trade,
    query,
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


# -- faults ----------------------------------------------------------------------------------------


def test_timeout_fault_takes_effect_but_the_caller_never_hears(sim: RunningSim) -> None:
    sim.state.add_fault("precreate", "timeout", delay_s=1.0)
    impatient = RawMerchant(sim.base_url, timeout_s=0.2)
    out_trade_no = new_no()
    with pytest.raises(httpx.TimeoutException):
        impatient.call(PRECREATE, trade_biz(out_trade_no))
    impatient.close()
    assert sim.state.ledger.find(out_trade_no=out_trade_no, hidden=True) is not None


@pytest.mark.parametrize(
    ("mode", "code"), [("system_error", "40004"), ("service_unavailable", "20000")]
)
def test_system_error_faults_answer_signed_and_have_no_effect(
    sim: RunningSim, merchant: RawMerchant, mode: RequestFault, code: str
) -> None:
    sim.state.add_fault("precreate", mode)
    out_trade_no = new_no()
    answer = merchant.call(PRECREATE, trade_biz(out_trade_no))
    assert (answer.code, answer.verified) == (code, True)
    assert answer.sub_code == ("ACQ.SYSTEM_ERROR" if code == "40004" else "isp.unknow-error")
    assert sim.state.ledger.find(out_trade_no=out_trade_no, hidden=True) is None


def test_http_500_fault_is_bare_and_has_no_effect(sim: RunningSim, merchant: RawMerchant) -> None:
    httpx.post(f"{sim.base_url}/sim/faults", json={"endpoint": "precreate", "mode": "http_500"})
    out_trade_no = new_no()
    response = merchant.send(merchant.signed(PRECREATE, trade_biz(out_trade_no)))
    assert (response.status_code, "sign" in response.text) == (500, False)
    assert sim.state.ledger.find(out_trade_no=out_trade_no, hidden=True) is None


@pytest.mark.parametrize("mode", ["unsigned_response", "bad_response_signature"])
def test_answer_signature_faults_make_the_answer_unverifiable(
    sim: RunningSim, merchant: RawMerchant, mode: RequestFault
) -> None:
    sim.state.add_fault("query", mode)
    out_trade_no = paid_trade(sim, merchant, "")
    answer = merchant.call(QUERY, {"out_trade_no": out_trade_no})
    assert answer.body["trade_status"] == "TRADE_SUCCESS"
    assert not answer.verified
    assert ("sign" in answer.response.json()) is (mode == "bad_response_signature")


def test_lost_notify_is_never_sent(sim: RunningSim, merchant: RawMerchant, notify_url: str) -> None:
    sim.state.add_fault("notify", "lost_notify")
    out_trade_no = paid_trade(sim, merchant, notify_url)
    time.sleep(0.2)
    assert sim.state.deliveries == []
    assert len(sim.state.lost_notifies) == 1
    assert query(merchant, out_trade_no)["trade_status"] == "TRADE_SUCCESS"


def test_duplicate_notify_delivers_the_same_notify_id_twice(
    sim: RunningSim, merchant: RawMerchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    sim.state.add_fault("notify", "duplicate_notify")
    paid_trade(sim, merchant, notify_url)
    first, second = receiver.wait_for(2)
    assert first.fields["notify_id"] == second.fields["notify_id"]


def test_notify_can_arrive_while_the_query_still_says_wait_buyer_pay(
    sim: RunningSim, merchant: RawMerchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    sim.state.add_fault("notify", "notify_before_query", delay_s=1.5)
    out_trade_no = paid_trade(sim, merchant, notify_url)
    assert receiver.wait_for(1)[0].fields["trade_status"] == "TRADE_SUCCESS"
    masked = query(merchant, out_trade_no)
    assert masked["trade_status"] == "WAIT_BUYER_PAY"
    assert "send_pay_date" not in masked
    wait_until(lambda: query(merchant, out_trade_no)["trade_status"] == "TRADE_SUCCESS")


def test_badly_signed_notify_is_refused_then_redelivered(
    sim: RunningSim, merchant: RawMerchant, receiver: NotifyReceiver, notify_url: str
) -> None:
    sim.state.add_fault("notify", "bad_notify_signature")
    paid_trade(sim, merchant, notify_url)
    receiver.wait_for(1)
    assert len(receiver.rejected) == 1
    assert [(d.answer, d.answered_ok) for d in delivered(sim.state)] == [
        ("fail", False),
        ("success", True),
    ]
    over_http = httpx.get(f"{sim.base_url}/sim/deliveries").json()
    assert [(d["attempt"], d["answered_ok"]) for d in over_http] == [(0, False), (1, True)]
    assert over_http[1]["fields"]["sign_type"] == "RSA2"


def test_reset_forgets_trades_faults_and_the_clock(sim: RunningSim, merchant: RawMerchant) -> None:
    out_trade_no = paid_trade(sim, merchant, "")
    sim.state.add_fault("*", "http_500")
    sim.state.advance_clock(86400)
    assert httpx.post(f"{sim.base_url}/sim/reset").status_code == 204
    assert httpx.get(f"{sim.base_url}/sim/trades/{out_trade_no}").status_code == 404
    assert httpx.get(f"{sim.base_url}/sim/stats").json()["faults"] == []
    assert merchant.call(PRECREATE, trade_biz(out_trade_no)).code == "10000"
    assert abs((sim.state.now() - datetime.now(UTC)).total_seconds()) < 5


# -- the official SDK ------------------------------------------------------------------------------


@pytest.fixture
def beijing_local_time() -> Iterator[None]:
    """The SDK stamps `timestamp` with host local time (§3.5); make that Beijing time. A POSIX
    TZ string, so no tz database is needed."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "CST-8"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def _connection_honouring_the_port(
    url: str, query_string: str, timeout: float
) -> tuple[str, http.client.HTTPConnection]:
    """spec §3.5 workaround 1: the SDK's own version drops the port (and raises on one)."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    return f"{parts.path}?{query_string}", connection


def test_the_official_sdk_signs_requests_the_simulator_accepts_and_verifies_its_answer(
    sim: RunningSim, monkeypatch: pytest.MonkeyPatch, beijing_local_time: None
) -> None:
    from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
    from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
    from alipay.aop.api.domain.AlipayTradePrecreateModel import AlipayTradePrecreateModel
    from alipay.aop.api.request.AlipayTradePrecreateRequest import AlipayTradePrecreateRequest
    from alipay.aop.api.response.AlipayTradePrecreateResponse import AlipayTradePrecreateResponse

    monkeypatch.setattr(
        "alipay.aop.api.util.WebUtils.get_http_connection", _connection_honouring_the_port
    )
    config = AlipayClientConfig()
    config.server_url = f"{sim.base_url}/gateway.do"
    config.app_id = APP_ID
    config.app_private_key = app_keys()["private_key_pkcs1_pem"]
    config.alipay_public_key = alipay_keys()["public_key_pem"]
    client = DefaultAlipayClient(config)
    model = AlipayTradePrecreateModel()
    model.out_trade_no = new_no()
    model.total_amount = "88.88"
    model.subject = "优惠券订单 Coupon order"
    request = AlipayTradePrecreateRequest(biz_model=model)
    # execute() verifies the answer's sign over the exact text and raises if it fails.
    text = client.execute(request)
    answer = AlipayTradePrecreateResponse()
    answer.parse_response_content(text)
    assert (answer.code, answer.out_trade_no) == ("10000", model.out_trade_no)
    assert answer.qr_code.startswith("https://qr.alipay.com/")
    sim.state.add_fault("precreate", "bad_response_signature")
    with pytest.raises(Exception, match="sign verify failed"):
        client.execute(request)
