"""tenpay_adapter.v2_signing against every `wechat_v2` vector of payment-vectors.json, plus the
hostile and tampered inputs built here (spec/payment-channels.md §1, §6)."""

from __future__ import annotations

import base64
import hashlib
import string
import xml.etree.ElementTree as StdElementTree
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from tenpay_adapter.bill import fen_to_yuan
from tenpay_adapter.errors import TenpayProtocolError
from tenpay_adapter.v2_signing import (
    SIGN_HMAC,
    SIGN_MD5,
    decrypt_req_info,
    encrypt_req_info,
    fen,
    format_beijing_compact,
    format_beijing_dashed,
    jsapi_params_v2,
    nonce_str,
    notify_reply,
    parse_beijing_compact,
    parse_beijing_dashed,
    parse_xml,
    sign_string,
    sign_v2,
    signed,
    to_xml,
    verify_v2,
)
from tests.tenpay.vectors import need_vectors, v2_vector

# Fields the vectors' XML writes bare (numbers); everything else is CDATA.
BARE_IN_REQUEST = ("mch_id", "total_fee", "time_start", "time_expire")


def test_vectors_file_is_present() -> None:
    need_vectors()


# --- §1.2 signature rules ----------------------------------------------------------------------


def test_official_example_string_a_and_string_sign_temp() -> None:
    v = v2_vector("official_sign_example")
    assert sign_string(v["params"]) == v["string_a"]
    assert f"{sign_string(v['params'])}&key={v['key']}" == v["string_sign_temp"]


def test_official_example_md5_sign() -> None:
    v = v2_vector("official_sign_example")
    assert sign_v2(v["params"], v["key"]) == v["md5_sign"]
    assert sign_v2(v["params"], v["key"], SIGN_MD5) == v["md5_sign"]


def test_official_example_hmac_sha256_sign() -> None:
    v = v2_vector("official_sign_example")
    assert sign_v2(v["params"], v["key"], SIGN_HMAC) == v["hmac_sha256_sign"]


def test_zero_string_is_signed_and_empty_string_is_not() -> None:
    v = v2_vector("official_sign_example")
    with_zero = {**v["params"], "coupon_fee": "0"}
    with_empty = {**v["params"], "coupon_fee": ""}
    assert "coupon_fee=0" in sign_string(with_zero)
    assert sign_v2(with_zero, v["key"]) != v["md5_sign"]
    assert sign_v2(with_empty, v["key"]) == v["md5_sign"]


def test_sign_itself_is_not_signed() -> None:
    v = v2_vector("official_sign_example")
    assert sign_v2({**v["params"], "sign": "ANYTHING"}, v["key"]) == v["md5_sign"]


def test_sort_is_ascii_so_upper_case_comes_first() -> None:
    assert sign_string({"b": "1", "B": "2", "a": "3", "_": "4"}) == "B=2&_=4&a=3&b=1"


def test_non_string_values_are_refused_rather_than_converted() -> None:
    with pytest.raises(TypeError):
        sign_v2({"total_fee": 0}, "key")  # type: ignore[dict-item]


def test_unknown_sign_type_is_refused_when_signing() -> None:
    with pytest.raises(ValueError, match="sign_type"):
        sign_v2({"a": "1"}, "key", "SHA1")


# --- unifiedorder --------------------------------------------------------------------------------


def test_unifiedorder_md5_sign_skips_the_empty_detail() -> None:
    v = v2_vector("unifiedorder_jsapi_md5")
    params = v["params_before_sign"]
    assert params["detail"] == ""
    assert f"{sign_string(params)}&key={v['key']}" == v["string_sign_temp"]
    assert sign_v2(params, v["key"]) == v["sign"]


def test_unifiedorder_md5_request_xml_is_byte_identical() -> None:
    v = v2_vector("unifiedorder_jsapi_md5")
    body: dict[str, str | int] = {
        name: int(value) if name in BARE_IN_REQUEST else value
        for name, value in v["params_before_sign"].items()
        if value
    }
    body["sign"] = signed(body, v["key"])["sign"]
    assert to_xml(body) == v["request_xml"].encode()


def test_unifiedorder_md5_request_xml_parses_and_verifies() -> None:
    v = v2_vector("unifiedorder_jsapi_md5")
    fields = parse_xml(v["request_xml"].encode())
    expected = {name: value for name, value in v["params_before_sign"].items() if value}
    assert fields == {**expected, "sign": v["sign"]}
    assert verify_v2(fields, v["key"])


