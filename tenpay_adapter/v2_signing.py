"""WeChat Pay API v2 codecs: signatures, XML, refund `req_info`, JSAPI bridge parameters
(spec/payment-channels.md §1, §6). Pure: stdlib, `cryptography` and `defusedxml` only.

Values are signed as the strings received (§1.2, §6 "Empty fields in signatures"), so everything
inbound stays `str` until it is verified; amounts become ints through `fen`, times through the
`parse_beijing_*` helpers, never by int()/float() at a call site.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import ElementTree as SafeElementTree

from tenpay_adapter.errors import TenpayProtocolError
from tenpay_adapter.timefmt import (
    BEIJING,
    format_beijing_compact,
    format_beijing_dashed,
    parse_beijing_compact,
    parse_beijing_dashed,
)

SIGN_MD5 = "MD5"
SIGN_HMAC = "HMAC-SHA256"
SIGN_TYPES = (SIGN_MD5, SIGN_HMAC)
# Hex lengths of the two digests: a notify may omit sign_type although the order was signed
# with HMAC-SHA256 (§1.9, §6; WxJava #1585/#1633), so the length decides then.
_SIGN_TYPE_BY_LENGTH = {32: SIGN_MD5, 64: SIGN_HMAC}

# Real v2 messages are a few KB; a refund notify with req_info stays under 4 KB.
MAX_XML_BYTES = 64 * 1024

_FIELD_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# WeChat never sends a DTD. Refusing one before the parser sees it keeps XXE and billion
# laughs out altogether (§6, vector xxe_rejection); defusedxml is the second line.
_DTD_RE = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
# What XML 1.0 cannot carry, plus \r: a parser turns it into \n even inside CDATA, so the
# receiver would sign a different string than we did.
_XML_UNSENDABLE_RE = re.compile("[^\t\n\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FEN_RE = re.compile(r"[0-9]{1,18}")
_AES_BLOCK_BYTES = 16


# --- signatures (§1.2) -------------------------------------------------------------------------


def sign_string(params: Mapping[str, str]) -> str:
    """stringA: non-empty values except `sign`, ASCII-sorted by name, raw values joined."""
    for name, value in params.items():
        # An int 0 converted late, or dropped as falsy, is the wechatpy pitfall of §6.
        if not isinstance(value, str):
            raise TypeError(f"v2 parameter {name!r} must be a str, as received")
    kept = sorted((name, value) for name, value in params.items() if name != "sign" and value)
    return "&".join(f"{name}={value}" for name, value in kept)


def sign_v2(params: Mapping[str, str], api_key: str, sign_type: str = SIGN_MD5) -> str:
    message = f"{sign_string(params)}&key={api_key}".encode()
    if sign_type == SIGN_MD5:
        digest = hashlib.md5(message).hexdigest()  # noqa: S324 - MD5 is the v2 protocol (§1.2)
    elif sign_type == SIGN_HMAC:
        # The key is the HMAC key and is still appended to the message (§1.2 step 5).
        digest = hmac.new(api_key.encode(), message, hashlib.sha256).hexdigest()
    else:
        raise ValueError(f"unknown v2 sign_type {sign_type!r}")
    return digest.upper()


def verify_v2(params: Mapping[str, str], api_key: str) -> bool:
    received = params.get("sign")
    if not isinstance(received, str) or not received:
        return False
    # A declared sign_type is signed too, so trusting it cannot downgrade the algorithm: a
    # forged "MD5" changes the signed string as well.
    sign_type = params.get("sign_type") or _SIGN_TYPE_BY_LENGTH.get(len(received))
    if sign_type not in SIGN_TYPES:
        return False
    expected = sign_v2(params, api_key, sign_type)
    return hmac.compare_digest(expected.encode(), received.upper().encode())


def _as_text(name: str, value: str | int) -> str:
    # bool is an int; True would be sent as "True".
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"v2 parameter {name!r} must be a str or an int")
    return str(value)


def signed(
    params: Mapping[str, str | int], api_key: str, sign_type: str = SIGN_MD5
) -> dict[str, str]:
    """A copy of `params` as strings plus `sign`; `sign_type` is sent only if the caller put it
    in `params` (MD5 is the default the gateway assumes)."""
    values = {name: _as_text(name, value) for name, value in params.items() if name != "sign"}
    declared = values.get("sign_type")
    if declared and declared != sign_type:
        raise ValueError(f"params say sign_type={declared!r} but signing with {sign_type!r}")
    values["sign"] = sign_v2(values, api_key, sign_type)
    return values


def nonce_str() -> str:
    return secrets.token_hex(16)


def fen(s: str) -> int:
    """An amount field (total_fee, cash_fee, refund_fee …): ASCII digits only, integer fen."""
    if not isinstance(s, str) or not _FEN_RE.fullmatch(s):
        raise TenpayProtocolError("amount is not an integer number of fen")
    return int(s)


def jsapi_params_v2(
    *, appid: str, prepay_id: str, api_key: str, sign_type: str, timestamp: str, nonce_str: str
) -> dict[str, str]:
    """The getBrandWCPayRequest arguments (§1.4): camelCase names, signType itself signed."""
    params = {
        "appId": appid,
        "timeStamp": timestamp,
        "nonceStr": nonce_str,
        "package": f"prepay_id={prepay_id}",
        "signType": sign_type,
    }
    params["paySign"] = sign_v2(params, api_key, sign_type)
    return params


# --- XML (§1.1, §6) ----------------------------------------------------------------------------


def _cdata(value: str) -> str:
    # "]]>" cannot occur inside one CDATA section: end it after "]]" and reopen before ">".
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _render(root: str, params: Mapping[str, str | int]) -> bytes:
    parts = [f"<{root}>"]
    for name, value in params.items():
        if not _FIELD_NAME_RE.fullmatch(name):
            raise ValueError(f"not a v2 field name: {name!r}")
        text = _as_text(name, value)
        if isinstance(value, str):
            if _XML_UNSENDABLE_RE.search(text):
                raise ValueError(f"v2 field {name!r} holds characters XML cannot carry")
            text = _cdata(text)
        parts.append(f"<{name}>{text}</{name}>")
    parts.append(f"</{root}>")
    return "".join(parts).encode()


def to_xml(params: Mapping[str, str | int]) -> bytes:
    """`<xml>` with strings in CDATA and ints bare, as WeChat writes it (§1.1)."""
    return _render("xml", params)


def notify_reply(*, ok: bool = True, message: str = "OK") -> bytes:
    """The merchant's answer to a v2 notify (§1.9 step 5); anything else means redelivery."""
    return to_xml({"return_code": "SUCCESS" if ok else "FAIL", "return_msg": message})


