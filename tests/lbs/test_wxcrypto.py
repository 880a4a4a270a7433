"""lbs.wxcrypto against the public vectors of spec/wechat-vectors.json (signatures, WXBizMsgCrypt,
JS-SDK, the decrypt and freshness negatives) and hostile ciphertexts built here."""

from __future__ import annotations

import base64
import struct
import urllib.parse
from collections import Counter
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from lbs.config import decode_encoding_aes_key
from lbs.wxcrypto import (
    _PREFIX_ALPHABET,
    PAD_BLOCK_BYTES,
    RANDOM_PREFIX_BYTES,
    Decrypted,
    WeChatDecryptError,
    WeChatSignatureError,
    WXBizMsgCrypt,
    _random_prefix,
    jssdk_signature,
    msg_signature,
    plain_signature,
    signatures_match,
    timestamp_is_fresh,
)
from lbs.wxxml import parse_xml
from tests.lbs.vectors import VECTORS, Vector, need_vectors

# The kinds of security_negative_vectors and the test file that covers each.
NEGATIVE_KINDS = {
    "decrypt_must_fail": "test_wxcrypto",
    "freshness_policy": "test_wxcrypto",
    "xml_must_be_rejected": "test_wxxml",
    "reply_builder_must_escape": "test_wxxml",
}


def _need() -> Vector:
    return need_vectors()


def _cases(section: str, *, kinds: tuple[str, ...] | None = None) -> list[Any]:
    if VECTORS is None:
        return [pytest.param(None, id="vectors-missing")]
    return [
        pytest.param(vector, id=vector["id"])
        for vector in VECTORS[section]
        if kinds is None or vector["kind"] in kinds
    ]


def _by_id(section: str, vector_id: str) -> Vector:
    matches = [v for v in _need()[section] if v["id"] == vector_id]
    assert len(matches) == 1, f"{vector_id} not in {section}"
    found: Vector = matches[0]
    return found


def _crypt(vector: Vector, *, appid: str | None = None) -> WXBizMsgCrypt:
    receive_id = appid or vector.get("appid") or vector["receive_id"]
    key = decode_encoding_aes_key(vector["encoding_aes_key"])
    return WXBizMsgCrypt(token=vector["token"], aes_key=key, appid=receive_id)


def _vector(vector: Vector | None) -> Vector:
    return vector if vector is not None else _need()


# --- signatures ----------------------------------------------------------------------------------


def test_vectors_file_is_present() -> None:
    _need()


def test_every_negative_vector_kind_is_covered() -> None:
    kinds = {vector["kind"] for vector in _need()["security_negative_vectors"]}
    assert kinds <= set(NEGATIVE_KINDS), f"new kinds to cover: {kinds - set(NEGATIVE_KINDS)}"


@pytest.mark.parametrize("vector", _cases("signature_vectors"))
def test_plain_signature_matches_vector(vector: Vector | None) -> None:
    v = _vector(vector)
    assert "".join(sorted((v["token"], v["timestamp"], v["nonce"]))) == v["sorted_concatenation"]
    signature = plain_signature(v["token"], v["timestamp"], v["nonce"])
    assert signature == v["expected_signature"]
    assert signatures_match(signature, v["expected_signature"])
    for key in ("wrong_if_concatenated_unsorted", "wrong_if_numeric_order_99_before_timestamp"):
        if key in v:
            assert signature != v[key]
            assert not signatures_match(signature, v[key])


def test_sort_is_by_string_not_number() -> None:
    v = _by_id("signature_vectors", "lexicographic_sort_pitfall")
    # "1700000000" < "99" as strings although 99 < 1700000000 as numbers.
    assert plain_signature("abc", "1700000000", "99") == v["expected_signature"]
    assert plain_signature("abc", "99", "1700000000") == v["expected_signature"]


@pytest.mark.parametrize(
    ("expected", "given"),
    [
        pytest.param("abc", "abd", id="different"),
        pytest.param("abc", "ab", id="shorter"),
        pytest.param("abc", "", id="empty"),
        pytest.param("abc", "abç", id="non-ascii"),
        pytest.param("签名", "签名", id="non-ascii-equal"),
    ],
)
def test_signatures_match_is_false_and_never_raises(expected: str, given: str) -> None:
    assert signatures_match(expected, given) is False


def test_uppercase_hex_is_not_the_signature() -> None:
    v = _by_id("signature_vectors", "official_message_push_doc_example")
    assert not signatures_match(v["expected_signature"], v["expected_signature"].upper())