def test_unifiedorder_md5_response_parses_and_verifies() -> None:
    v = v2_vector("unifiedorder_jsapi_md5")
    fields = parse_xml(v["response_xml"].encode())
    assert fields == v["response_params"]
    assert verify_v2(fields, v["key"])
    assert fields["prepay_id"] == "wx01123045882401fa1a2b3c4d5e6f700000"


def test_unifiedorder_hmac_sha256_sign() -> None:
    v = v2_vector("unifiedorder_jsapi_hmac_sha256")
    assert sign_v2(v["params_before_sign"], v["key"], SIGN_HMAC) == v["sign"]
    message = signed(v["params_before_sign"], v["key"], SIGN_HMAC)
    assert message["sign"] == v["sign"]
    assert message["sign_type"] == SIGN_HMAC
    assert verify_v2(message, v["key"])
    assert verify_v2(parse_xml(to_xml(message)), v["key"])


@pytest.mark.parametrize("name", ["unifiedorder_native_response", "business_error_response"])
def test_response_vectors_parse_and_verify(name: str) -> None:
    v = v2_vector(name)
    fields = parse_xml(v["response_xml"].encode())
    assert fields == v["response_params"]
    assert verify_v2(fields, v["key"])
    assert sign_v2(v["response_params"], v["key"]) == v["response_params"]["sign"]


def test_native_response_carries_the_code_url() -> None:
    fields = parse_xml(v2_vector("unifiedorder_native_response")["response_xml"].encode())
    assert fields["trade_type"] == "NATIVE"
    assert fields["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")


def test_business_error_is_protocol_success_and_result_fail() -> None:
    fields = parse_xml(v2_vector("business_error_response")["response_xml"].encode())
    assert (fields["return_code"], fields["result_code"]) == ("SUCCESS", "FAIL")
    assert fields["err_code"] == "ORDERPAID"
    assert fields["err_code_des"] == "该订单已支付"


# --- signed() and to_xml() ---------------------------------------------------------------------


def test_signed_stringifies_and_adds_sign_type_only_when_given() -> None:
    message = signed({"appid": "wx1", "total_fee": 8888, "coupon_fee": 0}, "k")
    assert message["total_fee"] == "8888"
    assert message["coupon_fee"] == "0"
    assert "sign_type" not in message
    assert verify_v2(message, "k")


def test_signed_replaces_a_stale_sign() -> None:
    message = signed({"appid": "wx1", "sign": "STALE"}, "k")
    assert message["sign"] == sign_v2({"appid": "wx1"}, "k")


def test_signed_refuses_a_sign_type_that_disagrees() -> None:
    with pytest.raises(ValueError, match="sign_type"):
        signed({"appid": "wx1", "sign_type": SIGN_MD5}, "k", SIGN_HMAC)


def test_signed_refuses_booleans() -> None:
    with pytest.raises(TypeError):
        signed({"is_subscribe": True}, "k")


def test_to_xml_writes_ints_bare_and_strings_in_cdata() -> None:
    assert to_xml({"total_fee": 8888, "body": "a<b&c"}) == (
        b"<xml><total_fee>8888</total_fee><body><![CDATA[a<b&c]]></body></xml>"
    )


@pytest.mark.parametrize("value", ["]]>", "a]]>b", "]]>]]>", "x]]", "]]]>>", "中文]]>"])
def test_cdata_terminator_in_a_value_survives_the_round_trip(value: str) -> None:
    assert parse_xml(to_xml({"attach": value})) == {"attach": value}


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a<b", "x:y", "签名"])
def test_to_xml_refuses_names_that_are_not_field_names(name: str) -> None:
    with pytest.raises(ValueError, match="field name"):
        to_xml({name: "x"})


@pytest.mark.parametrize("value", ["\x00", "a\x08b", "\ufffe", "line\r\nbreak"])
def test_to_xml_refuses_characters_xml_cannot_carry(value: str) -> None:
    with pytest.raises(ValueError, match="characters"):
        to_xml({"attach": value})


# --- JSAPI bridge (§1.4) -----------------------------------------------------------------------


def test_jsapi_bridge_params_v2() -> None:
    v = v2_vector("jsapi_bridge_params_v2")
    p = v["params"]
    result = jsapi_params_v2(
        appid=p["appId"],
        prepay_id=p["package"].removeprefix("prepay_id="),
        api_key=v["key"],
        sign_type=p["signType"],
        timestamp=p["timeStamp"],
        nonce_str=p["nonceStr"],
    )
    assert result == {**p, "paySign": v["paySign"]}
    assert f"{sign_string(p)}&key={v['key']}" == v["string_sign_temp"]


