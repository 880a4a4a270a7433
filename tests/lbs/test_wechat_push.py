"""lbs.wechat_push and `tianfu wechat send`: WeChat's side of a push, against a small callback
server on loopback that answers as Tianfu would, or times out and fails on cue (spec §3, §6)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import typer
from typer.testing import CliRunner

import tianfu.cli_support
from lbs.cli import DEFAULT_OPENID, wechat_app
from lbs.config import decode_encoding_aes_key
from lbs.wechat_push import (
    NO_REPLY_TEXT,
    SERVICE_UNAVAILABLE_TEXT,
    EncryptMode,
    PushClient,
    PushFailedError,
    build_push,
    event_xml,
    location_message_xml,
    read_reply,
    render_for_user,
    text_message_xml,
)
from lbs.wxcrypto import (
    WeChatDecryptError,
    WeChatSignatureError,
    WXBizMsgCrypt,
    msg_signature,
    plain_signature,
    signatures_match,
)
from lbs.wxxml import (
    SUCCESS,
    Article,
    IncomingMessage,
    XmlRejectedError,
    news_reply,
    parse_message,
    parse_reply,
    parse_xml,
    text_reply,
)
from tests.http import free_port
from tianfu.settings import ConfigurationError, TianfuSettings, load_settings

# Throwaway values in the shapes WeChat uses.
TOKEN = "TianfuPushTestToken"
APPID = "wx0123456789abcdef"
ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_0123456789ab"
USER = "oTianfuPushUser000000000001"
NOW = 1718000000
SHORT_TIMEOUT_S = 0.3


def _crypt(appid: str = APPID) -> WXBizMsgCrypt:
    return WXBizMsgCrypt(
        token=TOKEN, aes_key=decode_encoding_aes_key(ENCODING_AES_KEY), appid=appid
    )


# --- a callback server on loopback -------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    query: dict[str, str]
    body: bytes


class FakeCallback:
    """Answers pushes as Tianfu would; `script` makes the first requests hang, fail or lie."""

    def __init__(self, script: list[str] | None = None) -> None:
        self.script = list(script or [])
        self.received: list[Received] = []
        self.messages: list[IncomingMessage] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/wechat"

    def close(self) -> None:
        self.release.set()  # hanging handlers return, so server_close can join them
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _next(self, received: Received) -> str:
        with self._lock:
            self.received.append(received)
            index = len(self.received) - 1
        return self.script[index] if index < len(self.script) else "reply"

    def answer(self, query: dict[str, str], body: bytes, *, tamper: bool) -> tuple[int, bytes]:
        timestamp, nonce = query["timestamp"], query["nonce"]
        if not signatures_match(plain_signature(TOKEN, timestamp, nonce), query["signature"]):
            return 403, b""
        encrypted = query.get("encrypt_type") == "aes"
        plaintext = body
        if encrypted:
            encrypt = str(parse_xml(body)["Encrypt"])
            crypt = _crypt()
            crypt.check_msg_signature(
                query["msg_signature"], timestamp=timestamp, nonce=nonce, encrypt=encrypt
            )
            plaintext = crypt.decrypt(encrypt).plaintext.encode("utf-8")
        message = parse_message(parse_xml(plaintext))
        with self._lock:
            self.messages.append(message)
        reply = _reply_for(message)
        if encrypted and reply != SUCCESS:
            reply = _crypt().encrypted_reply_xml(reply, timestamp=timestamp, nonce=nonce)
            if tamper:
                reply = reply.replace("<MsgSignature><![CDATA[", "<MsgSignature><![CDATA[0")
        return 200, reply.encode("utf-8")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
                behaviour = fake._next(Received(query, body))
                if behaviour == "hang":
                    # Past the client's timeout; then close without a word.
                    fake.release.wait(10)
                    return
                status, payload = {
                    "500": (500, b"boom"),
                    "403": (403, b""),
                    "json": (200, b'{"errcode": 0}'),
                }.get(behaviour) or fake.answer(query, body, tamper=behaviour == "bad-signature")
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _reply_for(message: IncomingMessage) -> str:
    header: dict[str, Any] = {"to_user": message.from_user, "from_user": message.to_user}
    if message.msg_type == "text":
        content = f"收到：{message.content}"
        return text_reply(**header, content=content, create_time=NOW)
    if message.msg_type == "location":
        card = Article(
            title=f"{message.label or '此处'}附近 3 家优惠",
            description=f"({message.location_lat}, {message.location_lng})",
            url=f"https://tianfu.example/h5/nearby?lat={message.location_lat}",
        )
        return news_reply(**header, articles=[card], create_time=NOW, max_articles=1)
    if message.event == "click":
        cards = [Article(title=f"优惠 {i}", description="满50减10", url=f"/o/{i}") for i in (1, 2)]
        return news_reply(**header, articles=cards, create_time=NOW, max_articles=8)
    return SUCCESS


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[FakeCallback] = []

    def start(*script: str) -> FakeCallback:
        fake = FakeCallback(list(script))
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.close()


def _client(url: str, mode: EncryptMode = EncryptMode.safe, **options: Any) -> PushClient:
    crypt = None if mode is EncryptMode.plaintext else _crypt()
    return PushClient(url=url, token=TOKEN, mode=mode, crypt=crypt, account_id=ACCOUNT, **options)


def _text(content: str = "附近") -> str:
    return text_message_xml(
        to_user=ACCOUNT, from_user=USER, content=content, msg_id=24612345678901234, create_time=NOW
    )


# --- the XML WeChat sends ----------------------------------------------------------------------


def test_text_message_xml_is_what_wechat_sends() -> None:
    assert _text() == (
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>\n"
        "<FromUserName><![CDATA[oTianfuPushUser000000000001]]></FromUserName>\n"
        "<CreateTime>1718000000</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n"
        "<Content><![CDATA[附近]]></Content>\n<MsgId>24612345678901234</MsgId></xml>"
    )
    message = parse_message(parse_xml(_text("42").encode("utf-8")))
    assert (message.content, message.dedup_key) == ("42", "msgid:24612345678901234")


def test_location_message_puts_latitude_in_location_x() -> None:
    xml = location_message_xml(
        to_user=ACCOUNT, from_user=USER, lat=30.65742, lng=104.06584, label="天府广场",
        msg_id=7, create_time=NOW,
    )  # fmt: skip
    assert "<Location_X>30.657420</Location_X>" in xml
    assert "<Location_Y>104.065840</Location_Y>" in xml
    message = parse_message(parse_xml(xml.encode("utf-8")))
    assert (message.location_lat, message.location_lng, message.scale) == (30.65742, 104.06584, 15)
    assert message.label == "天府广场"


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("location", "LOCATION"),
        ("click", "CLICK"),
        ("View", "VIEW"),
        ("scan", "SCAN"),
        ("SUBSCRIBE", "subscribe"),
        ("templatesendjobfinish", "TEMPLATESENDJOBFINISH"),
        ("LOCATION_SELECT", "location_select"),
        ("some_new_event", "some_new_event"),
    ],
)
def test_event_xml_uses_wechats_casing(given: str, sent: str) -> None:
    xml = event_xml(to_user=ACCOUNT, from_user=USER, event=given, create_time=NOW)
    assert f"<Event><![CDATA[{sent}]]></Event>" in xml


def test_template_job_finish_event_matches_the_vector_layout() -> None:
    xml = event_xml(
        to_user=ACCOUNT, from_user=USER, event="TEMPLATESENDJOBFINISH", create_time=NOW,
        extra={"MsgID": "200163836", "Status": "failed: system failed"},
    )  # fmt: skip
    # Numbers bare, strings in CDATA, as WeChat writes them.
    assert "<MsgID>200163836</MsgID>" in xml
    assert "<Status><![CDATA[failed: system failed]]></Status>" in xml
    message = parse_message(parse_xml(xml.encode("utf-8")))
    assert (message.msg_id, message.status) == ("200163836", "failed: system failed")
    assert message.dedup_key == f"event:{USER}:{NOW}:TEMPLATESENDJOBFINISH"


def test_location_event_xml_parses_to_its_position() -> None:
    xml = event_xml(
        to_user=ACCOUNT, from_user=USER, event="LOCATION", create_time=NOW,
        extra={"Latitude": "30.657420", "Longitude": "104.065840", "Precision": "65.000000"},
    )  # fmt: skip
    message = parse_message(parse_xml(xml.encode("utf-8")))
    assert (message.latitude, message.longitude, message.precision) == (30.65742, 104.06584, 65.0)


def test_event_key_with_a_cdata_breakout_survives() -> None:
    key = "附近优惠]]><Event>VIEW</Event>"
    xml = event_xml(to_user=ACCOUNT, from_user=USER, event="CLICK", create_time=NOW, event_key=key)
    assert parse_message(parse_xml(xml.encode("utf-8"))).event_key == key


@pytest.mark.parametrize("name", ["", "1abc", "a b", "x>y", "<Event>"])
def test_event_xml_refuses_bad_field_names(name: str) -> None:
    with pytest.raises(ValueError, match="field name"):
        event_xml(
            to_user=ACCOUNT, from_user=USER, event="CLICK", create_time=NOW, extra={name: "1"}
        )


# --- build_push ----------------------------------------------------------------------------------


def test_plaintext_push_is_signed_but_not_encrypted() -> None:
    push = build_push(
        _text(), token=TOKEN, mode=EncryptMode.plaintext, crypt=None, to_user=ACCOUNT,
        timestamp=NOW, nonce="1320562132",
    )  # fmt: skip
    assert push.params == {
        "signature": plain_signature(TOKEN, str(NOW), "1320562132"),
        "timestamp": str(NOW),
        "nonce": "1320562132",
    }
    assert push.body == _text().encode("utf-8")


def test_safe_push_body_is_to_user_and_encrypt_only() -> None:
    push = build_push(
        _text(), token=TOKEN, mode=EncryptMode.safe, crypt=_crypt(), to_user=ACCOUNT,
        timestamp=NOW, nonce="42",
    )  # fmt: skip
    envelope = parse_xml(push.body)
    assert set(envelope) == {"ToUserName", "Encrypt"}
    assert envelope["ToUserName"] == ACCOUNT
    encrypt = str(envelope["Encrypt"])
    assert push.params["encrypt_type"] == "aes"
    assert push.params["signature"] == plain_signature(TOKEN, str(NOW), "42")
    assert push.params["msg_signature"] == msg_signature(TOKEN, str(NOW), "42", encrypt)
    assert _crypt().decrypt(encrypt).plaintext == _text()


def test_compat_push_body_has_the_clear_fields_and_encrypt() -> None:
    push = build_push(
        _text(), token=TOKEN, mode=EncryptMode.compat, crypt=_crypt(), to_user=ACCOUNT,
        timestamp=NOW, nonce="42",
    )  # fmt: skip
    fields = parse_xml(push.body)
    assert fields["Content"] == "附近"
    encrypt = str(fields.pop("Encrypt"))
    assert fields == parse_xml(_text().encode("utf-8"))
    assert push.params["msg_signature"] == msg_signature(TOKEN, str(NOW), "42", encrypt)
    assert _crypt().decrypt(encrypt).plaintext == _text()


@pytest.mark.parametrize("mode", [EncryptMode.compat, EncryptMode.safe])
def test_encrypted_push_needs_a_crypt(mode: EncryptMode) -> None:
    with pytest.raises(ValueError, match="WXBizMsgCrypt"):
        build_push(
            _text(), token=TOKEN, mode=mode, crypt=None, to_user=ACCOUNT, timestamp=NOW, nonce="1"
        )


# --- read_reply and render_for_user --------------------------------------------------------------


@pytest.mark.parametrize("body", [b"success", b"", b"success\n"])
def test_no_reply_bodies_are_returned_as_is(body: bytes) -> None:
    assert read_reply(body, token=TOKEN, crypt=_crypt()) == body.strip().decode()


def test_plaintext_reply_is_returned_unchanged() -> None:
    reply = text_reply(to_user=USER, from_user=ACCOUNT, content="你好", create_time=NOW)
    assert read_reply(reply.encode("utf-8"), token=TOKEN, crypt=None) == reply


def test_encrypted_reply_is_verified_and_decrypted() -> None:
    reply = text_reply(to_user=USER, from_user=ACCOUNT, content="你好", create_time=NOW)
    envelope = _crypt().encrypted_reply_xml(reply, timestamp="1718000001", nonce="77")
    assert read_reply(envelope.encode("utf-8"), token=TOKEN, crypt=_crypt()) == reply


def test_encrypted_reply_with_a_bad_signature_is_refused() -> None:
    reply = text_reply(to_user=USER, from_user=ACCOUNT, content="你好", create_time=NOW)
    envelope = _crypt().encrypted_reply_xml(reply, timestamp="1718000001", nonce="77")
    # Same ciphertext, but the envelope claims another nonce than the one signed.
    forged = envelope.replace("<![CDATA[77]]>", "<![CDATA[78]]>")
    with pytest.raises(WeChatSignatureError):
        read_reply(forged.encode("utf-8"), token=TOKEN, crypt=_crypt())
    with pytest.raises(WeChatSignatureError):
        read_reply(envelope.encode("utf-8"), token="AnotherToken", crypt=_crypt())


def test_encrypted_reply_for_another_appid_is_refused() -> None:
    envelope = _crypt(appid="wx0000000000000000").encrypted_reply_xml(
        "<xml/>", timestamp="1", nonce="2"
    )
    with pytest.raises(WeChatDecryptError):
        read_reply(envelope.encode("utf-8"), token=TOKEN, crypt=_crypt())
    with pytest.raises(WeChatDecryptError):
        read_reply(envelope.encode("utf-8"), token=TOKEN, crypt=None)


@pytest.mark.parametrize(
    "body",
    [b'{"errcode": 0}', b"\xff\xfe<xml/>", b"<xml><Encrypt>abc</Encrypt></xml>"],
    ids=["json", "not-utf8", "envelope-without-signature"],
)
def test_reply_that_is_not_reply_xml_is_refused(body: bytes) -> None:
    with pytest.raises(XmlRejectedError):
        read_reply(body, token=TOKEN, crypt=_crypt())


def test_render_text_news_and_nothing() -> None:
    text = text_reply(to_user=USER, from_user=ACCOUNT, content="第一行\n第二行", create_time=NOW)
    assert render_for_user(text) == "第一行\n第二行"
    news = news_reply(
        to_user=USER, from_user=ACCOUNT, create_time=NOW, max_articles=8,
        articles=[
            Article(title="火锅 8 折", description="距离 120 米", url="https://t.example/1"),
            Article(title="咖啡满减", description="满50减10", url="https://t.example/2"),
        ],
    )  # fmt: skip
    assert render_for_user(news) == (
        "[图文] 火锅 8 折\n 距离 120 米\n → https://t.example/1\n"
        "[图文] 咖啡满减\n 满50减10\n → https://t.example/2"
    )
    assert render_for_user(SUCCESS) == render_for_user("") == NO_REPLY_TEXT
    assert NO_REPLY_TEXT == "(no reply: WeChat shows nothing)"


@pytest.mark.parametrize("reply", ['{"text": "hi"}', "<xml><A>1</A>", "<xml><A>1</A></xml>"])
def test_render_of_an_invalid_reply_is_wechats_error_text(reply: str) -> None:
    assert render_for_user(reply) == SERVICE_UNAVAILABLE_TEXT


# --- PushClient over loopback ------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(EncryptMode))
def test_push_in_every_mode_gets_the_reply(serve: Any, mode: EncryptMode) -> None:
    server: FakeCallback = serve()
    with _client(server.url, mode) as client:
        result = client.send(_text("你好"))
    assert (result.attempts, result.status_code) == (1, 200)
    assert parse_reply(result.reply_xml)["Content"] == "收到：你好"
    assert server.messages[0].content == "你好"
    sent = server.received[0]
    assert ("encrypt_type" in sent.query) is (mode is not EncryptMode.plaintext)
    if mode is EncryptMode.safe:
        assert b"\xe4\xbd\xa0" not in sent.body  # no 你 in the clear


def test_event_without_a_message_reply_gets_success(serve: Any) -> None:
    server: FakeCallback = serve()
    xml = event_xml(to_user=ACCOUNT, from_user=USER, event="subscribe", create_time=NOW)
    with _client(server.url) as client:
        assert client.send(xml).reply_xml == SUCCESS


def _assert_identical_tries(server: FakeCallback, count: int) -> None:
    assert len(server.received) == count
    first = server.received[0]
    # WeChat retries the very same request: same signature, timestamp, nonce and body (spec §3).
    assert all(r == first for r in server.received)
    assert {"signature", "timestamp", "nonce"} <= set(first.query)


def test_5xx_is_retried_with_the_same_request(serve: Any) -> None:
    server: FakeCallback = serve("500", "500")
    with _client(server.url, timeout_s=SHORT_TIMEOUT_S) as client:
        result = client.send(_text())
    assert (result.attempts, result.status_code) == (3, 200)
    assert parse_reply(result.reply_xml)["Content"] == "收到：附近"
    _assert_identical_tries(server, 3)


def test_timeout_is_retried_with_the_same_request(serve: Any) -> None:
    server: FakeCallback = serve("hang")
    started = time.perf_counter()
    with _client(server.url, timeout_s=SHORT_TIMEOUT_S) as client:
        result = client.send(_text())
    assert result.attempts == 2
    assert result.elapsed_s >= SHORT_TIMEOUT_S
    assert time.perf_counter() - started < SHORT_TIMEOUT_S * 2 + 2
    _assert_identical_tries(server, 2)


def test_three_failures_give_up_after_exactly_three_tries(serve: Any) -> None:
    server: FakeCallback = serve("500", "hang", "500", "reply")
    with (
        _client(server.url, timeout_s=SHORT_TIMEOUT_S) as client,
        pytest.raises(PushFailedError, match="after 3 tries") as caught,
    ):
        client.send(_text())
    assert (caught.value.attempts, caught.value.status_code) == (3, 500)
    _assert_identical_tries(server, 3)


def test_three_timeouts_give_up(serve: Any) -> None:
    server: FakeCallback = serve("hang", "hang", "hang")
    with (
        _client(server.url, timeout_s=SHORT_TIMEOUT_S) as client,
        pytest.raises(PushFailedError, match=r"no answer within 0\.3 s after 3 tries") as caught,
    ):
        client.send(_text())
    assert (caught.value.attempts, caught.value.status_code) == (3, None)
    _assert_identical_tries(server, 3)


def test_unreachable_server_fails_after_three_tries() -> None:
    url = f"http://127.0.0.1:{free_port()}/wechat"
    with (
        _client(url, timeout_s=SHORT_TIMEOUT_S) as client,
        pytest.raises(PushFailedError) as caught,
    ):
        client.send(_text())
    assert caught.value.attempts == 3
    assert "connection failed" in str(caught.value)


def test_4xx_is_not_retried(serve: Any) -> None:
    server: FakeCallback = serve("403")
    with _client(server.url) as client, pytest.raises(PushFailedError, match="HTTP 403") as caught:
        client.send(_text())
    assert (caught.value.attempts, caught.value.status_code) == (1, 403)
    assert len(server.received) == 1


def test_wrong_token_is_refused_by_the_server(serve: Any) -> None:
    server: FakeCallback = serve()
    client = PushClient(
        url=server.url, token="NotTheToken", mode=EncryptMode.plaintext, crypt=None,
        account_id=ACCOUNT,
    )  # fmt: skip
    with client, pytest.raises(PushFailedError, match="HTTP 403"):
        client.send(_text())


def test_bad_reply_signature_raises(serve: Any) -> None:
    server: FakeCallback = serve("bad-signature")
    with _client(server.url) as client, pytest.raises(WeChatSignatureError):
        client.send(_text())
    assert len(server.received) == 1


def test_injected_http_client_is_left_open_and_own_client_is_closed() -> None:
    with httpx.Client() as http:
        with _client("http://127.0.0.1:9/wechat", http=http):
            pass
        assert not http.is_closed
    client = _client("http://127.0.0.1:9/wechat")
    with client:
        pass
    assert client._http.is_closed


def test_client_refuses_encrypted_mode_without_crypt_and_zero_tries() -> None:
    with pytest.raises(ValueError, match="WXBizMsgCrypt"):
        PushClient(url="http://x", token=TOKEN, mode=EncryptMode.safe, crypt=None, account_id="g")
    with pytest.raises(ValueError, match="tries"):
        _client("http://x", tries=0)


def test_repr_shows_no_secret() -> None:
    client = _client("http://127.0.0.1:9/wechat")
    with client:
        assert TOKEN not in repr(client)
        assert "safe" in repr(client)


# --- `tianfu wechat send` ------------------------------------------------------------------------

runner = CliRunner()


def _settings(base_url: str, *, aes_key: bool = True) -> TianfuSettings:
    wechat: dict[str, str] = {"token": TOKEN, "appid": APPID, "account_id": ACCOUNT}
    if aes_key:
        wechat["encoding_aes_key"] = ENCODING_AES_KEY
    return load_settings(public_base_url=base_url, wechat=wechat)


@pytest.fixture
def use_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    for name in [n for n in os.environ if n.startswith("TIANFU_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env

    def use(settings: TianfuSettings) -> None:
        monkeypatch.setattr(tianfu.cli_support, "get_settings", lambda: settings)

    return use


def test_cli_send_location_in_safe_mode_by_default(serve: Any, use_settings: Any) -> None:
    server: FakeCallback = serve()
    use_settings(_settings(server.base_url))
    result = runner.invoke(
        wechat_app, ["send", "--location", "30.6574,104.0658", "--label", "天府广场"]
    )
    assert result.exit_code == 0, result.output
    assert "[图文] 天府广场附近 3 家优惠" in result.stdout
    assert "1 attempt(s)" in result.stdout
    assert "safe mode" in result.stdout
    message = server.messages[0]
    assert (message.location_lat, message.location_lng) == (30.6574, 104.0658)
    assert message.from_user == DEFAULT_OPENID
    assert message.to_user == ACCOUNT
    assert server.received[0].query["encrypt_type"] == "aes"


def test_cli_send_text_in_plaintext_mode(serve: Any, use_settings: Any) -> None:
    server: FakeCallback = serve()
    use_settings(_settings("http://127.0.0.1:9"))
    args = [
        "send",
        "--text",
        "附近",
        "--encrypt",
        "plaintext",
        "--to",
        server.url,
        "--openid",
        "oX",
    ]
    result = runner.invoke(wechat_app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "收到：附近"
    assert "encrypt_type" not in server.received[0].query
    assert server.messages[0].from_user == "oX"


def test_cli_without_aes_key_defaults_to_plaintext(serve: Any, use_settings: Any) -> None:
    server: FakeCallback = serve()
    use_settings(_settings(server.base_url, aes_key=False))
    result = runner.invoke(wechat_app, ["send", "--event", "subscribe"])
    assert result.exit_code == 0, result.output
    assert NO_REPLY_TEXT in result.stdout
    assert "encrypt_type" not in server.received[0].query


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("CLICK:附近优惠", {"event": "click", "event_key": "附近优惠"}),
        ("SCAN:store42", {"event": "scan", "event_key": "store42"}),
        ("subscribe:store42", {"event": "subscribe", "event_key": "qrscene_store42"}),
        ("LOCATION:30.6574,104.0658", {"event": "location", "latitude": 30.6574}),
        ("VIEW:https://t.example/h5", {"event": "view", "event_key": "https://t.example/h5"}),
    ],
)
def test_cli_send_events(
    serve: Any, use_settings: Any, event: str, expected: dict[str, Any]
) -> None:
    server: FakeCallback = serve()
    use_settings(_settings(server.base_url))
    result = runner.invoke(wechat_app, ["send", "--event", event, "--encrypt", "compat"])
    assert result.exit_code == 0, result.output
    message = server.messages[0]
    for name, value in expected.items():
        assert getattr(message, name) == value
    if message.event == "click":
        assert result.stdout.startswith("[图文] 优惠 1\n 满50减10\n → /o/1\n[图文] 优惠 2")


def test_cli_unreachable_server_is_one_line_and_exit_1(use_settings: Any) -> None:
    use_settings(_settings(f"http://127.0.0.1:{free_port()}"))
    result = runner.invoke(wechat_app, ["send", "--text", "hi"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "after 3 tries" in result.stderr


def test_cli_bad_reply_signature_exits_1(serve: Any, use_settings: Any) -> None:
    server: FakeCallback = serve("bad-signature")
    use_settings(_settings(server.base_url))
    result = runner.invoke(wechat_app, ["send", "--text", "hi"])
    assert result.exit_code == 1
    assert "MsgSignature" in result.stderr


def test_cli_reply_that_is_not_xml_shows_wechats_error(serve: Any, use_settings: Any) -> None:
    server: FakeCallback = serve("json")
    use_settings(_settings(server.base_url))
    result = runner.invoke(wechat_app, ["send", "--text", "hi"])
    assert result.exit_code == 1
    assert SERVICE_UNAVAILABLE_TEXT in result.stdout
    assert "not reply XML" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["send"],
        ["send", "--text", "a", "--location", "30,104"],
        ["send", "--location", "30.6"],
        ["send", "--location", "91,104"],
        ["send", "--location", "abc,def"],
        ["send", "--event", ":x"],
        ["send", "--event", "LOCATION:30.6"],
    ],
)
def test_cli_usage_errors_exit_2(use_settings: Any, args: list[str]) -> None:
    use_settings(_settings("http://127.0.0.1:9"))
    result = runner.invoke(wechat_app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("tianfu: ")


def test_cli_configuration_error_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> TianfuSettings:
        raise ConfigurationError("invalid configuration: TIANFU_WECHAT_TOKEN: bad")

    monkeypatch.setattr(tianfu.cli_support, "get_settings", broken)
    result = runner.invoke(wechat_app, ["send", "--text", "hi"])
    assert result.exit_code == 2
    assert result.stderr == "tianfu: invalid configuration: TIANFU_WECHAT_TOKEN: bad\n"


def test_cli_safe_mode_without_key_exits_2(use_settings: Any) -> None:
    use_settings(_settings("http://127.0.0.1:9", aes_key=False))
    result = runner.invoke(wechat_app, ["send", "--text", "hi", "--encrypt", "safe"])
    assert result.exit_code == 2
    assert "TIANFU_WECHAT_ENCODING_AES_KEY" in result.stderr


def test_cli_mounts_as_tianfu_wechat() -> None:
    # How the lead registers it: `app.add_typer(wechat_app, name="wechat")`.
    app = typer.Typer()
    app.add_typer(wechat_app, name="wechat")
    result = runner.invoke(app, ["wechat", "send", "--help"])
    assert result.exit_code == 0
    assert "--location" in result.stdout
