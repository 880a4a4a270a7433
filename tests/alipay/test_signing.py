"""payments.alipay.signing against every `alipay` vector of payment-vectors.json, against
alipay-sdk-python's own signer, and against tampered and malformed inputs built here
(spec/payment-channels.md §3.1, §3.2, §3.5, §6)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2, verify_with_rsa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from hypothesis import given
from hypothesis import strategies as st

from payments.alipay.errors import AlipayProtocolError
from payments.alipay.signing import (
    MAX_FEN,
    beijing_timestamp,
    fen_of,
    load_private_key,
    load_public_key,
    notify_sign_content,
    parse_beijing,
    private_key_pkcs1_pem,
    public_key_pem,
    request_sign_content,
    rsa2_sign,
    rsa2_verify,
    signed_response_text,
    yuan,
)
from tests.alipay.vectors import alipay_vector


def _app_key() -> RSAPrivateKey:
    return load_private_key(alipay_vector("app_keypair")["private_key_pkcs8_pem"])


def _app_public() -> RSAPublicKey:
    return load_public_key(alipay_vector("app_keypair")["public_key_pem"])


def _alipay_key() -> RSAPrivateKey:
    return load_private_key(alipay_vector("alipay_keypair")["private_key_pkcs8_pem"])


def _alipay_public() -> RSAPublicKey:
    return load_public_key(alipay_vector("alipay_keypair")["public_key_pem"])


def _pem_body(pem: str) -> str:
    """The bare base64 body, as the Alipay console shows keys."""
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


# -- request_rsa2 -------------------------------------------------------------------------------


def test_request_sign_content_keeps_sign_type_and_drops_empty_values() -> None:
    vector = alipay_vector("request_rsa2")
    content = request_sign_content(vector["params"])
    assert content == vector["sign_content"]
    assert "&sign_type=RSA2&" in content
    assert "app_auth_token" not in content  # "" is dropped


def test_request_sign_content_ignores_a_sign_already_present() -> None:
    vector = alipay_vector("request_rsa2")
    params = vector["params"] | {"sign": vector["sign"]}
    assert request_sign_content(params) == vector["sign_content"]


@pytest.mark.parametrize("form", ["private_key_pkcs8_pem", "private_key_pkcs1_pem"])
def test_request_signature_is_byte_identical_to_the_vector(form: str) -> None:
    vector = alipay_vector("request_rsa2")
    key = load_private_key(alipay_vector("app_keypair")[form])
    assert rsa2_sign(key, vector["sign_content"]) == vector["sign"]
    assert rsa2_verify(_app_public(), vector["sign_content"], vector["sign"])


def test_zero_is_a_value_and_non_strings_are_refused() -> None:
    assert request_sign_content({"b": "0", "a": "", "c": "x"}) == "b=0&c=x"
    with pytest.raises(TypeError):
        request_sign_content({"amount": 0})  # type: ignore[dict-item]


def test_sign_content_sorts_in_ascii_order_upper_case_first() -> None:
    assert request_sign_content({"b": "1", "B": "2", "a_b": "3", "ab": "4"}) == "B=2&a_b=3&ab=4&b=1"


# -- response_rsa2 ------------------------------------------------------------------------------


def test_response_signed_text_is_cut_exactly_from_the_raw_answer() -> None:
    vector = alipay_vector("response_rsa2")
    signed_text, sign = signed_response_text(vector["raw"], vector["method"])
    assert (signed_text, sign) == (vector["signed_text"], vector["sign"])
    assert rsa2_verify(_alipay_public(), signed_text, sign)


def test_response_signature_is_byte_identical_to_the_vector() -> None:
    vector = alipay_vector("response_rsa2")
    assert rsa2_sign(_alipay_key(), vector["signed_text"]) == vector["sign"]


def test_a_tampered_response_does_not_verify() -> None:
    vector = alipay_vector("response_rsa2")
    tampered = vector["raw"].replace("bax0000", "bax0001")
    signed_text, sign = signed_response_text(tampered, vector["method"])
    assert not rsa2_verify(_alipay_public(), signed_text, sign)


def test_a_reserialised_response_does_not_verify() -> None:
    vector = alipay_vector("response_rsa2")
    reserialised = json.dumps(json.loads(vector["signed_text"]))  # ", " and ": " separators
    assert reserialised != vector["signed_text"]
    assert not rsa2_verify(_alipay_public(), reserialised, vector["sign"])


def test_the_application_key_does_not_verify_alipays_answers() -> None:
    vector = alipay_vector("response_rsa2")
    assert not rsa2_verify(_app_public(), vector["signed_text"], vector["sign"])


def _signed_answer(method_key: str, inner: str, *, sign_first: bool = False, gap: str = "") -> str:
    sign = json.dumps(rsa2_sign(_alipay_key(), inner))
    if sign_first:
        return f'{{"sign":{sign},{gap}"{method_key}":{gap}{inner}}}'
    return f'{{{gap}"{method_key}"{gap}:{gap}{inner}{gap},{gap}"sign"{gap}:{gap}{sign}{gap}}}'


@pytest.mark.parametrize(
    "inner",
    [
        # Text that looks like the end of the object and a sign, inside a string.
        '{"code":"10000","subject":"a},\\"sign\\":\\"x","msg":"Success"}',
        '{"code":"10000","nested":{"a":[1,{"b":"}"}],"c":null},"ok":true,"n":-1.5e3}',
        '{"code":"10000","path":"C:\\\\","quote":"\\"","uni":"\\u4f18\\u60e0券"}',
        "{}",
    ],
)
@pytest.mark.parametrize(("sign_first", "gap"), [(False, ""), (True, ""), (False, " \n\t")])
def test_signed_text_respects_strings_escapes_nesting_order_and_whitespace(
    inner: str, sign_first: bool, gap: str
) -> None:
    raw = _signed_answer("alipay_trade_query_response", inner, sign_first=sign_first, gap=gap)
    json.loads(raw)  # the test input itself is valid JSON
    signed_text, sign = signed_response_text(raw, "alipay.trade.query")
    assert signed_text == inner
    assert rsa2_verify(_alipay_public(), signed_text, sign)


def test_a_gateway_error_answer_is_read_from_error_response() -> None:
    inner = '{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}'
    raw = _signed_answer("error_response", inner)
    assert signed_response_text(raw, "alipay.trade.query")[0] == inner


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"alipay_trade_query_response":{"code":"20000"}}', "no sign"),
        ('{"alipay_trade_query_response":{"code":"10000"},"sign":""}', "not a string"),
        ('{"alipay_trade_query_response":{"code":"10000"},"sign":7}', "not a string"),
        ('{"alipay_trade_close_response":{"code":"10000"},"sign":"AA=="}', "has no"),
        ('{"alipay_trade_query_response":"c2VjcmV0","sign":"AA=="}', "not an object"),
        ('{"alipay_trade_query_response":{"a":1},"alipay_trade_query_response":{"a":2}}', "twice"),
        ('{"alipay_trade_query_response":{"code":"10000"},"sign":"AA=="} x', "after"),
        ('{"alipay_trade_query_response":{"code":"10000"]', "unbalanced"),
        ('{"alipay_trade_query_response":{"code":"10000"', "unterminated"),
        ('{"alipay_trade_query_response":{"code":"10000', "unterminated"),
        ('{"alipay_trade_query_response" {"code":"10000"}}', "expected ':'"),
        ('{"alipay_trade_query_response":', "missing"),
        ('["alipay_trade_query_response"]', "expected '{'"),
        ("", "expected '{'"),
        ("<html>502 Bad Gateway</html>", "expected '{'"),
        ('{"alipay_trade_query_response":{"code":"10000"},"sign":"AA==",}', "expected '\"'"),
        ('{"alipay_trade_query_response":undefined}', "unexpected"),
        ('{"alipay_trade_query_response":' + "[" * 100 + "]" * 100 + "}", "too deep"),
    ],
)
def test_malformed_or_unsigned_answers_are_protocol_errors(raw: str, problem: str) -> None:
    with pytest.raises(AlipayProtocolError, match=problem):
        signed_response_text(raw, "alipay.trade.query")


# -- notify_rsa2 --------------------------------------------------------------------------------


def test_notify_sign_content_drops_sign_and_sign_type_and_verifies() -> None:
    vector = alipay_vector("notify_rsa2")
    content = notify_sign_content(vector["params"])
    assert content == vector["sign_content"]
    assert "sign_type" not in content
    assert "passback_params" not in content  # empty
    assert rsa2_verify(_alipay_public(), content, vector["params"]["sign"])
    assert vector["expected_merchant_reply"] == "success"


def test_notify_content_with_sign_type_included_does_not_verify() -> None:
    """The classic mistake (§3.2): verifying a notify with the request rule."""
    vector = alipay_vector("notify_rsa2")
    with_sign_type = request_sign_content(vector["params"])
    assert "&sign_type=RSA2&" in with_sign_type
    assert not rsa2_verify(_alipay_public(), with_sign_type, vector["params"]["sign"])


def test_a_tampered_notify_does_not_verify() -> None:
    vector = alipay_vector("notify_rsa2")
    params = vector["params"] | {"total_amount": "0.01"}
    assert not rsa2_verify(_alipay_public(), notify_sign_content(params), params["sign"])


def test_notify_signature_is_byte_identical_to_the_vector() -> None:
    vector = alipay_vector("notify_rsa2")
    assert rsa2_sign(_alipay_key(), vector["sign_content"]) == vector["params"]["sign"]


# -- alipay-sdk-python agrees -------------------------------------------------------------------


def test_the_sdks_sign_content_and_signature_equal_ours() -> None:
    vector = alipay_vector("request_rsa2")
    params: dict[str, str] = vector["params"]
    # The SDK's get_sign_content joins whatever it is given (empty values too); its client only
    # ever hands it non-empty ones, so the filtering is ours to do.
    non_empty = {k: v for k, v in params.items() if v}
    assert get_sign_content(non_empty) == request_sign_content(params) == vector["sign_content"]
    assert get_sign_content(params) != vector["sign_content"]  # `app_auth_token=` stays in
    pkcs1 = private_key_pkcs1_pem(_app_key())
    sdk_sign = sign_with_rsa2(pkcs1, vector["sign_content"], "utf-8")
    assert sdk_sign == rsa2_sign(_app_key(), vector["sign_content"]) == vector["sign"]


def test_the_sdk_accepts_the_pkcs1_key_body_but_not_pkcs8() -> None:
    vector = alipay_vector("request_rsa2")
    keys = alipay_vector("app_keypair")
    body = _pem_body(keys["private_key_pkcs1_pem"])
    assert sign_with_rsa2(body, vector["sign_content"], "utf-8") == vector["sign"]
    # Its client reports this as "request sign failed" (§3.5).
    with pytest.raises(ValueError, match="Unable to read"):
        sign_with_rsa2(keys["private_key_pkcs8_pem"], vector["sign_content"], "utf-8")


def test_the_sdks_verifier_accepts_the_vectors() -> None:
    response, notify = alipay_vector("response_rsa2"), alipay_vector("notify_rsa2")
    public_pem = alipay_vector("alipay_keypair")["public_key_pem"]
    assert verify_with_rsa(public_pem, response["signed_text"].encode(), response["sign"])
    assert verify_with_rsa(public_pem, notify["sign_content"].encode(), notify["params"]["sign"])


def test_a_sha1_signature_passes_the_sdks_verifier_and_is_refused_by_ours() -> None:
    """§3.5: `verify_with_rsa` takes the hash from the signature, so RSA (SHA-1) passes under
    RSA2: a downgrade. Ours insists on SHA-256."""
    content = alipay_vector("response_rsa2")["signed_text"]
    sha1 = base64.b64encode(
        _alipay_key().sign(content.encode(), padding.PKCS1v15(), hashes.SHA1())
    ).decode()
    public_pem = alipay_vector("alipay_keypair")["public_key_pem"]
    assert verify_with_rsa(public_pem, content.encode(), sha1)  # the SDK: accepted
    assert not rsa2_verify(_alipay_public(), content, sha1)  # ours: refused


def test_keys_convert_for_the_sdk_and_back() -> None:
    keys = alipay_vector("app_keypair")
    assert private_key_pkcs1_pem(_app_key()) == keys["private_key_pkcs1_pem"]
    assert public_key_pem(_app_public()) == keys["public_key_pem"]


# -- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["private_key_pkcs8_pem", "private_key_pkcs1_pem"])
@pytest.mark.parametrize("bare", [False, True])
def test_private_keys_load_from_pkcs1_or_pkcs8_pem_or_bare_body(form: str, bare: bool) -> None:
    pem = alipay_vector("app_keypair")[form]
    key = load_private_key(_pem_body(pem) if bare else pem)
    assert key.public_key().public_numbers() == _app_public().public_numbers()


def test_public_keys_load_from_pem_or_bare_body_or_pkcs1() -> None:
    pem = alipay_vector("alipay_keypair")["public_key_pem"]
    pkcs1 = _alipay_public().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    for form in (pem, _pem_body(pem), pkcs1, pem.encode()):
        assert load_public_key(form).public_numbers() == _alipay_public().public_numbers()


def test_bad_keys_are_protocol_errors() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for bad in ("", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"):
        with pytest.raises(AlipayProtocolError):
            load_private_key(bad)
        with pytest.raises(AlipayProtocolError):
            load_public_key(bad)
    with pytest.raises(AlipayProtocolError, match="RSA"):
        load_private_key(ec_pem)
    with pytest.raises(AlipayProtocolError, match="RSA"):
        load_public_key(ec_public)
    with pytest.raises(AlipayProtocolError):
        load_private_key("密钥")


def test_verify_never_raises() -> None:
    content = "a=1"
    for sign in ("", "!!!", "AA==", base64.b64encode(b"x" * 256).decode(), None):
        assert not rsa2_verify(_alipay_public(), content, sign)  # type: ignore[arg-type]


# -- Beijing time -------------------------------------------------------------------------------


def test_timestamps_are_beijing_wall_time_whatever_the_zone_given() -> None:
    moment = datetime(2024, 1, 1, 4, 30, 45, 999, tzinfo=UTC)
    assert beijing_timestamp(moment) == "2024-01-01 12:30:45"
    tokyo = moment.astimezone(timezone(timedelta(hours=9)))
    assert beijing_timestamp(tokyo) == "2024-01-01 12:30:45"
    assert parse_beijing("2024-01-01 12:30:45") == moment.replace(microsecond=0)
    assert parse_beijing("2024-01-01 12:30:45").tzinfo is UTC


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        beijing_timestamp(datetime(2024, 1, 1, 12, 30, 45))  # noqa: DTZ001


@pytest.mark.parametrize(
    "text",
    ["2024-1-01 12:30:45", "2024-02-30 00:00:00", " 2024-01-01 12:30:45", "2024-01-01T12:30:45"],
)
def test_malformed_beijing_times_are_refused(text: str) -> None:
    with pytest.raises(AlipayProtocolError):
        parse_beijing(text)


# -- yuan and fen -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("0.29", 29),  # int(0.29 * 100) == 28 (§6)
        ("0.01", 1),
        ("88.88", 8888),
        ("88.8", 8880),
        ("1", 100),
        ("19.99", 1999),
        ("100000000", MAX_FEN),
        ("100000000.00", MAX_FEN),
    ],
)
def test_yuan_text_becomes_exact_fen(text: str, fen: int) -> None:
    assert fen_of(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "1.234",
        "0",
        "0.00",
        "-1",
        "-0.01",
        "1e2",
        " 1",
        "1 ",
        "01.00",
        "1.",
        ".5",
        "",
        "100000000.01",
        "NaN",
        "１",  # a full-width digit: Decimal would take it
        "1,000.00",
    ],
)
def test_malformed_or_out_of_range_yuan_text_is_refused(text: str) -> None:
    with pytest.raises(AlipayProtocolError):
        fen_of(text)


@pytest.mark.parametrize("value", [0.29, 29, None])
def test_non_text_amounts_are_refused(value: object) -> None:
    with pytest.raises(AlipayProtocolError):
        fen_of(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fen", "text"),
    [(8888, "88.88"), (1, "0.01"), (29, "0.29"), (100, "1.00"), (MAX_FEN, "100000000.00")],
)
def test_fen_becomes_two_decimal_yuan(fen: int, text: str) -> None:
    assert yuan(fen) == text


def test_yuan_refuses_what_alipay_would() -> None:
    for fen in (0, -1, MAX_FEN + 1):
        with pytest.raises(AlipayProtocolError):
            yuan(fen)
    for value in (True, 1.5, "100"):
        with pytest.raises(TypeError):
            yuan(value)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=MAX_FEN))
def test_yuan_and_fen_round_trip(fen: int) -> None:
    assert fen_of(yuan(fen)) == fen