# --- payment notify (§1.9) ---------------------------------------------------------------------


def test_payment_notify_md5_parses_and_verifies() -> None:
    v = v2_vector("payment_notify_md5")
    fields = parse_xml(v["notify_xml"].encode())
    assert fields == v["params"]
    assert fields["sign"] == v["sign"]
    assert verify_v2(fields, v["key"])


def test_payment_notify_time_end_is_beijing_time() -> None:
    v = v2_vector("payment_notify_md5")
    paid_at = parse_beijing_compact(v["time_end_beijing"])
    expected = datetime.fromisoformat(v["time_end_utc_iso"])
    assert paid_at == expected
    assert paid_at.tzinfo == UTC
    assert paid_at.isoformat().replace("+00:00", "Z") == v["time_end_utc_iso"]
    assert format_beijing_compact(paid_at) == v["time_end_beijing"]


def test_payment_notify_amounts() -> None:
    v = v2_vector("payment_notify_md5")
    checks = v["amount_checks"]
    fields = parse_xml(v["notify_xml"].encode())
    total = fen(fields["total_fee"])
    assert total == checks["total_fee_fen"]
    assert fen(fields["cash_fee"]) == checks["cash_fee_fen"]
    assert fen(fields["coupon_fee"]) == checks["coupon_fee_fen"]
    assert total == fen(fields["cash_fee"]) + fen(fields["coupon_fee"])
    assert fen_to_yuan(total) == checks["total_yuan"]


def test_merchant_reply_to_a_notify() -> None:
    expected = v2_vector("payment_notify_md5")["expected_merchant_reply"]
    assert notify_reply() == expected.encode()
    assert parse_xml(notify_reply(ok=False, message="签名失败")) == {
        "return_code": "FAIL",
        "return_msg": "签名失败",
    }


def test_hmac_notify_without_sign_type_verifies_by_sign_length() -> None:
    v = v2_vector("payment_notify_hmac_without_sign_type")
    assert "sign_type" not in v["params"]
    assert len(v["sign"]) == 64
    assert verify_v2(v["params"], v["key"])
    # What an MD5-only verifier (wechatpy 1.8.18) computes instead:
    assert sign_v2(v["params"], v["key"], SIGN_MD5) != v["sign"]


def test_hmac_notify_claiming_md5_does_not_verify() -> None:
    v = v2_vector("payment_notify_hmac_without_sign_type")
    assert not verify_v2({**v["params"], "sign_type": SIGN_MD5}, v["key"])


@pytest.mark.parametrize(
    "field", ["total_fee", "cash_fee", "out_trade_no", "transaction_id", "time_end", "appid"]
)
@pytest.mark.parametrize("name", ["payment_notify_md5", "payment_notify_hmac_without_sign_type"])
def test_one_changed_character_breaks_the_sign(name: str, field: str) -> None:
    v = v2_vector(name)
    value = v["params"][field]
    changed = value[:-1] + ("1" if value[-1] != "1" else "2")
    assert not verify_v2({**v["params"], field: changed}, v["key"])


@pytest.mark.parametrize("name", ["payment_notify_md5", "payment_notify_hmac_without_sign_type"])
def test_added_or_removed_fields_break_the_sign(name: str) -> None:
    v = v2_vector(name)
    params = v["params"]
    assert not verify_v2({**params, "settlement_total_fee": "8888"}, v["key"])
    assert not verify_v2({k: val for k, val in params.items() if k != "coupon_fee"}, v["key"])
    assert not verify_v2(params, "192006250b4c09247ec02edce69f6a2e")


def test_an_added_empty_field_is_outside_the_sign() -> None:
    v = v2_vector("payment_notify_md5")
    assert verify_v2({**v["params"], "device_info": ""}, v["key"])


@pytest.mark.parametrize(
    "sign",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("09D2E988125E81F5AEFA82ECDD61928", id="31-hex"),
        pytest.param("签名" * 16, id="non-ascii"),
        pytest.param("0" * 64, id="zeros"),
    ],
)
def test_bad_signs_are_false_and_never_raise(sign: str | None) -> None:
    v = v2_vector("payment_notify_md5")
    params = {k: val for k, val in v["params"].items() if k != "sign"}
    if sign is not None:
        params["sign"] = sign
    assert verify_v2(params, v["key"]) is False


