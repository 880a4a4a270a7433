"""The WeChat API simulator over real HTTP on loopback: WeChat's URLs, JSON and errcodes
(spec §8)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lbs.config import decode_encoding_aes_key
from lbs.simulator import SimulatorConfig, create_simulator_app, simulator_config_from_settings
from lbs.wxcrypto import WXBizMsgCrypt
from tests.lbs.sim_helpers import PushReceiver, RunningSimulator, running_simulator, serving
from tianfu.settings import ConfigurationError, load_settings

APPID = "wx0123456789abcdef"
APPSECRET = "fedcba9876543210fedcba9876543210"
TOKEN = "SimTestToken2026"
AES_KEY = "SimulatorTestEncodingAESKey0123456789abcdef"
USER = "oSimTestUser0000000000000001"
OTHER_USER = "oSimTestUser0000000000000002"


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimulatorConfig(appid=APPID, appsecret=APPSECRET)) as running:
        yield running


@pytest.fixture
def http(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=5) as client:
        yield client


def fetch_token(http: httpx.Client, **overrides: str) -> dict[str, Any]:
    params = {"grant_type": "client_credential", "appid": APPID, "secret": APPSECRET} | overrides
    answer: dict[str, Any] = http.get("/cgi-bin/token", params=params).json()
    return answer


def token(http: httpx.Client) -> str:
    return str(fetch_token(http)["access_token"])


def ticket_answer(http: httpx.Client, access_token: str) -> dict[str, Any]:
    params = {"access_token": access_token, "type": "jsapi"}
    answer: dict[str, Any] = http.get("/cgi-bin/ticket/getticket", params=params).json()
    return answer


def custom_send(http: httpx.Client, access_token: str, body: object) -> dict[str, Any]:
    response = http.post(
        "/cgi-bin/message/custom/send", params={"access_token": access_token}, json=body
    )
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def text(openid: str, content: str = "您好") -> dict[str, Any]:
    return {"touser": openid, "msgtype": "text", "text": {"content": content}}


def template_send(http: httpx.Client, access_token: str, body: object) -> dict[str, Any]:
    response = http.post(
        "/cgi-bin/message/template/send", params={"access_token": access_token}, json=body
    )
    answer: dict[str, Any] = response.json()
    return answer


def notice(openid: str, client_msg_id: str | None = None, money: str = "¥12.50") -> dict[str, Any]:
    body: dict[str, Any] = {
        "touser": openid,
        "template_id": "tpl-account-change",
        "data": {"Type": {"value": "消费"}, "Money": {"value": money}},
    }
    if client_msg_id is not None:
        body["client_msg_id"] = client_msg_id
    return body


def interaction(http: httpx.Client, openid: str, kind: str, age_s: float = 0) -> None:
    body = {"openid": openid, "kind": kind, "age_s": age_s}
    assert http.post("/sim/interactions", json=body).status_code == 204


# -- access token, jsapi_ticket ------------------------------------------------------------------


def test_token_needs_the_right_appid_secret_and_grant_type(http: httpx.Client) -> None:
    assert fetch_token(http, appid="wx1111111111111111")["errcode"] == 40013
    assert fetch_token(http, secret="wrong")["errcode"] == 40125
    assert fetch_token(http, grant_type="password")["errcode"] == 40002
    answer = fetch_token(http)
    assert answer["expires_in"] == 7200
    assert len(answer["access_token"]) > 100


def test_a_new_token_invalidates_the_previous_one(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    first, second = token(http), token(http)
    assert ticket_answer(http, first)["errcode"] == 40001
    assert ticket_answer(http, second)["errcode"] == 0
    assert sim.state.token_fetches == 2


def test_with_a_grace_period_the_previous_token_lasts_that_long() -> None:
    config = SimulatorConfig(appid=APPID, appsecret=APPSECRET, old_token_grace_s=300)
    with running_simulator(config) as sim, httpx.Client(base_url=sim.base_url) as http:
        first = token(http)
        token(http)
        assert ticket_answer(http, first)["errcode"] == 0
        sim.state.advance_clock(301)
        assert ticket_answer(http, first)["errcode"] == 42001


def test_tokens_expire_after_their_lifetime(sim: RunningSimulator, http: httpx.Client) -> None:
    access_token = token(http)
    assert http.post("/sim/clock", json={"advance_s": 7200}).status_code == 204
    assert ticket_answer(http, access_token)["errcode"] == 42001
    assert (
        http.get("/cgi-bin/ticket/getticket", params={"type": "jsapi"}).json()["errcode"] == 41001
    )


def test_jsapi_ticket_is_issued_for_type_jsapi(sim: RunningSimulator, http: httpx.Client) -> None:
    access_token = token(http)
    answer = ticket_answer(http, access_token)
    assert (answer["errcode"], answer["errmsg"], answer["expires_in"]) == (0, "ok", 7200)
    assert answer["ticket"]
    wrong = http.get(
        "/cgi-bin/ticket/getticket", params={"access_token": access_token, "type": "foo"}
    )
    assert wrong.json()["errcode"] == 40097
    assert sim.state.ticket_fetches == 1


# -- customer-service messages -----------------------------------------------------------------


def test_custom_send_without_a_user_action_is_refused_45015(http: httpx.Client) -> None:
    assert custom_send(http, token(http), text(USER))["errcode"] == 45015


def test_a_user_message_allows_five_messages_for_48_hours(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    access_token = token(http)
    interaction(http, USER, "message")
    assert [custom_send(http, access_token, text(USER))["errcode"] for _ in range(6)] == [
        0,
        0,
        0,
        0,
        0,
        45047,
    ]
    interaction(http, USER, "message")  # the user writes again: a fresh window
    assert custom_send(http, access_token, text(USER))["errcode"] == 0
    sim.state.advance_clock(48 * 3600)
    assert custom_send(http, token(http), text(USER))["errcode"] == 45015


def test_a_click_allows_three_messages_within_a_minute(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    access_token = token(http)
    interaction(http, USER, "click")
    codes = [custom_send(http, access_token, text(USER))["errcode"] for _ in range(4)]
    assert codes == [0, 0, 0, 45047]
    interaction(http, USER, "subscribe")
    sim.state.advance_clock(61)
    assert custom_send(http, token(http), text(USER))["errcode"] == 45015


def test_an_action_older_than_its_window_opens_nothing(http: httpx.Client) -> None:
    interaction(http, USER, "message", age_s=48 * 3600 + 1)
    interaction(http, OTHER_USER, "scan")
    assert custom_send(http, token(http), text(USER))["errcode"] == 45015


def test_malformed_custom_messages_get_wechat_errcodes(http: httpx.Client) -> None:
    access_token = token(http)
    interaction(http, USER, "message")
    article = {"title": "春熙路火锅", "description": "8折", "url": "https://t.example/1"}
    two = {"touser": USER, "msgtype": "news", "news": {"articles": [article, article]}}
    assert custom_send(http, access_token, two)["errcode"] == 45008
    assert custom_send(http, access_token, {**text(USER), "msgtype": "voice"})["errcode"] == 40008
    assert custom_send(http, access_token, text(USER, ""))["errcode"] == 44004
    assert custom_send(http, access_token, text(""))["errcode"] == 40003
    response = http.post(
        "/cgi-bin/message/custom/send", params={"access_token": access_token}, content=b"{oops"
    )
    assert response.json()["errcode"] == 47001
    assert custom_send(http, "not-a-token", text(USER))["errcode"] == 40001


def test_delivered_messages_are_in_the_users_inbox(http: httpx.Client) -> None:
    access_token = token(http)
    interaction(http, USER, "message")
    article = {
        "title": "附近优惠",
        "description": "3家",
        "url": "https://t.example/n",
        "picurl": "",
    }
    one = {"touser": USER, "msgtype": "news", "news": {"articles": [article]}}
    assert custom_send(http, access_token, text(USER, "您的位置已收到"))["errcode"] == 0
    assert custom_send(http, access_token, one)["errcode"] == 0
    messages = http.get("/sim/inbox", params={"openid": USER}).json()["messages"]
    assert [m["msgtype"] for m in messages] == ["text", "news"]
    assert messages[0]["text"] == {"content": "您的位置已收到"}
    assert messages[1]["news"]["articles"] == [article]
    assert http.get("/sim/inbox", params={"openid": OTHER_USER}).json()["messages"] == []


# -- template messages ---------------------------------------------------------------------------


def test_template_send_answers_a_msgid_and_dedups_client_msg_id(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    access_token = token(http)
    first = template_send(http, access_token, notice(USER, "order-1"))
    assert (first["errcode"], first["errmsg"]) == (0, "ok")
    assert template_send(http, access_token, notice(USER, "order-1"))["msgid"] == first["msgid"]
    other_user = template_send(http, access_token, notice(OTHER_USER, "order-1"))["msgid"]
    assert other_user != first["msgid"]
    assert sim.state.template_sends == 2
    assert len(sim.state.inbox(USER)) == 1
    sim.state.advance_clock(601)  # past the dedup window
    assert template_send(http, access_token, notice(USER, "order-1"))["msgid"] != first["msgid"]


def test_template_values_are_shown_cut_to_20_characters(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    long_value = "一二三四五六七八九十" * 3
    template_send(http, token(http), notice(USER, money=long_value))
    (shown,) = sim.state.inbox(USER)
    assert shown["data"]["Money"] == long_value[:20]
    assert shown["kind"] == "template"


def test_malformed_template_sends_get_wechat_errcodes(http: httpx.Client) -> None:
    access_token = token(http)
    assert (
        template_send(http, access_token, {**notice(USER), "template_id": ""})["errcode"] == 40037
    )
    bad_data = {**notice(USER), "data": {"Money": "12.50"}}
    assert template_send(http, access_token, bad_data)["errcode"] == 47001


def test_template_finish_is_pushed_signed_and_encrypted_and_retried() -> None:
    crypt = WXBizMsgCrypt(token=TOKEN, aes_key=decode_encoding_aes_key(AES_KEY), appid=APPID)
    receiver = PushReceiver(token=TOKEN, crypt=crypt, fail_first=1)
    with serving(receiver.app) as receiver_url:
        config = SimulatorConfig(
            appid=APPID,
            appsecret=APPSECRET,
            token=TOKEN,
            encoding_aes_key=AES_KEY,
            callback_url=f"{receiver_url}/wechat",
            template_finish_delay_s=0.05,
        )
        with running_simulator(config) as sim, httpx.Client(base_url=sim.base_url) as http:
            access_token = token(http)
            sim.state.add_fault("template_send", "user_block")
            blocked = template_send(http, access_token, notice(USER, "a"))["msgid"]
            delivered = template_send(http, access_token, notice(USER, "b"))["msgid"]
            (first, second) = receiver.wait_for(2)
    assert receiver.encrypted == [True, True]
    assert receiver.attempts == 3  # the first push failed once and was retried
    assert (first["Event"], first["MsgID"], first["Status"]) == (
        "TEMPLATESENDJOBFINISH",
        str(blocked),
        "failed:user block",
    )
    assert (second["MsgID"], second["Status"]) == (str(delivered), "success")
    assert (first["ToUserName"], first["FromUserName"]) == ("gh_000000000000", USER)
    assert [(r.delivered, r.attempts) for r in sim.state.callbacks] == [(True, 2), (True, 1)]


def test_a_callback_url_without_a_token_is_refused() -> None:
    config = SimulatorConfig(appid=APPID, appsecret=APPSECRET, callback_url="http://127.0.0.1/w")
    with pytest.raises(ValueError, match="token"):
        create_simulator_app(config)


# -- OAuth2 ----------------------------------------------------------------------------------------


def authorize(http: httpx.Client, **overrides: str) -> httpx.Response:
    params = {
        "appid": APPID,
        "redirect_uri": "https://tianfu.example/h5/nearby?lat=30.65",
        "response_type": "code",
        "scope": "snsapi_base",
        "state": "abc123",
    } | overrides
    return http.get("/connect/oauth2/authorize", params=params)


def redirected_code(response: httpx.Response) -> str:
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return query["code"][0]


def oauth_token(http: httpx.Client, code: str) -> dict[str, Any]:
    params = {
        "appid": APPID,
        "secret": APPSECRET,
        "code": code,
        "grant_type": "authorization_code",
    }
    answer: dict[str, Any] = http.get("/sns/oauth2/access_token", params=params).json()
    return answer


def test_authorize_redirects_back_with_a_code_and_the_state(http: httpx.Client) -> None:
    location = urlsplit(authorize(http).headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "tianfu.example",
        "/h5/nearby",
    )
    query = parse_qs(location.query)
    assert query["lat"] == ["30.65"]
    assert query["state"] == ["abc123"]
    answer = oauth_token(http, query["code"][0])
    assert answer["openid"] == "oTianfuSimulatorDefaultUser1"
    assert (answer["scope"], answer["expires_in"]) == ("snsapi_base", 7200)
    assert answer["access_token"]
    assert answer["refresh_token"]


def test_a_browser_keeps_the_openid_it_was_given(sim: RunningSimulator) -> None:
    with (
        httpx.Client(base_url=sim.base_url) as browser,
        httpx.Client(base_url=sim.base_url) as other,
    ):
        assert (
            oauth_token(browser, redirected_code(authorize(browser, sim_openid=USER)))["openid"]
            == USER
        )
        assert oauth_token(browser, redirected_code(authorize(browser)))["openid"] == USER
        fresh = oauth_token(other, redirected_code(authorize(other, sim_openid="new")))["openid"]
        assert fresh.startswith("o")
        assert len(fresh) == 28
        assert oauth_token(other, redirected_code(authorize(other)))["openid"] == fresh


def test_an_oauth_code_is_single_use_and_short_lived(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    code = redirected_code(authorize(http))
    assert oauth_token(http, code)["openid"]
    assert oauth_token(http, code)["errcode"] == 40163
    assert oauth_token(http, "unknown-code")["errcode"] == 40029
    late = redirected_code(authorize(http))
    sim.state.advance_clock(301)
    assert oauth_token(http, late)["errcode"] == 40029


def test_authorize_with_bad_parameters_shows_an_error_page(http: httpx.Client) -> None:
    assert authorize(http, appid="wx1111111111111111").status_code == 400
    assert authorize(http, scope="snsapi_everything").status_code == 400
    assert authorize(http, redirect_uri="javascript:alert(1)").status_code == 400


# -- faults, reset ---------------------------------------------------------------------------------


def test_faults_apply_to_their_endpoint_for_their_count(http: httpx.Client) -> None:
    fault = {"endpoint": "token", "mode": "system_busy", "count": 2}
    assert http.post("/sim/faults", json=fault).status_code == 204
    assert [fetch_token(http).get("errcode") for _ in range(3)] == [-1, -1, None]
    http.post("/sim/faults", json={"endpoint": "*", "mode": "http_500"})
    assert http.get("/cgi-bin/token", params={}).status_code == 500
    http.post("/sim/faults", json={"endpoint": "custom_send", "mode": "delay", "delay_s": 0.3})
    with pytest.raises(httpx.ReadTimeout):
        http.post("/cgi-bin/message/custom/send", json=text(USER), timeout=0.1)
    assert http.post("/sim/faults", json={"endpoint": "x", "mode": "delay"}).status_code == 422


def test_reset_forgets_everything(sim: RunningSimulator, http: httpx.Client) -> None:
    access_token = token(http)
    interaction(http, USER, "message")
    http.post("/sim/faults", json={"endpoint": "template_send", "mode": "system_busy"})
    assert http.post("/sim/reset").status_code == 204
    assert ticket_answer(http, access_token)["errcode"] == 40001
    assert http.get("/sim/stats").json() == {
        "token_fetches": 0,
        "ticket_fetches": 0,
        "template_sends": 0,
        "callbacks": [],
    }
    assert template_send(http, token(http), notice(USER))["errcode"] == 0


# -- configuration -----------------------------------------------------------------------------


def test_the_simulator_accepts_the_local_env_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in [name for name in os.environ if name.startswith("TIANFU_")]:
        monkeypatch.delenv(name)
    wechat = {
        "appid": APPID,
        "appsecret": APPSECRET,
        "token": TOKEN,
        "encoding_aes_key": AES_KEY,
        "account_id": "gh_7ianfu7e57ac",
    }
    settings = load_settings(wechat=wechat)
    config = simulator_config_from_settings(settings, callback_url="http://127.0.0.1:8000/wechat")
    assert config == SimulatorConfig(
        appid=APPID,
        appsecret=APPSECRET,
        token=TOKEN,
        encoding_aes_key=AES_KEY,
        account_id="gh_7ianfu7e57ac",
        callback_url="http://127.0.0.1:8000/wechat",
    )
    with pytest.raises(ConfigurationError, match="TIANFU_WECHAT_APPID"):
        simulator_config_from_settings(load_settings(wechat={}), callback_url=None)