@pytest.mark.parametrize("vector", _cases("jssdk_signature_vectors"))
def test_jssdk_signature_matches_vector(vector: Vector | None) -> None:
    v = _vector(vector)
    args = (v["jsapi_ticket"], v["noncestr"], v["timestamp"])
    assert jssdk_signature(*args, v["url"]) == v["expected_signature"]
    # The fragment is never part of the signed URL (spec §8).
    assert jssdk_signature(*args, v["url"] + "#/offers?x=1") == v["expected_signature"]


# --- WXBizMsgCrypt vectors -----------------------------------------------------------------------


def _raw_decrypt(key: bytes, encrypt: str) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    return decryptor.update(base64.b64decode(encrypt)) + decryptor.finalize()


def _raw_encrypt(key: bytes, buffer: bytes) -> str:
    # No padding added: the tests below craft their own, good or bad.
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(buffer) + encryptor.finalize()).decode("ascii")


DECRYPT_KINDS = ("decrypt_message", "decrypt_echostr")


@pytest.mark.parametrize("vector", _cases("crypto_vectors", kinds=DECRYPT_KINDS))
def test_decrypt_matches_vector(vector: Vector | None) -> None:
    v = _vector(vector)
    expected = v["expected"]
    decrypted = _crypt(v).decrypt(v["encrypt"])
    assert decrypted == Decrypted(
        plaintext=expected["plaintext"],
        random_prefix=bytes.fromhex(expected["random_prefix_hex"]),
        receive_id=expected["receive_id"],
    )
    assert len(decrypted.plaintext.encode("utf-8")) == expected["plaintext_byte_length"]
    assert _raw_decrypt(_crypt_key(v), v["encrypt"])[-1] == expected["pkcs7_pad_byte"]


def _crypt_key(vector: Vector) -> bytes:
    return decode_encoding_aes_key(vector["encoding_aes_key"])


@pytest.mark.parametrize("vector", _cases("crypto_vectors", kinds=DECRYPT_KINDS))
def test_msg_signature_of_decrypt_vector(vector: Vector | None) -> None:
    v = _vector(vector)
    query = v["query"]
    signature = msg_signature(v["token"], query["timestamp"], query["nonce"], v["encrypt"])
    assert signature == query["msg_signature"] == v["expected"]["msg_signature"]
    decrypted = _crypt(v).decrypt_verified(
        v["encrypt"],
        msg_signature=query["msg_signature"],
        timestamp=query["timestamp"],
        nonce=query["nonce"],
    )
    assert decrypted.plaintext == v["expected"]["plaintext"]


@pytest.mark.parametrize("vector", _cases("crypto_vectors", kinds=DECRYPT_KINDS))
def test_reencrypting_with_the_recovered_prefix_gives_the_exact_ciphertext(
    vector: Vector | None,
) -> None:
    # The IV is fixed, so this catches any layout, length or padding bug (spec §6).
    v = _vector(vector)
    crypt = _crypt(v)
    decrypted = crypt.decrypt(v["encrypt"])
    assert crypt.encrypt(decrypted.plaintext, random_prefix=decrypted.random_prefix) == v["encrypt"]


def test_official_oa_compat_sample_body_and_plain_signature() -> None:
    v = _by_id("crypto_vectors", "oa_official_sample_compat_mode")
    fields = parse_xml(v["post_body"].encode("utf-8"))
    assert fields["Encrypt"] == v["encrypt"]
    query = v["query"]
    assert plain_signature(v["token"], query["timestamp"], query["nonce"]) == query["signature"]
    inner = parse_xml(_crypt(v).decrypt(v["encrypt"]).plaintext.encode("utf-8"))
    # Compatible mode: the clear fields and the encrypted ones say the same.
    for name in ("ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId"):
        assert inner[name] == fields[name]
    assert inner["Content"] == "abcdteT"


def test_corp_echostr_is_the_url_decoded_query_value() -> None:
    v = _by_id("crypto_vectors", "corp_official_sample_verify_url")
    query = v["query"]
    assert urllib.parse.unquote(query["echostr_url_encoded"]) == query["echostr"] == v["encrypt"]
    assert _crypt(v).decrypt(query["echostr"]).plaintext == "1616140317555161061"


def test_corp_message_has_pad_30_that_a_16_byte_unpadder_would_refuse() -> None:
    v = _by_id("crypto_vectors", "corp_official_sample_decrypt_msg")
    assert v["expected"]["pkcs7_pad_byte"] == 30 > 16
    assert _crypt(v).decrypt(v["encrypt"]).receive_id == "wx5823bf96d3bd56c7"


ENCRYPT_KIND = ("encrypt_message",)