def test_unknown_sign_type_does_not_verify() -> None:
    v = v2_vector("payment_notify_md5")
    assert not verify_v2({**v["params"], "sign_type": "SHA1"}, v["key"])


def test_lower_case_hex_of_the_same_digest_verifies() -> None:
    v = v2_vector("payment_notify_md5")
    assert verify_v2({**v["params"], "sign": v["sign"].lower()}, v["key"])


# --- refund notify req_info (§1.9) ---------------------------------------------------------------


def _decrypted_fields(xml: str) -> dict[str, str]:
    # The vector's own plaintext is trusted, so the stdlib parser reads it for comparison.
    return {child.tag: child.text or "" for child in StdElementTree.fromstring(xml)}


def test_refund_notify_outer_xml_has_no_sign() -> None:
    v = v2_vector("refund_notify_req_info")
    outer = parse_xml(v["notify_xml"].encode())
    assert "sign" not in outer
    assert outer["req_info"] == v["req_info"]


def test_refund_notify_key_is_the_lowercase_hex_md5_of_the_api_key() -> None:
    v = v2_vector("refund_notify_req_info")
    digest = hashlib.md5(v["api_key"].encode()).hexdigest()
    assert digest == v["aes_key_ascii"]


def test_refund_notify_req_info_decrypts_to_the_vector_fields() -> None:
    v = v2_vector("refund_notify_req_info")
    fields = decrypt_req_info(v["req_info"], v["api_key"])
    assert fields == _decrypted_fields(v["decrypted_xml"])
    assert fields["refund_recv_accout"] == "支付用户零钱"
    assert fen(fields["refund_fee"]) == 3000
    refunded_at = parse_beijing_dashed(fields["success_time"])
    assert refunded_at == datetime(2024, 1, 2, 2, 0, 5, tzinfo=UTC)
    assert format_beijing_dashed(refunded_at) == fields["success_time"]


def test_refund_notify_req_info_encrypts_byte_identically() -> None:
    v = v2_vector("refund_notify_req_info")
    fields = decrypt_req_info(v["req_info"], v["api_key"])
    assert encrypt_req_info(fields, v["api_key"]) == v["req_info"]


def test_req_info_round_trip() -> None:
    fields = {"out_refund_no": "RF-1", "refund_status": "CHANGE", "note": "a]]>b 中文", "x": ""}
    assert decrypt_req_info(encrypt_req_info(fields, "some-api-key"), "some-api-key") == fields


def _ecb_encrypt(plaintext: bytes, aes_key_ascii: str) -> str:
    cipher = Cipher(algorithms.AES(aes_key_ascii.encode()), modes.ECB())
    encryptor = cipher.encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()


def _tampered(req_info: str, index: int) -> str:
    raw = bytearray(base64.b64decode(req_info))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _shortened(req_info: str, drop: int) -> str:
    return base64.b64encode(base64.b64decode(req_info)[:-drop]).decode()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda r: _tampered(r, -1), id="last-byte-flipped"),
        pytest.param(lambda r: _tampered(r, -20), id="last-but-one-block-flipped"),
        pytest.param(lambda r: _tampered(r, 5), id="first-block-flipped"),
        pytest.param(lambda r: _shortened(r, 16), id="last-block-dropped"),
        pytest.param(lambda r: _shortened(r, 1), id="not-whole-blocks"),
        pytest.param(lambda r: r[:-1], id="bad-base64-padding"),
        pytest.param(lambda r: "*" + r[1:], id="not-base64"),
        pytest.param(lambda r: r[:20] + "\n" + r[20:], id="embedded-newline"),
        pytest.param(lambda r: "", id="empty"),
        pytest.param(lambda r: "中文", id="non-ascii"),
    ],
)
def test_tampered_req_info_is_refused(make: Callable[[str], str]) -> None:
    v = v2_vector("refund_notify_req_info")
    with pytest.raises(TenpayProtocolError):
        decrypt_req_info(make(v["req_info"]), v["api_key"])


def test_req_info_under_the_wrong_key_is_refused() -> None:
    v = v2_vector("refund_notify_req_info")
    with pytest.raises(TenpayProtocolError):
        decrypt_req_info(v["req_info"], "192006250b4c09247ec02edce69f6a2e")


