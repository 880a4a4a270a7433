"""`/wechat` speaks the Official Account protocol exactly and refuses hostile input without
changing anything: every vector of wechat-vectors.json and every hostile case, through the HTTP
app, on both backends."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from lbs.models import InboundPush, UserLocation
from lbs.wechat_push import EncryptMode, location_message_xml, read_reply, text_message_xml
from lbs.wxcrypto import msg_signature, plain_signature
from lbs.wxxml import parse_xml
from tests.http import asgi_client
from tests.lbs.vectors import VECTORS, need_vectors
from tests.lbs.wechat_support import (
    ACCOUNT_ID,
    TOKEN,
    USER,
    Pusher,
    Town,
    account_crypt,
    next_msg_id,
    wechat_settings,
)
from tianfu.app import create_app

pytestmark = pytest.mark.anyio


def _vectors() -> dict[str, Any]:
    return need_vectors()


def _vector(group: str, vector_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(v for v in _vectors()[group] if v["id"] == vector_id)
    return found


AppFactory = Callable[..., FastAPI]


@pytest.fixture
def make_app(town: Town) -> AppFactory:
    def make(*, at: float | None = None, **wechat: Any) -> FastAPI:
        app = create_app(wechat_settings(town.url, **wechat))
        app.state.store_index.build()
        if at is not None:
            fixed = datetime.fromtimestamp(at, tz=UTC)
            app.state.push_handler.clock = lambda: fixed
        return app

    return make


@pytest.fixture
async def http(make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(make_app()):
        yield client


def _counts(town: Town) -> tuple[int, int]:
    from tianfu.db import create_db_engine

    engine = create_db_engine(town.url)
    try:
        with engine.connect() as connection:
            pushes = connection.scalar(select(func.count()).select_from(InboundPush))
            places = connection.scalar(select(func.count()).select_from(UserLocation))
            return int(pushes or 0), int(places or 0)
    finally:
        engine.dispose()


def _forget(town: Town, dedup_key: str) -> None:
    from sqlalchemy import delete

    from tianfu.db import create_db_engine

    engine = create_db_engine(town.url)
    try:
        with engine.begin() as connection:
            connection.execute(delete(InboundPush).where(InboundPush.dedup_key == dedup_key))
    finally:
        engine.dispose()


def _safe_envelope(to_user: str, encrypt: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )


# -- URL verification (GET) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "vector_id",
    [
        "official_message_push_doc_example",
        "wechatpy_test_utils",
        "official_oa_sample_plain_signature",
        "lexicographic_sort_pitfall",
    ],
)
async def test_signature_vectors_verify_the_url(make_app: AppFactory, vector_id: str) -> None:
    vector = _vector("signature_vectors", vector_id)
    app = make_app(at=float(vector["timestamp"]), token=vector["token"], account_id=None)
    echostr = vector.get("echostr", "8243149732104532")
    params = {
        "signature": vector["expected_signature"],
        "timestamp": vector["timestamp"],
        "nonce": vector["nonce"],
        "echostr": echostr,
    }
    async for client in asgi_client(app):
        response = await client.get("/wechat", params=params)
        assert response.status_code == 200
        assert response.content == vector.get("expected_get_response_body", echostr).encode()
        for wrong in (
            "wrong_if_concatenated_unsorted",
            "wrong_if_numeric_order_99_before_timestamp",
        ):
            if wrong in vector:
                refused = await client.get("/wechat", params={**params, "signature": vector[wrong]})
                assert refused.status_code == 403


async def test_url_verification_refuses_a_bad_or_missing_signature(
    http: httpx.AsyncClient,
) -> None:
    now = str(int(datetime.now(UTC).timestamp()))
    good = {"signature": plain_signature(TOKEN, now, "42"), "timestamp": now, "nonce": "42"}
    assert (await http.get("/wechat", params={**good, "echostr": "hi"})).text == "hi"
    bad = await http.get("/wechat", params={**good, "signature": "0" * 40, "echostr": "hi"})
    assert bad.status_code == 403
    assert "hi" not in bad.text
    missing = await http.get("/wechat", params={"timestamp": now, "nonce": "42", "echostr": "hi"})
    assert missing.status_code == 403


# -- the official encrypted sample and its hostile variants --------------------------------------


def _official_sample_app(make_app: AppFactory, **overrides: Any) -> tuple[FastAPI, dict[str, Any]]:
    vector = _vector("crypto_vectors", "oa_official_sample_compat_mode")
    settings: dict[str, Any] = {
        "token": vector["token"],
        "encoding_aes_key": vector["encoding_aes_key"],
        "appid": vector["appid"],
        "account_id": "gh_10f6c3c3ac5a",
    }
    settings.update(overrides)
    return make_app(at=float(vector["query"]["timestamp"]), **settings), vector


async def test_official_compat_sample_is_decrypted_and_answered_encrypted(
    make_app: AppFactory, town: Town
) -> None:
    app, vector = _official_sample_app(make_app)
    _forget(town, "msgid:" + vector["expected"]["plaintext"].split("<MsgId>")[1].split("<")[0])
    async for client in asgi_client(app):
        response = await client.post(
            "/wechat", params=vector["query"], content=vector["post_body"].encode()
        )
        assert response.status_code == 200, response.text
        assert b"<Encrypt>" in response.content
        assert b"<MsgSignature>" in response.content
        from lbs.config import decode_encoding_aes_key
        from lbs.wxcrypto import WXBizMsgCrypt

        crypt = WXBizMsgCrypt(
            token=vector["token"],
            aes_key=decode_encoding_aes_key(vector["encoding_aes_key"]),
            appid=vector["appid"],
        )
        reply = read_reply(response.content, token=vector["token"], crypt=crypt)
        assert "<ToUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]>" in reply
        assert "<FromUserName><![CDATA[gh_10f6c3c3ac5a]]>" in reply
        assert "<MsgType><![CDATA[text]]>" in reply  # "abcdteT" means nothing: the help text


async def test_tampered_msg_signature_is_refused(make_app: AppFactory, town: Town) -> None:
    app, vector = _official_sample_app(make_app)
    tampered = _vector("security_negative_vectors", "tampered_msg_signature")
    before = _counts(town)
    async for client in asgi_client(app):
        params = {**vector["query"], "msg_signature": tampered["msg_signature"]}
        response = await client.post("/wechat", params=params, content=vector["post_body"])
        assert response.status_code == 403
    assert _counts(town) == before


async def test_wrong_appid_trailer_is_refused(make_app: AppFactory, town: Town) -> None:
    wrong = _vector("security_negative_vectors", "wrong_appid_trailer")
    app, vector = _official_sample_app(make_app, appid=wrong["appid"])
    before = _counts(town)
    async for client in asgi_client(app):
        response = await client.post("/wechat", params=vector["query"], content=vector["post_body"])
        assert response.status_code in (400, 403)
        assert "Traceback" not in response.text
    assert _counts(town) == before


async def test_bit_flipped_ciphertext_is_refused(make_app: AppFactory, town: Town) -> None:
    vector = _vector("crypto_vectors", "wechatpy_kat_decrypt_message")
    query = vector["query"]
    app = make_app(
        at=float(query["timestamp"]),
        token=vector["token"],
        encoding_aes_key=vector["encoding_aes_key"],
        appid=vector["receive_id"],
        account_id=None,
    )
    raw = bytearray(base64.b64decode(vector["encrypt"]))
    raw[-1] ^= 1
    flipped = base64.b64encode(bytes(raw)).decode()
    body = _safe_envelope("gh_0", flipped)
    params = {
        "signature": plain_signature(vector["token"], query["timestamp"], query["nonce"]),
        "timestamp": query["timestamp"],
        "nonce": query["nonce"],
        "encrypt_type": "aes",
        "msg_signature": msg_signature(
            vector["token"], query["timestamp"], query["nonce"], flipped
        ),
    }
    before = _counts(town)
    async for client in asgi_client(app):
        response = await client.post("/wechat", params=params, content=body)
        assert response.status_code == 400
    assert _counts(town) == before


async def test_wechatpy_sample_decrypts_through_the_app(make_app: AppFactory) -> None:
    vector = _vector("crypto_vectors", "wechatpy_kat_decrypt_message")
    query = vector["query"]
    app = make_app(
        at=float(query["timestamp"]),
        token=vector["token"],
        encoding_aes_key=vector["encoding_aes_key"],
        appid=vector["receive_id"],
        account_id=None,
    )
    body = _safe_envelope("x", vector["encrypt"])
    params = {
        "signature": plain_signature(vector["token"], query["timestamp"], query["nonce"]),
        "encrypt_type": "aes",
        **query,
    }
    async for client in asgi_client(app):
        response = await client.post("/wechat", params=params, content=body)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("vector_id", ["stale_timestamp_replay", "fresh_timestamp"])
async def test_freshness_window(make_app: AppFactory, town: Town, vector_id: str) -> None:
    vector = _vector("security_negative_vectors", vector_id)
    app = make_app(at=float(vector["now"]), timestamp_window_s=int(vector["max_skew_seconds"]))
    message = text_message_xml(
        to_user=ACCOUNT_ID,
        from_user=USER,
        content="帮助",
        msg_id=next_msg_id(),
        create_time=int(vector["timestamp"]),
    )
    async for client in asgi_client(app):
        pusher = Pusher(client, clock=lambda: float(vector["timestamp"]))
        response = await pusher.push(message)
        assert response.status_code == (200 if vector["expected"] == "accept" else 403)


# -- hostile bodies ------------------------------------------------------------------------------


def _signed_params(nonce: str = "7") -> dict[str, str]:
    now = str(int(datetime.now(UTC).timestamp()))
    return {"signature": plain_signature(TOKEN, now, nonce), "timestamp": now, "nonce": nonce}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(
            lambda: _vector("security_negative_vectors", "xxe_external_entity")["xml"].encode(),
            400,
            id="xxe",
        ),
        pytest.param(
            lambda: _vector("security_negative_vectors", "billion_laughs")["xml"].encode(),
            400,
            id="billion-laughs",
        ),
        pytest.param(
            lambda: b"<xml><ToUserName>" + b"a" * (70 * 1024) + b"</ToUserName></xml>",
            413,
            id="oversize",
        ),
        pytest.param(
            lambda: b"<xml><ToUserName><![CDATA[gh_7ianfu7e57ac]]></ToUserName><MsgType>",
            400,
            id="malformed",
        ),
        pytest.param(lambda: b"<xml><ToUserName>\xff\xfe</ToUserName></xml>", 400, id="not-utf8"),
        pytest.param(lambda: b'{"MsgType": "text"}', 400, id="json"),
        pytest.param(lambda: b"", 400, id="empty"),
    ],
)
async def test_hostile_plaintext_bodies_are_refused_and_change_nothing(
    http: httpx.AsyncClient, town: Town, body: Callable[[], bytes], status: int
) -> None:
    before = _counts(town)
    response = await http.post("/wechat", params=_signed_params(), content=body())
    assert response.status_code == status
    assert "Traceback" not in response.text
    assert "root:" not in response.text
    assert _counts(town) == before


async def test_hostile_encrypted_payloads_are_refused(http: httpx.AsyncClient, town: Town) -> None:
    crypt = account_crypt()
    params = _signed_params()
    inner = location_message_xml(
        to_user=ACCOUNT_ID,
        from_user=USER,
        lat=30.6574,
        lng=104.0661,
        msg_id=next_msg_id(),
        create_time=int(params["timestamp"]),
    )

    def envelope(encrypt: str) -> tuple[dict[str, str], str]:
        signed = {
            **params,
            "encrypt_type": "aes",
            "msg_signature": msg_signature(TOKEN, params["timestamp"], params["nonce"], encrypt),
        }
        return (
            signed,
            f"<xml><ToUserName><![CDATA[{ACCOUNT_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>",
        )

    good = base64.b64decode(crypt.encrypt(inner))
    other_app = account_crypt(appid="wx0000000000000000").encrypt(inner)
    cases = {
        "wrong-appid": other_app,
        "truncated": base64.b64encode(good[:-16]).decode(),
        "not-block-aligned": base64.b64encode(good[:-3]).decode(),
        "bad-base64": "!!not base64!!",
        "wrong-key": account_crypt(key="B" * 43).encrypt(inner),
    }
    before = _counts(town)
    for name, encrypt in cases.items():
        signed, body = envelope(encrypt)
        response = await http.post("/wechat", params=signed, content=body)
        assert response.status_code in (400, 403), name
        assert "Traceback" not in response.text
    missing_msg_signature = {**params, "encrypt_type": "aes"}
    _, body = envelope(crypt.encrypt(inner))
    response = await http.post("/wechat", params=missing_msg_signature, content=body)
    assert response.status_code == 403
    assert _counts(town) == before


async def test_plaintext_is_refused_when_encryption_is_required(
    make_app: AppFactory, town: Town
) -> None:
    app = make_app(encryption_required=True)
    message = text_message_xml(
        to_user=ACCOUNT_ID,
        from_user=USER,
        content="附近",
        msg_id=next_msg_id(),
        create_time=int(datetime.now(UTC).timestamp()),
    )
    async for client in asgi_client(app):
        plain = await Pusher(client, mode=EncryptMode.plaintext).push(message)
        assert plain.status_code == 403
        safe = await Pusher(client, mode=EncryptMode.safe).push(message)
        assert safe.status_code == 200


async def test_message_for_another_account_is_refused(http: httpx.AsyncClient) -> None:
    message = text_message_xml(
        to_user="gh_000000000000",
        from_user=USER,
        content="附近",
        msg_id=next_msg_id(),
        create_time=int(datetime.now(UTC).timestamp()),
    )
    response = await Pusher(http, mode=EncryptMode.plaintext).push(message)
    assert response.status_code == 403


@pytest.mark.parametrize("mode", list(EncryptMode))
async def test_every_mode_answers_in_kind(http: httpx.AsyncClient, mode: EncryptMode) -> None:
    message = text_message_xml(
        to_user=ACCOUNT_ID,
        from_user=USER,
        content="帮助",
        msg_id=next_msg_id(),
        create_time=int(datetime.now(UTC).timestamp()),
    )
    pusher = Pusher(http, mode=mode)
    response = await pusher.push(message)
    assert response.status_code == 200
    assert (b"<Encrypt>" in response.content) == (mode is not EncryptMode.plaintext)
    reply = read_reply(response.content, token=TOKEN, crypt=account_crypt())
    assert "<MsgType><![CDATA[text]]></MsgType>" in reply


# -- every incoming sample through the app -----------------------------------------------------


@pytest.mark.parametrize(
    "vector_id",
    [vector["id"] for vector in VECTORS["incoming_messages"]] if VECTORS else ["vectors-missing"],
)
async def test_incoming_samples_get_a_protocol_correct_answer(
    make_app: AppFactory, town: Town, vector_id: str
) -> None:
    vector = _vector("incoming_messages", vector_id)
    _forget(town, vector["dedup_key"])
    app = make_app(account_id=None)
    async for client in asgi_client(app):
        response = await Pusher(client, mode=EncryptMode.plaintext).push(vector["xml"])
        assert response.status_code == 200, response.text
        if vector["allowed_passive_reply"].startswith("success"):
            assert response.text == "success"
        else:
            assert response.text.startswith("<xml>")
            sender = parse_xml(vector["xml"].encode("utf-8"))["FromUserName"]
            assert f"<ToUserName><![CDATA[{sender}]]></ToUserName>" in response.text
    from tianfu.db import create_db_engine

    engine = create_db_engine(town.url)
    try:
        with engine.connect() as connection:
            stored = connection.scalar(
                select(func.count())
                .select_from(InboundPush)
                .where(InboundPush.dedup_key == vector["dedup_key"])
            )
        assert stored == 1
    finally:
        engine.dispose()