@pytest.mark.parametrize("vector", _cases("crypto_vectors", kinds=ENCRYPT_KIND))
def test_encrypt_known_answer(vector: Vector | None) -> None:
    v = _vector(vector)
    prefix = v["random_prefix_ascii"].encode("ascii")
    encrypt = _crypt(v).encrypt(v["plaintext"], random_prefix=prefix)
    assert encrypt == v["expected"]["encrypt"]
    signature = msg_signature(v["token"], v["timestamp"], v["nonce"], encrypt)
    assert signature == v["expected"]["msg_signature"]
    assert _crypt(v).decrypt(encrypt).plaintext == v["plaintext"]


@pytest.mark.parametrize("vector", _cases("crypto_vectors", kinds=ENCRYPT_KIND))
def test_encrypted_reply_xml_known_answer(vector: Vector | None) -> None:
    v = _vector(vector)
    reply = _crypt(v).encrypted_reply_xml(
        v["plaintext"],
        timestamp=v["timestamp"],
        nonce=v["nonce"],
        random_prefix=v["random_prefix_ascii"].encode("ascii"),
    )
    fields = parse_xml(reply.encode("utf-8"))
    assert fields == {
        "Encrypt": v["expected"]["encrypt"],
        "MsgSignature": v["expected"]["msg_signature"],
        "TimeStamp": v["timestamp"],
        "Nonce": v["nonce"],
    }
    if "reply_xml" in v["expected"]:
        assert reply == v["expected"]["reply_xml"]


def test_length_field_counts_utf8_bytes_not_characters() -> None:
    v = _by_id("crypto_vectors", "oa_generated_encrypted_reply_utf8")
    assert len(v["plaintext"]) == v["plaintext_char_length"] == 251
    assert len(v["plaintext"].encode("utf-8")) == v["plaintext_byte_length"] == 279
    buffer = _raw_decrypt(_crypt_key(v), v["expected"]["encrypt"])
    assert struct.unpack(">I", buffer[16:20]) == (279,)


# --- security_negative_vectors (decrypt and freshness kinds) -------------------------------------


@pytest.mark.parametrize(
    "vector", _cases("security_negative_vectors", kinds=("decrypt_must_fail",))
)
def test_decrypt_negative_vector_is_refused(vector: Vector | None) -> None:
    v = _vector(vector)
    base = _by_id("crypto_vectors", v["base_vector"])
    query, encrypt = base["query"], base["encrypt"]
    signature = v.get("msg_signature", query["msg_signature"])
    crypt = _crypt(base, appid=v.get("appid"))
    expected_error: type[Exception] = WeChatDecryptError
    if v["id"] == "tampered_msg_signature":
        expected_error = WeChatSignatureError
    elif v["id"] == "bit_flipped_ciphertext":
        raw = bytearray(base64.b64decode(encrypt))
        raw[-1] ^= 0x01
        encrypt = base64.b64encode(bytes(raw)).decode("ascii")
        # Recomputed with the right token: only the decryption checks are left to catch it.
        signature = msg_signature(base["token"], query["timestamp"], query["nonce"], encrypt)
    elif v["id"] != "wrong_appid_trailer":
        pytest.fail(f"no case for decrypt_must_fail vector {v['id']}")
    with pytest.raises(expected_error):
        crypt.decrypt_verified(
            encrypt, msg_signature=signature, timestamp=query["timestamp"], nonce=query["nonce"]
        )


@pytest.mark.parametrize("vector", _cases("security_negative_vectors", kinds=("freshness_policy",)))
def test_freshness_vector(vector: Vector | None) -> None:
    v = _vector(vector)
    fresh = timestamp_is_fresh(v["timestamp"], now=v["now"], max_skew_s=v["max_skew_seconds"])
    assert fresh is v["expected"].startswith("accept")


@pytest.mark.parametrize("timestamp", ["", "abc", "-5", "1718000000.5", " 1718000000", "１７"])
def test_timestamp_that_is_not_decimal_digits_is_never_fresh(timestamp: str) -> None:
    assert not timestamp_is_fresh(timestamp, now=1718000000, max_skew_s=300)


def test_timestamp_in_the_future_beyond_the_window_is_not_fresh() -> None:
    assert not timestamp_is_fresh("1718000301", now=1718000000, max_skew_s=300)
    assert timestamp_is_fresh("1718000300", now=1718000000, max_skew_s=300)


# --- hostile ciphertexts --------------------------------------------------------------------------

KEY = bytes(range(32))
APPID = "wx2c2769f8efd9abc2"
TOKEN = "tianfuTestToken"


def _crypt_here(appid: str = APPID, key: bytes = KEY) -> WXBizMsgCrypt:
    return WXBizMsgCrypt(token=TOKEN, aes_key=key, appid=appid)