@pytest.mark.parametrize(
    "pad",
    [
        pytest.param(b"\x00" * 16, id="zero-pad"),
        pytest.param(b"\x11" * 16, id="pad-over-16"),
        pytest.param(b"\x05" * 15 + b"\x04", id="inconsistent-pad"),
    ],
)
def test_req_info_with_bad_padding_is_refused(pad: bytes) -> None:
    v = v2_vector("refund_notify_req_info")
    plaintext = b"<root><refund_status>SUCCESS</refund_status></root>"
    plaintext += b" " * (-len(plaintext) % 16)
    with pytest.raises(TenpayProtocolError, match="padding"):
        decrypt_req_info(_ecb_encrypt(plaintext + pad, v["aes_key_ascii"]), v["api_key"])


@pytest.mark.parametrize(
    "plaintext",
    [
        pytest.param(b"not xml at all", id="not-xml"),
        pytest.param(b"<xml><a>1</a></xml>", id="wrong-root"),
        pytest.param(
            b'<!DOCTYPE root [<!ENTITY x SYSTEM "file:///etc/passwd">]><root><a>&x;</a></root>',
            id="xxe",
        ),
        pytest.param("<root><a>中</a></root>".encode("gbk"), id="gbk"),
    ],
)
def test_req_info_plaintext_goes_through_the_safe_parser(plaintext: bytes) -> None:
    v = v2_vector("refund_notify_req_info")
    padded = plaintext + bytes([16 - len(plaintext) % 16]) * (16 - len(plaintext) % 16)
    with pytest.raises(TenpayProtocolError):
        decrypt_req_info(_ecb_encrypt(padded, v["aes_key_ascii"]), v["api_key"])


# --- hostile XML (§6) -----------------------------------------------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>'
    b"<xml><return_code>&lol2;</return_code></xml>"
)


def test_xxe_vector_is_rejected() -> None:
    v = v2_vector("xxe_rejection")
    with pytest.raises(TenpayProtocolError, match="DOCTYPE"):
        parse_xml(v["payload"].encode())


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml/>', id="external-dtd"),
        pytest.param(b"<!DOCTYPE xml><xml><a>1</a></xml>", id="bare-doctype"),
        pytest.param(b"<!doctype xml><xml/>", id="lower-case-doctype"),
        pytest.param(b'<xml><!ENTITY x "y"></xml>', id="entity-in-body"),
        pytest.param(
            b'<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p">%p;]><xml/>',
            id="parameter-entity",
        ),
    ],
)
def test_dtds_and_entities_are_rejected(body: bytes) -> None:
    with pytest.raises(TenpayProtocolError):
        parse_xml(body)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not xml", id="not-xml"),
        pytest.param(b"<xml><a>1</a>", id="unclosed"),
        pytest.param(b"<root><a>1</a></root>", id="wrong-root"),
        pytest.param(b"<xml><a><b>1</b></a></xml>", id="nested"),
        pytest.param(b"<xml><sign>A</sign><sign>B</sign></xml>", id="duplicate-field"),
        pytest.param(b"<xml>text<a>1</a></xml>", id="stray-text"),
        pytest.param(b"<xml><a>1</a>tail</xml>", id="stray-tail"),
        pytest.param(b'<xml xmlns:p="urn:x"><p:a>1</p:a></xml>', id="namespaced"),
        pytest.param(b"<xml><a>&undefined;</a></xml>", id="undefined-entity"),
        pytest.param(b"<xml><a>1</a></xml><xml/>", id="two-roots"),
        pytest.param(b"<xml><a>\x01</a></xml>", id="control-char"),
    ],
)
def test_malformed_xml_raises_only_protocol_errors(body: bytes) -> None:
    with pytest.raises(TenpayProtocolError):
        parse_xml(body)


def test_a_str_body_is_refused() -> None:
    with pytest.raises(TenpayProtocolError, match="bytes"):
        parse_xml("<xml/>")  # type: ignore[arg-type]


def test_non_utf8_body_is_refused() -> None:
    body = "<xml><err_code_des>该订单已支付</err_code_des></xml>".encode("gbk")
    with pytest.raises(TenpayProtocolError, match="UTF-8"):
        parse_xml(body)


def test_a_declared_encoding_does_not_override_utf8() -> None:
    body = '<?xml version="1.0" encoding="GBK"?><xml><a>该订单</a></xml>'.encode()
    assert parse_xml(body) == {"a": "该订单"}


