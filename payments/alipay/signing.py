"""Alipay open-platform codecs (spec/payment-channels.md §3.1, §3.2, §6): RSA2 sign content for
requests and notifies, RSA-SHA256 signatures, keys in the forms Alipay hands out, the signed text
of a sync response, Beijing times and yuan amounts. Pure: stdlib and `cryptography`.

Requests are signed with the *application* private key; responses and notifies are verified with
the *Alipay* public key (§6: not the application public key).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from payments.alipay.errors import AlipayProtocolError

# China has had no DST since 1991, so a fixed offset is exact.
BEIJING: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
# §3.1: amounts are yuan strings, 0.01 to 100000000.
MIN_FEN: Final = 1
MAX_FEN: Final = 100_000_000 * 100
ERROR_RESPONSE_KEY: Final = "error_response"

_BEIJING_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
# At most two decimals, no sign, no exponent, no leading zeros, no surrounding space.
_YUAN_RE = re.compile(r"(?:0|[1-9][0-9]{0,8})(?:\.[0-9]{1,2})?")
_LITERAL_RE = re.compile(r"-?[0-9][0-9eE.+-]*|true|false|null")
_WHITESPACE: Final = " \t\r\n"
_MAX_DEPTH: Final = 64


# --- sign content (§3.2) ---------------------------------------------------------------------


def _sign_content(params: Mapping[str, str], dropped: frozenset[str]) -> str:
    kept: list[tuple[str, str]] = []
    for name, value in params.items():
        if not isinstance(value, str):
            # Converting first is how an integer 0 gets lost (§6): values are signed as received.
            raise TypeError(f"parameter {name!r} must be a string")
        if name not in dropped and value != "":
            kept.append((name, value))
    # Plain string order is code-point order: ASCII order for the ASCII names Alipay uses.
    return "&".join(f"{name}={value}" for name, value in sorted(kept))


def request_sign_content(params: Mapping[str, str]) -> str:
    """Requests: drop `sign` and empty values, KEEP `sign_type`, sort, join raw `k=v` with `&`."""
    return _sign_content(params, frozenset({"sign"}))


def notify_sign_content(params: Mapping[str, str]) -> str:
    """Async notifies: drop `sign` AND `sign_type` and empty values (§3.2); values URL-decoded."""
    return _sign_content(params, frozenset({"sign", "sign_type"}))


# --- RSA2 ------------------------------------------------------------------------------------


def rsa2_sign(private_key: RSAPrivateKey, content: str) -> str:
    # PKCS#1 v1.5 is deterministic, so the vectors can be compared byte for byte.
    signature = private_key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa2_verify(public_key: RSAPublicKey, content: str, sign_b64: str) -> bool:
    """SHA-256 only: the DigestInfo inside the signature must name SHA-256, so a SHA-1 signature
    is refused (alipay-sdk-python's `verify_with_rsa` accepts one even under RSA2, §3.5)."""
    try:
        signature = base64.b64decode(sign_b64, validate=True)
        public_key.verify(signature, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except Exception:  # InvalidSignature, bad base64, a non-str: all just "does not verify"
        return False
    return True


# --- keys ------------------------------------------------------------------------------------


def _key_bytes(pem: str | bytes) -> bytes:
    try:
        return pem.encode("ascii") if isinstance(pem, str) else bytes(pem)
    except UnicodeEncodeError:
        raise AlipayProtocolError("a key is ASCII text") from None


def _bare_der(data: bytes) -> bytes:
    """Alipay's key tool and console give the base64 body alone, without the PEM lines."""
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise AlipayProtocolError("not a PEM key nor a bare base64 key body") from None


def load_private_key(pem: str | bytes) -> RSAPrivateKey:
    """The application private key: PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`), full
    PEM or the bare base64 body, unencrypted."""
    data = _key_bytes(pem).strip()
    try:
        if data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(_bare_der(data), password=None)
    except (ValueError, TypeError):
        raise AlipayProtocolError("not an unencrypted RSA private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise AlipayProtocolError("Alipay RSA2 keys are RSA")
    return key


def load_public_key(pem: str | bytes) -> RSAPublicKey:
    """The Alipay public key: SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`), full PEM or the
    bare base64 body the Alipay console shows."""
    data = _key_bytes(pem).strip()
    try:
        if data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(_bare_der(data))
    except (ValueError, TypeError):
        raise AlipayProtocolError("not an RSA public key") from None
    if not isinstance(key, RSAPublicKey):
        raise AlipayProtocolError("Alipay RSA2 keys are RSA")
    return key


def private_key_pkcs1_pem(key: RSAPrivateKey) -> str:
    """`-----BEGIN RSA PRIVATE KEY-----`: alipay-sdk-python signs with PKCS#1 only (§3.5)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_key_pem(key: RSAPublicKey) -> str:
    """SPKI `PUBLIC KEY`, the form alipay-sdk-python's verifier reads."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


# --- the signed text of a sync response (§3.2) -------------------------------------------------


def _skip_whitespace(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _expect(text: str, i: int, char: str) -> None:
    if i >= len(text) or text[i] != char:
        raise AlipayProtocolError(f"malformed answer: expected {char!r} at {i}")


def _string_end(text: str, i: int) -> int:
    """`text[i]` opens a JSON string; the index just past its closing quote."""
    _expect(text, i, '"')
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # an escape: whatever follows (a quote too) belongs to the string
        elif char == '"':
            return i + 1
        else:
            i += 1
    raise AlipayProtocolError("malformed answer: unterminated string")


def _value_end(text: str, i: int) -> int:
    """The index just past the JSON value starting at `text[i]`, nesting and strings respected.
    Only delimits: the signed text is parsed by `json.loads` once it has verified."""
    if i >= len(text):
        raise AlipayProtocolError("malformed answer: a value is missing")
    if text[i] == '"':
        return _string_end(text, i)
    if text[i] not in "{[":
        literal = _LITERAL_RE.match(text, i)
        if literal is None:
            raise AlipayProtocolError(f"malformed answer: unexpected {text[i]!r} at {i}")
        return literal.end()
    closers: list[str] = []
    while i < len(text):
        char = text[i]
        if char == '"':
            i = _string_end(text, i)
            continue
        if char in "{[":
            closers.append("}" if char == "{" else "]")
            if len(closers) > _MAX_DEPTH:
                raise AlipayProtocolError("malformed answer: nested too deep")
        elif char in "}]":
            if not closers or closers.pop() != char:
                raise AlipayProtocolError(f"malformed answer: unbalanced {char!r} at {i}")
            if not closers:
                return i + 1
        i += 1
    raise AlipayProtocolError("malformed answer: unterminated object")


def _top_level_members(raw: str) -> dict[str, tuple[int, int]]:
    """Each top-level member's name → the span of its value's text in `raw`."""
    members: dict[str, tuple[int, int]] = {}
    i = _skip_whitespace(raw, 0)
    _expect(raw, i, "{")
    i = _skip_whitespace(raw, i + 1)
    if i < len(raw) and raw[i] == "}":
        i += 1
    else:
        while True:
            name_end = _string_end(raw, i)
            name = json.loads(raw[i:name_end])
            i = _skip_whitespace(raw, name_end)
            _expect(raw, i, ":")
            start = _skip_whitespace(raw, i + 1)
            end = _value_end(raw, start)
            # Two members of one name: the verifier and the reader could take different ones.
            if name in members:
                raise AlipayProtocolError(f"malformed answer: {name!r} appears twice")
            members[name] = (start, end)
            i = _skip_whitespace(raw, end)
            if i < len(raw) and raw[i] == ",":
                i = _skip_whitespace(raw, i + 1)
                continue
            _expect(raw, i, "}")
            i += 1
            break
    if _skip_whitespace(raw, i) != len(raw):
        raise AlipayProtocolError("malformed answer: text after the object")
    return members


def response_key(method: str) -> str:
    """`alipay.trade.precreate` → `alipay_trade_precreate_response`."""
    return method.replace(".", "_") + "_response"


def signed_response_text(raw: str, method: str) -> tuple[str, str]:
    """The exact text of the `<method>_response` object as sent, and the `sign` over it.

    The signature covers those characters, not a re-serialisation (§3.2), so they are cut out of
    `raw`, never rebuilt. A gateway-level refusal may come as `error_response` instead; it is
    signed the same way. Unsigned or malformed: AlipayProtocolError.
    """
    try:
        members = _top_level_members(raw)
    except json.JSONDecodeError:
        raise AlipayProtocolError("malformed answer: a bad member name") from None
    key = response_key(method)
    if key not in members and ERROR_RESPONSE_KEY in members:
        key = ERROR_RESPONSE_KEY
    if key not in members:
        raise AlipayProtocolError(f"the answer has no {response_key(method)!r}")
    start, end = members[key]
    if raw[start] != "{":
        raise AlipayProtocolError(f"{key!r} is not an object (encrypted answers are not used)")
    if "sign" not in members:
        raise AlipayProtocolError("the answer carries no sign")
    sign_start, sign_end = members["sign"]
    try:
        sign = json.loads(raw[sign_start:sign_end])
    except json.JSONDecodeError:
        raise AlipayProtocolError("malformed answer: a bad sign") from None
    if not isinstance(sign, str) or not sign:
        raise AlipayProtocolError("the answer's sign is not a string")
    return raw[start:end], sign


# --- Beijing time (§3.1, §6) -----------------------------------------------------------------


def beijing_timestamp(dt: datetime) -> str:
    """Aware dt → 'yyyy-MM-dd HH:mm:ss' in Beijing time. A naive dt is refused: it would take the
    host's zone, which is how both Alipay SDKs end up 8 hours off on UTC hosts (§6)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime: Alipay times must be formatted from aware values")
    return dt.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def parse_beijing(s: str) -> datetime:
    """'yyyy-MM-dd HH:mm:ss' in Beijing time (gmt_payment, notify_time, bills) → aware UTC."""
    # The regex first: strptime alone accepts single-digit fields and surrounding space.
    if not isinstance(s, str) or not _BEIJING_RE.fullmatch(s):
        raise AlipayProtocolError("malformed Beijing time")
    try:
        return datetime.strptime(s + "+0800", "%Y-%m-%d %H:%M:%S%z").astimezone(UTC)
    except (ValueError, OverflowError):  # 2024-02-30, or year 1 moved before year 1
        raise AlipayProtocolError("impossible Beijing time") from None


# --- yuan and fen (§3.1, §6) -----------------------------------------------------------------


def _check_fen(fen: int) -> None:
    if not MIN_FEN <= fen <= MAX_FEN:
        raise AlipayProtocolError("an Alipay amount is 0.01 to 100000000 yuan")


def yuan(fen: int) -> str:
    """8888 → '88.88'. Integer arithmetic only."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError("amounts are integer fen")
    _check_fen(fen)
    return f"{fen // 100}.{fen % 100:02d}"


def fen_of(yuan_text: str) -> int:
    """'0.29' → 29, through Decimal: never float (§6: `int(0.29 * 100) == 28`). At most two
    decimals, 0.01 to 100000000; anything else (a number, '1.234', '0', '-1', '1e2') is refused."""
    # A JSON number arrives as a float, already rounded: refused rather than trusted.
    if not isinstance(yuan_text, str) or not _YUAN_RE.fullmatch(yuan_text):
        raise AlipayProtocolError("malformed yuan amount")
    try:
        fen = int(Decimal(yuan_text) * 100)
    except InvalidOperation:  # unreachable after the regex; kept so no Decimal error escapes
        raise AlipayProtocolError("malformed yuan amount") from None
    _check_fen(fen)
    return fen