def _body(message: bytes, *, length: int | None = None, trailer: bytes = APPID.encode()) -> bytes:
    size = len(message) if length is None else length
    return b"R" * 16 + struct.pack(">I", size) + message + trailer


def _padded_with(body: bytes, pad_bytes: bytes) -> str:
    buffer = body + pad_bytes
    assert len(buffer) % 16 == 0, "test bug: the buffer must be whole AES blocks"
    return _raw_encrypt(KEY, buffer)


def _aligned(body: bytes, last: int) -> bytes:
    """Filler so that body + filler + the final `last` bytes is a multiple of 32."""
    return b"\x00" * (-(len(body) + last) % PAD_BLOCK_BYTES)


def test_well_formed_hand_built_ciphertext_decrypts() -> None:
    body = _body(b"<xml/>")
    pad = PAD_BLOCK_BYTES - len(body) % PAD_BLOCK_BYTES
    assert _crypt_here().decrypt(_padded_with(body, bytes([pad]) * pad)).plaintext == "<xml/>"


def test_pad_value_zero_is_refused() -> None:
    body = _body(b"<xml/>")
    encrypt = _padded_with(body, _aligned(body, 1) + b"\x00")
    with pytest.raises(WeChatDecryptError, match="padding"):
        _crypt_here().decrypt(encrypt)


def test_pad_value_33_is_refused_not_read_as_zero() -> None:
    # wechatpy reads such a pad as 0 and carries on (spec §9.5).
    body = _body(b"<xml/>")
    encrypt = _padded_with(body, _aligned(body, 33) + bytes([33]) * 33)
    with pytest.raises(WeChatDecryptError, match="padding"):
        _crypt_here().decrypt(encrypt)


def test_unequal_pad_bytes_are_refused() -> None:
    body = _body(b"<xml/>")
    pad = PAD_BLOCK_BYTES - len(body) % PAD_BLOCK_BYTES
    assert pad >= 2
    bad = bytes([pad - 1]) + bytes([pad]) * (pad - 1)
    with pytest.raises(WeChatDecryptError, match="padding"):
        _crypt_here().decrypt(_padded_with(body, bad))


def test_length_field_beyond_the_buffer_is_refused() -> None:
    body = _body(b"<xml/>", length=1_000_000)
    pad = PAD_BLOCK_BYTES - len(body) % PAD_BLOCK_BYTES
    with pytest.raises(WeChatDecryptError, match="length"):
        _crypt_here().decrypt(_padded_with(body, bytes([pad]) * pad))


def test_buffer_shorter_than_prefix_and_length_is_refused() -> None:
    with pytest.raises(WeChatDecryptError, match="short"):
        _crypt_here().decrypt(_padded_with(b"R" * 16, bytes([16]) * 16))


def test_message_that_is_not_utf8_is_refused() -> None:
    body = _body(b"\xff\xfe<xml/>")
    pad = PAD_BLOCK_BYTES - len(body) % PAD_BLOCK_BYTES
    with pytest.raises(WeChatDecryptError, match="UTF-8"):
        _crypt_here().decrypt(_padded_with(body, bytes([pad]) * pad))


def test_wrong_appid_trailer_is_refused() -> None:
    encrypt = _crypt_here(appid="wx0000000000000000").encrypt("<xml/>")
    with pytest.raises(WeChatDecryptError, match="AppID"):
        _crypt_here().decrypt(encrypt)


def test_trailer_that_only_starts_with_our_appid_is_refused() -> None:
    encrypt = _crypt_here(appid=APPID + "x").encrypt("<xml/>")
    with pytest.raises(WeChatDecryptError, match="AppID"):
        _crypt_here().decrypt(encrypt)


def test_wrong_key_is_a_decrypt_error_not_a_crash() -> None:
    other = WXBizMsgCrypt(token=TOKEN, aes_key=bytes(reversed(KEY)), appid=APPID)
    for text in ("<xml/>", "附近优惠" * 50, ""):
        with pytest.raises(WeChatDecryptError):
            _crypt_here().decrypt(other.encrypt(text))


def test_truncated_ciphertext_is_refused() -> None:
    raw = base64.b64decode(_crypt_here().encrypt("<xml><Content>hello</Content></xml>"))
    for cut in (16, 32, len(raw) - 16):
        truncated = base64.b64encode(raw[:cut]).decode("ascii")
        with pytest.raises(WeChatDecryptError):
            _crypt_here().decrypt(truncated)