def test_oversize_body_is_refused() -> None:
    body = b"<xml><attach>" + b"a" * 65536 + b"</attach></xml>"
    with pytest.raises(TenpayProtocolError, match="large"):
        parse_xml(body)
    assert parse_xml(body, max_bytes=len(body)) == {"attach": "a" * 65536}
    with pytest.raises(TenpayProtocolError, match="large"):
        parse_xml(b"<xml><a>1</a></xml>", max_bytes=10)


def test_empty_elements_read_as_empty_strings() -> None:
    assert parse_xml(b"<xml><a/><b></b><c><![CDATA[]]></c></xml>") == {"a": "", "b": "", "c": ""}


def test_values_are_kept_exactly_as_received() -> None:
    body = b"<xml><a><![CDATA[  spaced  ]]></a><b> 8888 </b><c>x&amp;y</c></xml>"
    assert parse_xml(body) == {"a": "  spaced  ", "b": " 8888 ", "c": "x&y"}


# --- small helpers ------------------------------------------------------------------------------


def test_nonce_str_is_32_fresh_characters() -> None:
    nonces = {nonce_str() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == 32 and set(n) <= set(string.ascii_letters + string.digits) for n in nonces)


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("8888", 8888), ("007", 7)])
def test_fen_parses_integer_fen(text: str, expected: int) -> None:
    assert fen(text) == expected


@pytest.mark.parametrize(
    "text", ["", "-1", "+1", "1.00", " 1", "1 ", "１２", "1e3", "0x10", "1_000", "9" * 19]
)
def test_fen_refuses_anything_but_ascii_digits(text: str) -> None:
    with pytest.raises(TenpayProtocolError):
        fen(text)


# --- Beijing time (§6 "Timezones") --------------------------------------------------------------


def test_beijing_times_parse_to_aware_utc() -> None:
    assert parse_beijing_compact("20240101000000") == datetime(2023, 12, 31, 16, tzinfo=UTC)
    assert parse_beijing_dashed("2024-01-01 00:00:00") == datetime(2023, 12, 31, 16, tzinfo=UTC)


def test_formatting_converts_any_aware_time_to_beijing() -> None:
    new_york = timezone(timedelta(hours=-5))
    moment = datetime(2024, 1, 1, 12, 0, 0, tzinfo=new_york)
    assert format_beijing_compact(moment) == "20240102010000"
    assert format_beijing_dashed(moment) == "2024-01-02 01:00:00"


def test_naive_datetimes_are_refused_when_formatting() -> None:
    naive = datetime(2024, 1, 1, 12, 0, 0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"):
        format_beijing_compact(naive)
    with pytest.raises(ValueError, match="naive"):
        format_beijing_dashed(naive)


@pytest.mark.parametrize(
    "text",
    ["", "2024010112321", "202401011232100", " 20240101123210", "20240230123210", "2024-01-01"],
)
def test_malformed_compact_times_are_refused(text: str) -> None:
    with pytest.raises(TenpayProtocolError):
        parse_beijing_compact(text)


@pytest.mark.parametrize(
    "text", ["2024-01-01T12:00:00", "2024-1-01 12:00:00", "2024-01-01 25:00:00", "00010101000000"]
)
def test_malformed_dashed_times_are_refused(text: str) -> None:
    with pytest.raises(TenpayProtocolError):
        parse_beijing_dashed(text)


def test_year_one_midnight_beijing_is_refused_not_overflowed() -> None:
    with pytest.raises(TenpayProtocolError):
        parse_beijing_compact("00010101000000")


# --- properties ----------------------------------------------------------------------------------


@given(st.binary(max_size=512))
def test_parse_xml_raises_nothing_but_protocol_errors(body: bytes) -> None:
    try:
        fields = parse_xml(body)
    except TenpayProtocolError:
        return
    assert all(isinstance(value, str) for value in fields.values())


@given(st.text(max_size=200))
def test_decrypt_req_info_raises_nothing_but_protocol_errors(req_info: str) -> None:
    with pytest.raises(TenpayProtocolError):
        decrypt_req_info(req_info, "192006250b4c09247ec02edce69f6a2d")


_FIELD_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
_XML_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)


@given(st.dictionaries(_FIELD_NAMES, _XML_TEXT, max_size=8), st.sampled_from([SIGN_MD5, SIGN_HMAC]))
def test_signed_messages_survive_xml_and_verify(params: dict[str, str], sign_type: str) -> None:
    message = signed(params, "an-api-key", sign_type)
    received = parse_xml(to_xml(message))
    assert received == message
    assert verify_v2(received, "an-api-key")
