"""WeChat Pay API v3 codecs: RSA-SHA256 request and response signatures, AEAD_AES_256_GCM
resources, JSAPI paySign (spec/payment-channels.md §2, §6). Pure: stdlib and `cryptography`.

Requests are signed with the merchant key; responses and notifies are verified with the
platform key (§2.2), always over the raw body bytes: re-serialised JSON does not verify.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenpay_adapter.errors import TenpayProtocolError
from tenpay_adapter.timefmt import BEIJING, format_rfc3339_beijing, parse_rfc3339

AUTH_SCHEME: Final = "WECHATPAY2-SHA256-RSA2048"
# Probe traffic (§2.2): must fail verification and be answered non-2xx.
SIGNTEST_PREFIX: Final = "WECHATPAY/SIGNTEST/"
APIV3_KEY_BYTES: Final = 32
GCM_NONCE_BYTES: Final = 12
GCM_TAG_BYTES: Final = 16
# The items of the Authorization header, in the order WeChat's docs and SDKs write them.
_AUTH_ITEMS: Final = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")
_AUTH_ITEM_RE = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')


def _pem_bytes(pem: str | bytes) -> bytes:
    return pem.encode("ascii") if isinstance(pem, str) else pem


# --- keys and certificates ---------------------------------------------------------------------


def load_private_key(pem: str | bytes) -> RSAPrivateKey:
    """apiclient_key.pem: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`), unencrypted."""
    try:
        key = serialization.load_pem_private_key(_pem_bytes(pem), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise TenpayProtocolError("not an unencrypted PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise TenpayProtocolError("WeChat Pay v3 keys are RSA")
    return key


def _load_certificate(cert_pem: str | bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_pem_bytes(cert_pem))
    except (ValueError, UnicodeEncodeError):
        raise TenpayProtocolError("not a PEM X.509 certificate") from None


def load_public_key(pem: str | bytes) -> RSAPublicKey:
    """A platform certificate (`CERTIFICATE`) or a WeChat Pay public key (`PUBLIC KEY`)."""
    data = _pem_bytes(pem)
    key: object
    if b"-----BEGIN CERTIFICATE-----" in data:
        key = _load_certificate(data).public_key()
    else:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnicodeEncodeError):
            raise TenpayProtocolError("not a PEM public key") from None
    if not isinstance(key, RSAPublicKey):
        raise TenpayProtocolError("WeChat Pay v3 keys are RSA")
    return key


def certificate_serial(cert_pem: str | bytes) -> str:
    """The serial as `serial_no` and `Wechatpay-Serial` carry it: upper-case hex."""
    # No zero-padding: SDKs disagree on a leading zero nibble, so compare with same_serial.
    return format(_load_certificate(cert_pem).serial_number, "X")


def same_serial(a: str, b: str) -> bool:
    return a.upper().lstrip("0") == b.upper().lstrip("0")


# --- RSA signatures (§2.1, §2.2) ----------------------------------------------------------------


def _line(name: str, value: str) -> str:
    # A newline inside a field would shift the lines and let one field pose as another.
    if "\n" in value:
        raise ValueError(f"{name} must not contain a newline")
    return value + "\n"


def _body_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def request_message(method: str, url: str, timestamp: str, nonce: str, body: bytes | str) -> bytes:
    """METHOD, path?query, TIMESTAMP, NONCE, BODY: five lines, each ending in \\n (§2.1)."""
    head = (
        _line("method", method.upper())
        + _line("url", url)
        + _line("timestamp", timestamp)
        + _line("nonce", nonce)
    )
    return head.encode() + _body_bytes(body) + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """TIMESTAMP, NONCE, BODY over the raw body; a 204 gives a last line of just \\n (§2.2)."""
    head = _line("timestamp", timestamp) + _line("nonce", nonce)
    return head.encode() + _body_bytes(body) + b"\n"


def rsa_sign(private_key: RSAPrivateKey, message: bytes) -> str:
    # PKCS#1 v1.5 is deterministic, so the vectors can be compared byte for byte.
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa_verify(public_key: RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except Exception:  # InvalidSignature, bad base64, a non-str: all just "does not verify"
        return False
    return True


def authorization_header(
    *,
    mchid: str,
    serial_no: str,
    private_key: RSAPrivateKey,
    method: str,
    url: str,
    body: bytes | str,
    timestamp: str,
    nonce: str,
) -> str:
    signature = rsa_sign(private_key, request_message(method, url, timestamp, nonce, body))
    values = {
        "mchid": mchid,
        "nonce_str": nonce,
        "signature": signature,
        "timestamp": timestamp,
        "serial_no": serial_no,
    }
    for name, value in values.items():
        if '"' in value or "," in value:
            raise ValueError(f"{name} cannot be quoted in an Authorization header")
    items = ",".join(f'{name}="{values[name]}"' for name in _AUTH_ITEMS)
    return f"{AUTH_SCHEME} {items}"


def parse_authorization(header: str) -> dict[str, str]:
    """The five items of a v3 Authorization header, in any order (the simulator's side)."""
    scheme, _, rest = header.partition(" ")
    if scheme != AUTH_SCHEME:
        raise TenpayProtocolError("not a WECHATPAY2-SHA256-RSA2048 Authorization header")
    items: dict[str, str] = {}
    # No item value may contain a comma: base64, digits and hex never do.
    for part in rest.split(","):
        match = _AUTH_ITEM_RE.fullmatch(part)
        if match is None:
            raise TenpayProtocolError("malformed Authorization item")
        name, value = match.groups()
        if name not in _AUTH_ITEMS or name in items:
            raise TenpayProtocolError("unknown or repeated Authorization item")
        items[name] = value
    if len(items) != len(_AUTH_ITEMS):
        raise TenpayProtocolError("Authorization header lacks an item")
    return items


def sign_response(*, private_key: RSAPrivateKey, timestamp: str, nonce: str, body: bytes) -> str:
    return rsa_sign(private_key, response_message(timestamp, nonce, body))


def verify_response(
    *, public_key: RSAPublicKey, timestamp: str, nonce: str, body: bytes, signature_b64: str
) -> bool:
    """Checks the signature only; the caller enforces the timestamp window and the notify-id
    dedup (§2.2, §6), and picks `public_key` by Wechatpay-Serial."""
    if not isinstance(signature_b64, str) or signature_b64.startswith(SIGNTEST_PREFIX):
        return False
    try:
        message = response_message(timestamp, nonce, body)
    except ValueError:
        return False
    return rsa_verify(public_key, message, signature_b64)


# --- AEAD_AES_256_GCM resources (§2.3) ---------------------------------------------------------


def _gcm(apiv3_key: str, nonce: str) -> tuple[AESGCM, bytes]:
    # The key and the nonce are used as their ASCII bytes, not decoded from hex or base64.
    try:
        key = apiv3_key.encode("ascii")
        nonce_bytes = nonce.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        raise TenpayProtocolError("APIv3 key and nonce must be ASCII text") from None
    if len(key) != APIV3_KEY_BYTES:
        raise TenpayProtocolError("the APIv3 key must be 32 characters")
    if len(nonce_bytes) != GCM_NONCE_BYTES:
        raise TenpayProtocolError("the resource nonce must be 12 characters")
    return AESGCM(key), nonce_bytes


def aes_gcm_decrypt(
    *, apiv3_key: str, nonce: str, ciphertext_b64: str, associated_data: str
) -> bytes:
    cipher, nonce_bytes = _gcm(apiv3_key, nonce)
    try:
        ciphertext = base64.b64decode(ciphertext_b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise TenpayProtocolError("resource ciphertext is not base64") from None
    if len(ciphertext) < GCM_TAG_BYTES:
        raise TenpayProtocolError("resource ciphertext is shorter than its tag")
    try:
        return cipher.decrypt(nonce_bytes, ciphertext, associated_data.encode())
    except InvalidTag:
        raise TenpayProtocolError("resource does not authenticate (key, nonce or AAD)") from None


def aes_gcm_encrypt(*, apiv3_key: str, nonce: str, plaintext: bytes, associated_data: str) -> str:
    """For the simulator: base64(ciphertext || 16-byte tag), as WeChat sends it."""
    cipher, nonce_bytes = _gcm(apiv3_key, nonce)
    sealed = cipher.encrypt(nonce_bytes, plaintext, associated_data.encode())
    return base64.b64encode(sealed).decode("ascii")


# --- JSAPI bridge (§2.5) -----------------------------------------------------------------------


def jsapi_params_v3(
    *, appid: str, prepay_id: str, private_key: RSAPrivateKey, timestamp: str, nonce_str: str
) -> dict[str, str]:
    package = f"prepay_id={prepay_id}"
    # signType is sent but not signed; the message is four lines, each ending in \n.
    message = (
        _line("appId", appid)
        + _line("timeStamp", timestamp)
        + _line("nonceStr", nonce_str)
        + _line("package", package)
    )
    return {
        "appId": appid,
        "timeStamp": timestamp,
        "nonceStr": nonce_str,
        "package": package,
        "signType": "RSA",
        "paySign": rsa_sign(private_key, message.encode()),
    }


__all__ = [
    "APIV3_KEY_BYTES",
    "AUTH_SCHEME",
    "BEIJING",
    "SIGNTEST_PREFIX",
    "TenpayProtocolError",
    "aes_gcm_decrypt",
    "aes_gcm_encrypt",
    "authorization_header",
    "certificate_serial",
    "format_rfc3339_beijing",
    "jsapi_params_v3",
    "load_private_key",
    "load_public_key",
    "parse_authorization",
    "parse_rfc3339",
    "request_message",
    "response_message",
    "rsa_sign",
    "rsa_verify",
    "same_serial",
    "sign_response",
    "verify_response",
]
