"""tenpay_adapter.v3_signing against every `wechat_v3` vector of payment-vectors.json, plus
tampered and malformed inputs built here (spec/payment-channels.md §2, §6)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from tenpay_adapter.errors import TenpayProtocolError
from tenpay_adapter.v3_signing import (
    AUTH_SCHEME,
    SIGNTEST_PREFIX,
    aes_gcm_decrypt,
    aes_gcm_encrypt,
    authorization_header,
    certificate_serial,
    format_rfc3339_beijing,
    jsapi_params_v3,
    load_private_key,
    load_public_key,
    parse_authorization,
    parse_rfc3339,
    request_message,
    response_message,
    rsa_sign,
    rsa_verify,
    same_serial,
    sign_response,
    verify_response,
)
from tests.tenpay.vectors import Vector, need_vectors, v3_vector

KEYPAIRS = ("merchant_keypair", "platform_keypair")
REQUEST_VECTORS = ("request_signing_post", "request_signing_get")
RESPONSE_VECTORS = ("response_verification", "response_verification_204")


def _merchant_key() -> RSAPrivateKey:
    return load_private_key(v3_vector("merchant_keypair")["private_key_pkcs8_pem"])


def _platform_key() -> RSAPrivateKey:
    return load_private_key(v3_vector("platform_keypair")["private_key_pkcs8_pem"])


def _platform_public() -> RSAPublicKey:
    return load_public_key(v3_vector("platform_keypair")["certificate_pem"])


def _apiv3_key() -> str:
    key: str = v3_vector("apiv3_key")
    return key


def _verify_headers(
    vector: Vector, *, body: bytes | None = None, changes: dict[str, str] | None = None
) -> bool:
    headers = {**vector["headers"], **(changes or {})}
    return verify_response(
        public_key=_platform_public(),
        timestamp=headers["Wechatpay-Timestamp"],
        nonce=headers["Wechatpay-Nonce"],
        body=vector["body"].encode() if body is None else body,
        signature_b64=headers["Wechatpay-Signature"],
    )


def _resource() -> dict[str, Any]:
    resource: dict[str, Any] = json.loads(v3_vector("notify_transaction_success")["body"])[
        "resource"
    ]
    return resource


def test_vectors_file_is_present() -> None:
    need_vectors()


# --- keys and certificates ---------------------------------------------------------------------


@pytest.mark.parametrize("name", KEYPAIRS)
def test_certificate_serial_matches_serial_no(name: str) -> None:
    keypair = v3_vector(name)
    assert certificate_serial(keypair["certificate_pem"]) == keypair["serial_no"]
    assert certificate_serial(keypair["certificate_pem"].encode()) == keypair["serial_no"]


@pytest.mark.parametrize("name", KEYPAIRS)
def test_pkcs8_and_pkcs1_keys_load_to_the_same_key(name: str) -> None:
    keypair = v3_vector(name)
    pkcs8 = load_private_key(keypair["private_key_pkcs8_pem"])
    pkcs1 = load_private_key(keypair["private_key_pkcs1_pem"].encode())
    assert pkcs8.private_numbers() == pkcs1.private_numbers()


@pytest.mark.parametrize("name", KEYPAIRS)
def test_certificate_and_public_key_pem_give_the_same_key(name: str) -> None:
    keypair = v3_vector(name)
    from_cert = load_public_key(keypair["certificate_pem"])
    from_spki = load_public_key(keypair["public_key_pem"])
    private = load_private_key(keypair["private_key_pkcs8_pem"])
    assert from_cert.public_numbers() == from_spki.public_numbers()
    assert from_spki.public_numbers() == private.public_key().public_numbers()


@pytest.mark.parametrize("pem", ["", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END"])
def test_garbage_keys_are_refused(pem: str) -> None:
    with pytest.raises(TenpayProtocolError):
        load_private_key(pem)
    with pytest.raises(TenpayProtocolError):
        load_public_key(pem)
    with pytest.raises(TenpayProtocolError):
        certificate_serial(pem)


def test_non_rsa_keys_are_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(TenpayProtocolError, match="RSA"):
        load_private_key(private_pem)
    with pytest.raises(TenpayProtocolError, match="RSA"):
        load_public_key(public_pem)


def test_serials_compare_without_case_or_leading_zeros() -> None:
    assert same_serial("0a1b", "A1B")
    assert not same_serial("A1B", "A1C")


# --- request signing (§2.1) --------------------------------------------------------------------


@pytest.mark.parametrize("name", REQUEST_VECTORS)
def test_request_message_is_five_lines(name: str) -> None:
    v = v3_vector(name)
    message = request_message(v["method"], v["url"], v["timestamp"], v["nonce_str"], v["body"])
    assert message == v["message"].encode()
    assert message == request_message(
        v["method"].lower(), v["url"], v["timestamp"], v["nonce_str"], v["body"].encode()
    )


@pytest.mark.parametrize("name", REQUEST_VECTORS)
@pytest.mark.parametrize("key_format", ["private_key_pkcs8_pem", "private_key_pkcs1_pem"])
def test_request_signature_is_byte_identical(name: str, key_format: str) -> None:
    v = v3_vector(name)
    key = load_private_key(v3_vector("merchant_keypair")[key_format])
    assert rsa_sign(key, v["message"].encode()) == v["signature"]
    merchant_public = load_public_key(v3_vector("merchant_keypair")["certificate_pem"])
    assert rsa_verify(merchant_public, v["message"].encode(), v["signature"])


def _header_for(name: str) -> str:
    v = v3_vector(name)
    merchant = v3_vector("merchant_keypair")
    return authorization_header(
        mchid=merchant["mchid"],
        serial_no=merchant["serial_no"],
        private_key=_merchant_key(),
        method=v["method"],
        url=v["url"],
        body=v["body"],
        timestamp=v["timestamp"],
        nonce=v["nonce_str"],
    )


def test_authorization_header_post_is_byte_identical() -> None:
    assert _header_for("request_signing_post") == v3_vector("request_signing_post")["authorization"]


def test_authorization_header_get_parses_back() -> None:
    v = v3_vector("request_signing_get")
    merchant = v3_vector("merchant_keypair")
    assert parse_authorization(_header_for("request_signing_get")) == {
        "mchid": merchant["mchid"],
        "nonce_str": v["nonce_str"],
        "signature": v["signature"],
        "timestamp": v["timestamp"],
        "serial_no": merchant["serial_no"],
    }


def test_authorization_items_parse_in_any_order() -> None:
    header = v3_vector("request_signing_post")["authorization"]
    scheme, _, items = header.partition(" ")
    shuffled = f"{scheme} " + ", ".join(reversed(items.split(",")))
    assert parse_authorization(shuffled) == parse_authorization(header)
    assert (
        parse_authorization(header)["signature"] == v3_vector("request_signing_post")["signature"]
    )


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param('Bearer mchid="1"', id="wrong-scheme"),
        pytest.param(
            'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="1"',
            id="missing-item",
        ),
        pytest.param(
            'WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2",nonce_str="n",signature="s",'
            'timestamp="1",serial_no="A"',
            id="repeated-item",
        ),
        pytest.param(
            'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="1",'
            'serial_no="A",extra="x"',
            id="unknown-item",
        ),
        pytest.param(
            "WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str=n,signature=s,timestamp=1,serial_no=A",
            id="unquoted",
        ),
        pytest.param('wechatpay2-sha256-rsa2048 mchid="1"', id="lower-case-scheme"),
    ],
)
def test_malformed_authorization_headers_are_refused(header: str) -> None:
    with pytest.raises(TenpayProtocolError):
        parse_authorization(header)


def test_a_newline_cannot_be_smuggled_into_the_signed_lines() -> None:
    with pytest.raises(ValueError, match="newline"):
        request_message("GET", "/v3/x\n1704083445", "1", "n", b"")


def test_a_quote_cannot_be_smuggled_into_the_header() -> None:
    with pytest.raises(ValueError, match="quoted"):
        authorization_header(
            mchid='1",serial_no="X',
            serial_no="A",
            private_key=_merchant_key(),
            method="GET",
            url="/v3/x",
            body=b"",
            timestamp="1",
            nonce="n",
        )


# --- response verification (§2.2) --------------------------------------------------------------


@pytest.mark.parametrize("name", RESPONSE_VECTORS)
def test_response_message_over_the_raw_body(name: str) -> None:
    v = v3_vector(name)
    headers = v["headers"]
    message = response_message(
        headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], v["body"].encode()
    )
    assert message == v["message"].encode()


@pytest.mark.parametrize("name", [*RESPONSE_VECTORS, "notify_transaction_success"])
def test_platform_signature_verifies(name: str) -> None:
    v = v3_vector(name)
    # The 204 vector carries only the three signed headers.
    serial = v["headers"].get("Wechatpay-Serial", v3_vector("platform_keypair")["serial_no"])
    assert same_serial(serial, v3_vector("platform_keypair")["serial_no"])
    assert v["headers"].get("Wechatpay-Signature-Type", AUTH_SCHEME) == AUTH_SCHEME
    assert _verify_headers(v)


@pytest.mark.parametrize("name", [*RESPONSE_VECTORS, "notify_transaction_success"])
def test_simulator_signature_is_byte_identical(name: str) -> None:
    v = v3_vector(name)
    signature = sign_response(
        private_key=_platform_key(),
        timestamp=v["headers"]["Wechatpay-Timestamp"],
        nonce=v["headers"]["Wechatpay-Nonce"],
        body=v["body"].encode(),
    )
    assert signature == v["headers"]["Wechatpay-Signature"]


def test_204_signature_does_not_verify_a_body() -> None:
    v = v3_vector("response_verification_204")
    assert v["body"] == ""
    assert not _verify_headers(v, body=b"{}")


def test_tampered_response_does_not_verify() -> None:
    v = v3_vector("response_verification")
    body = v["body"].encode()
    assert not _verify_headers(v, body=body.replace(b"wx01", b"wx02"))
    assert not _verify_headers(v, body=body + b" ")
    assert not _verify_headers(v, body=json.dumps(json.loads(body)).encode())  # re-serialised
    assert not _verify_headers(v, changes={"Wechatpay-Timestamp": "1704083447"})
    assert not _verify_headers(v, changes={"Wechatpay-Nonce": "c5ac7061fccab6bf3e254dcf98995b8d"})


def test_response_signed_by_the_merchant_key_does_not_verify() -> None:
    v = v3_vector("response_verification")
    merchant_public = load_public_key(v3_vector("merchant_keypair")["public_key_pem"])
    headers = v["headers"]
    assert not verify_response(
        public_key=merchant_public,
        timestamp=headers["Wechatpay-Timestamp"],
        nonce=headers["Wechatpay-Nonce"],
        body=v["body"].encode(),
        signature_b64=headers["Wechatpay-Signature"],
    )


def test_signtest_probe_is_rejected() -> None:
    v = v3_vector("response_verification")
    genuine = v["headers"]["Wechatpay-Signature"]
    assert SIGNTEST_PREFIX in need_vectors()["wechat_v3"]["signtest_probe_note"]
    for probe in (f"{SIGNTEST_PREFIX}{genuine}", SIGNTEST_PREFIX, f"{SIGNTEST_PREFIX}abc=="):
        assert not _verify_headers(v, changes={"Wechatpay-Signature": probe})


@pytest.mark.parametrize(
    "signature",
    ["", "not base64!", "AAAA", "中文", "=" * 8, base64.b64encode(b"\x00" * 256).decode()],
)
def test_bad_signatures_are_false_and_never_raise(signature: str) -> None:
    v = v3_vector("response_verification")
    assert _verify_headers(v, changes={"Wechatpay-Signature": signature}) is False
    assert rsa_verify(_platform_public(), v["message"].encode(), signature) is False


def test_a_newline_in_a_header_value_does_not_verify() -> None:
    v = v3_vector("response_verification")
    assert not _verify_headers(v, changes={"Wechatpay-Nonce": "a\nb"})


# --- JSAPI paySign (§2.5) ----------------------------------------------------------------------


def test_jsapi_paysign_v3() -> None:
    v = v3_vector("jsapi_paysign_v3")
    p = v["params"]
    result = jsapi_params_v3(
        appid=p["appId"],
        prepay_id=p["package"].removeprefix("prepay_id="),
        private_key=_merchant_key(),
        timestamp=p["timeStamp"],
        nonce_str=p["nonceStr"],
    )
    assert result == {**p, "paySign": v["paySign"]}
    merchant_public = load_public_key(v3_vector("merchant_keypair")["certificate_pem"])
    assert rsa_verify(merchant_public, v["message"].encode(), result["paySign"])


# --- resource decryption (§2.3) ----------------------------------------------------------------


def test_notify_resource_decrypts_to_the_expected_plaintext() -> None:
    v = v3_vector("notify_transaction_success")
    r = _resource()
    assert (r["algorithm"], r["associated_data"]) == ("AEAD_AES_256_GCM", "transaction")
    plaintext = aes_gcm_decrypt(
        apiv3_key=_apiv3_key(),
        nonce=r["nonce"],
        ciphertext_b64=r["ciphertext"],
        associated_data=r["associated_data"],
    )
    assert plaintext == v["expected_plaintext"].encode()
    transaction = json.loads(plaintext)
    assert transaction["amount"]["total"] == 7000
    assert parse_rfc3339(transaction["success_time"]) == datetime(2024, 1, 1, 4, 33, 5, tzinfo=UTC)


def test_re_encrypting_with_the_same_nonce_gives_the_same_ciphertext() -> None:
    v = v3_vector("notify_transaction_success")
    r = _resource()
    ciphertext = aes_gcm_encrypt(
        apiv3_key=_apiv3_key(),
        nonce=r["nonce"],
        plaintext=v["expected_plaintext"].encode(),
        associated_data=r["associated_data"],
    )
    assert ciphertext == r["ciphertext"]


def _decrypt(**changes: str) -> bytes:
    r = _resource()
    arguments = {
        "apiv3_key": _apiv3_key(),
        "nonce": r["nonce"],
        "ciphertext_b64": r["ciphertext"],
        "associated_data": r["associated_data"],
        **changes,
    }
    return aes_gcm_decrypt(**arguments)


def _flip_last_byte(ciphertext_b64: str) -> str:
    raw = bytearray(base64.b64decode(ciphertext_b64))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"associated_data": "certificate"}, id="wrong-aad"),
        pytest.param({"associated_data": ""}, id="empty-aad"),
        pytest.param({"apiv3_key": "NNBrid9HKLvoQm1PqwZnYtjbyg3uIf6J"}, id="wrong-key"),
        pytest.param({"apiv3_key": "short"}, id="short-key"),
        pytest.param({"apiv3_key": "密" * 32}, id="non-ascii-key"),
        pytest.param({"nonce": "AoAIs6isHPum"}, id="wrong-nonce"),
        pytest.param({"nonce": "AoAIs6isHP"}, id="short-nonce"),
        pytest.param({"ciphertext_b64": "not base64!"}, id="not-base64"),
        pytest.param({"ciphertext_b64": "AAAA"}, id="shorter-than-tag"),
        pytest.param({"ciphertext_b64": ""}, id="empty"),
    ],
)
def test_bad_resources_raise_protocol_errors(changes: dict[str, str]) -> None:
    with pytest.raises(TenpayProtocolError):
        _decrypt(**changes)


def test_tampered_ciphertext_raises_a_protocol_error() -> None:
    with pytest.raises(TenpayProtocolError, match="authenticate"):
        _decrypt(ciphertext_b64=_flip_last_byte(_resource()["ciphertext"]))


def test_gcm_round_trip_with_empty_associated_data() -> None:
    sealed = aes_gcm_encrypt(
        apiv3_key=_apiv3_key(), nonce="0123456789ab", plaintext=b"{}", associated_data=""
    )
    opened = aes_gcm_decrypt(
        apiv3_key=_apiv3_key(), nonce="0123456789ab", ciphertext_b64=sealed, associated_data=""
    )
    assert opened == b"{}"


def test_platform_certificate_download_item() -> None:
    v = v3_vector("platform_certificate_download_item")
    item = v["encrypt_certificate"]
    assert item["associated_data"] == "certificate"
    pem = aes_gcm_decrypt(
        apiv3_key=_apiv3_key(),
        nonce=item["nonce"],
        ciphertext_b64=item["ciphertext"],
        associated_data=item["associated_data"],
    )
    assert certificate_serial(pem) == v["serial_no"]
    assert pem.decode() == v3_vector("platform_keypair")["certificate_pem"]
    downloaded = load_public_key(pem)
    assert downloaded.public_numbers() == _platform_public().public_numbers()


# --- RFC 3339 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-06-08T10:34:56+08:00", datetime(2018, 6, 8, 2, 34, 56, tzinfo=UTC)),
        ("2018-06-08T02:34:56Z", datetime(2018, 6, 8, 2, 34, 56, tzinfo=UTC)),
        ("2018-06-08T10:34:56.5+08:00", datetime(2018, 6, 8, 2, 34, 56, 500000, tzinfo=UTC)),
    ],
)
def test_rfc3339_parses_to_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    [
        "2018-06-08T10:34:56",
        "2018-06-08",
        "2018-06-08 10:34:56+08:00",
        "20180608T103456+0800",
        "2018-06-08T10:34:56+0800",
        "2018-02-30T10:34:56+08:00",
        "",
    ],
)
def test_rfc3339_without_an_offset_or_malformed_is_refused(text: str) -> None:
    with pytest.raises(TenpayProtocolError):
        parse_rfc3339(text)


def test_rfc3339_is_formatted_in_beijing_time() -> None:
    moment = datetime(2024, 1, 1, 4, 45, 45, 999999, tzinfo=UTC)
    assert format_rfc3339_beijing(moment) == "2024-01-01T12:45:45+08:00"
    elsewhere = datetime(2024, 1, 1, 4, 45, 45, tzinfo=timezone(timedelta(hours=-3)))
    assert format_rfc3339_beijing(elsewhere) == "2024-01-01T15:45:45+08:00"
    with pytest.raises(ValueError, match="naive"):
        format_rfc3339_beijing(datetime(2024, 1, 1))  # noqa: DTZ001