@pytest.mark.parametrize("size", [0, 1, 15, 17, 20, 31, 33])
def test_ciphertext_that_is_not_whole_aes_blocks_is_refused(size: int) -> None:
    with pytest.raises(WeChatDecryptError):
        _crypt_here().decrypt(base64.b64encode(b"\x01" * size).decode("ascii"))


@pytest.mark.parametrize(
    "encrypt",
    [
        pytest.param("not base64!", id="punctuation"),
        pytest.param("QUFB QUFB", id="space"),
        pytest.param("QUFBQUFB\n", id="newline"),
        pytest.param("QUFBQUF", id="missing-padding"),
        pytest.param("QUE=QUFB", id="data-after-padding"),
        pytest.param("QUFBQUE_", id="urlsafe-alphabet"),
        pytest.param("QUI=", id="non-canonical-spare-bits"),
        pytest.param("５５５５", id="fullwidth-digits"),
    ],
)
def test_bad_base64_is_refused(encrypt: str) -> None:
    with pytest.raises(WeChatDecryptError):
        _crypt_here().decrypt(encrypt)


def test_decrypt_of_a_non_str_is_a_decrypt_error() -> None:
    with pytest.raises(WeChatDecryptError):
        _crypt_here().decrypt(b"QUFB")  # type: ignore[arg-type]


def test_errors_never_carry_key_material() -> None:
    key_b64 = base64.b64encode(KEY).decode("ascii")
    crypt = _crypt_here()
    assert key_b64 not in repr(crypt)
    assert TOKEN not in repr(crypt)
    with pytest.raises(WeChatDecryptError) as caught:
        WXBizMsgCrypt(token=TOKEN, aes_key=bytes(reversed(KEY)), appid=APPID).decrypt(
            crypt.encrypt("secret content")
        )
    assert key_b64 not in str(caught.value)
    assert "secret content" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_tampered_signature_is_refused_before_decrypting() -> None:
    crypt = _crypt_here()
    encrypt = crypt.encrypt("<xml/>")
    good = msg_signature(TOKEN, "1718000000", "42", encrypt)
    assert crypt.decrypt_verified(encrypt, msg_signature=good, timestamp="1718000000", nonce="42")
    with pytest.raises(WeChatSignatureError):
        crypt.decrypt_verified(
            encrypt, msg_signature=plain_signature(TOKEN, "1718000000", "42"),
            timestamp="1718000000", nonce="42",
        )  # fmt: skip


def test_key_must_be_32_bytes_and_prefix_16() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        WXBizMsgCrypt(token=TOKEN, aes_key=KEY[:16], appid=APPID)
    with pytest.raises(ValueError, match="16 bytes"):
        _crypt_here().encrypt("x", random_prefix=b"short")


def test_encryption_uses_a_fresh_prefix_each_time() -> None:
    crypt = _crypt_here()
    assert crypt.encrypt("same") != crypt.encrypt("same")


@pytest.mark.parametrize(
    ("timestamp", "nonce"),
    [("17180000<", "42"), ("", "42"), ("1718000000", "]]><x>"), ("1718000000", "")],
)
def test_reply_envelope_refuses_values_that_could_break_it(timestamp: str, nonce: str) -> None:
    with pytest.raises(ValueError, match=r"timestamp|nonce"):
        _crypt_here().encrypted_reply_xml("<xml/>", timestamp=timestamp, nonce=nonce)


@given(text=st.text(), prefix=st.binary(min_size=16, max_size=16))
def test_encrypt_decrypt_round_trip(text: str, prefix: bytes) -> None:
    crypt = _crypt_here()
    encrypt = crypt.encrypt(text, random_prefix=prefix)
    assert len(base64.b64decode(encrypt)) % PAD_BLOCK_BYTES == 0
    assert crypt.decrypt(encrypt) == Decrypted(
        plaintext=text, random_prefix=prefix, receive_id=APPID
    )


@given(text=st.text(min_size=1))
def test_any_change_of_appid_is_refused(text: str) -> None:
    encrypt = _crypt_here(appid="wx2c2769f8efd9abc3").encrypt(text)
    with pytest.raises(WeChatDecryptError):
        _crypt_here().decrypt(encrypt)


def test_random_prefixes_are_16_letters_or_digits_drawn_evenly() -> None:
    prefixes = [_random_prefix() for _ in range(4000)]
    assert all(len(prefix) == RANDOM_PREFIX_BYTES for prefix in prefixes)
    counts = Counter(b"".join(prefixes).decode("ascii"))
    assert set(counts) == set(_PREFIX_ALPHABET)
    # 64,000 draws over 62 symbols: about 1,032 each; a skewed mapping would be far off.
    assert all(800 < count < 1300 for count in counts.values())