def _parse_flat(body: bytes, *, root_tag: str, max_bytes: int) -> dict[str, str]:
    if not isinstance(body, bytes | bytearray):
        raise TenpayProtocolError("XML body is not bytes")
    if len(body) > max_bytes:
        raise TenpayProtocolError("XML body too large")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise TenpayProtocolError("XML body is not UTF-8") from None
    if _DTD_RE.search(text):
        raise TenpayProtocolError("DOCTYPE or ENTITY declaration")
    try:
        # A str makes expat read UTF-8 whatever an XML declaration claims.
        root = SafeElementTree.fromstring(
            text, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except Exception:  # ParseError, DefusedXmlException …: from untrusted input, all a refusal
        raise TenpayProtocolError("malformed XML") from None
    if root.tag != root_tag:
        raise TenpayProtocolError(f"root element is not <{root_tag}>")
    if (root.text or "").strip():
        raise TenpayProtocolError("stray text in the root element")
    fields: dict[str, str] = {}
    for child in root:
        if not isinstance(child.tag, str) or not _FIELD_NAME_RE.fullmatch(child.tag):
            raise TenpayProtocolError("unexpected element name")
        if len(child):
            raise TenpayProtocolError(f"nested elements in {child.tag}")
        # Two `sign` or two `total_fee` could mean one thing to the verifier and another to
        # the code reading the amount; WeChat never repeats a field.
        if child.tag in fields:
            raise TenpayProtocolError(f"duplicate field {child.tag}")
        if (child.tail or "").strip():
            raise TenpayProtocolError("stray text between fields")
        fields[child.tag] = child.text or ""
    return fields


def parse_xml(body: bytes, *, max_bytes: int = MAX_XML_BYTES) -> dict[str, str]:
    """A flat v2 `<xml>` document → {field: text}, values exactly as received ('' if empty).
    Raises only TenpayProtocolError."""
    return _parse_flat(body, root_tag="xml", max_bytes=max_bytes)


# --- refund notify req_info (§1.9) ---------------------------------------------------------------


def _req_info_cipher(api_key: str) -> Cipher[modes.ECB]:
    # The key is the 32 ASCII characters of the lowercase hex MD5, not the 16 digest bytes.
    key = hashlib.md5(api_key.encode()).hexdigest().encode("ascii")  # noqa: S324 - protocol key
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 - ECB is the protocol (§1.9)


def decrypt_req_info(req_info: str, api_key: str) -> dict[str, str]:
    """Refund notify `req_info` → the fields of its `<root>` document."""
    try:
        encrypted = base64.b64decode(req_info, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise TenpayProtocolError("req_info is not base64") from None
    if not encrypted or len(encrypted) % _AES_BLOCK_BYTES:
        raise TenpayProtocolError("req_info is not whole AES blocks")
    decryptor = _req_info_cipher(api_key).decryptor()
    padded = decryptor.update(encrypted) + decryptor.finalize()
    unpadder = padding.PKCS7(_AES_BLOCK_BYTES * 8).unpadder()
    try:
        plaintext = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise TenpayProtocolError("req_info padding is invalid") from None
    return _parse_flat(plaintext, root_tag="root", max_bytes=MAX_XML_BYTES)


def encrypt_req_info(fields: Mapping[str, str], api_key: str) -> str:
    """The inverse of decrypt_req_info, for the simulator: `<root>` with every value in CDATA."""
    plaintext = _render("root", {name: _as_text(name, value) for name, value in fields.items()})
    padder = padding.PKCS7(_AES_BLOCK_BYTES * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = _req_info_cipher(api_key).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


__all__ = [
    "BEIJING",
    "MAX_XML_BYTES",
    "SIGN_HMAC",
    "SIGN_MD5",
    "SIGN_TYPES",
    "TenpayProtocolError",
    "decrypt_req_info",
    "encrypt_req_info",
    "fen",
    "format_beijing_compact",
    "format_beijing_dashed",
    "jsapi_params_v2",
    "nonce_str",
    "notify_reply",
    "parse_beijing_compact",
    "parse_beijing_dashed",
    "parse_xml",
    "sign_string",
    "sign_v2",
    "signed",
    "to_xml",
    "verify_v2",
]
