"""WeChat signatures and WXBizMsgCrypt (spec/wechat-official-account.md §2, §6, §8).

Pure functions, checked against `wechat-vectors.json`. Nothing here logs, and no message of an
exception carries the token, the key or a plaintext (spec §9.13).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import string
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# WXBizMsgCrypt pads to 32-byte blocks, not AES's 16: the corp sample has pad 30 (spec §6, §9.5).
PAD_BLOCK_BYTES = 32
RANDOM_PREFIX_BYTES = 16
_LENGTH_BYTES = 4
_AES_BLOCK_BYTES = 16
_KEY_BYTES = 32
_HEADER_BYTES = RANDOM_PREFIX_BYTES + _LENGTH_BYTES
# Standard alphabet only, padded, no whitespace: what every WXBizMsgCrypt encoder emits.
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# The prefix only has to be unpredictable; printable characters, as the official samples use,
# keep it readable by decoders that turn the whole buffer into text before slicing it.
_PREFIX_ALPHABET = string.ascii_letters + string.digits
# The reply envelope puts TimeStamp bare and Nonce in CDATA (spec §6); refuse anything that
# could break out of either.
_TIMESTAMP_RE = re.compile(r"[0-9]{1,20}")
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class WeChatSignatureError(Exception):
    """A `signature` or `msg_signature` does not match."""


class WeChatDecryptError(Exception):
    """An `Encrypt` value that is not a message for this account; the reason is short."""


def _sha1_hex(text: str) -> str:
    # SHA-1 is what the protocol mandates (spec §2, §6, §8); it is not our choice.
    return hashlib.sha1(text.encode("utf-8")).hexdigest()  # noqa: S324


def plain_signature(token: str, timestamp: str, nonce: str) -> str:
    # Plain string order, never numeric (spec §2, vector lexicographic_sort_pitfall); code point
    # order of `str` is the byte order of their UTF-8.
    return _sha1_hex("".join(sorted((token, timestamp, nonce))))


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    # The 3-part signature with the ciphertext as a fourth part (spec §6).
    return _sha1_hex("".join(sorted((token, timestamp, nonce, encrypt))))


def signatures_match(expected: str, given: str) -> bool:
    # compare_digest refuses non-ASCII str, and a signature is ASCII hex: anything else is
    # simply a mismatch, never an exception a caller would have to turn into a 500.
    try:
        expected_bytes = expected.encode("ascii")
        given_bytes = given.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        return False
    return hmac.compare_digest(expected_bytes, given_bytes)


def jssdk_signature(jsapi_ticket: str, noncestr: str, timestamp: str, url: str) -> str:
    # Keys in ASCII order, values not URL-encoded, the URL without its fragment (spec §8).
    page_url = url.split("#", 1)[0]
    return _sha1_hex(
        f"jsapi_ticket={jsapi_ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page_url}"
    )


def timestamp_is_fresh(timestamp: str, *, now: int, max_skew_s: int) -> bool:
    # WeChat bounds nothing; this project refuses requests outside the window (spec §9.1).
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        return False
    return abs(now - int(timestamp)) <= max_skew_s


@dataclass(frozen=True)
class Decrypted:
    plaintext: str
    random_prefix: bytes
    receive_id: str


def _strict_b64decode(text: str) -> bytes:
    if len(text) % 4 or not _BASE64_RE.fullmatch(text):
        raise WeChatDecryptError("Encrypt is not base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WeChatDecryptError("Encrypt is not base64") from None
    # Encoders never set the spare bits; a value that does was not made by one.
    if base64.b64encode(raw).decode("ascii") != text:
        raise WeChatDecryptError("Encrypt is not canonical base64")
    return raw


def _pad(buffer: bytes) -> bytes:
    # A full block is added when already aligned, so the pad is always 1..32 (spec §6).
    pad = PAD_BLOCK_BYTES - len(buffer) % PAD_BLOCK_BYTES
    return buffer + bytes((pad,)) * pad


def _unpad(buffer: bytes) -> bytes:
    pad = buffer[-1]
    # wechatpy reads a pad above 32 as 0 (spec §9.5); here it is a failure, like unequal bytes.
    if not 1 <= pad <= PAD_BLOCK_BYTES or pad > len(buffer):
        raise WeChatDecryptError("bad padding")
    if buffer[-pad:] != bytes((pad,)) * pad:
        raise WeChatDecryptError("bad padding")
    return buffer[:-pad]


# The prefix from random bytes in one call, not 16 secrets.choice calls (a tenth of the cost):
# the 248 byte values below 4 x 62 map evenly onto the 62 symbols, the other 8 are dropped, so
# every symbol stays equally likely.
_PREFIX_TABLE = bytes(ord(_PREFIX_ALPHABET[n % len(_PREFIX_ALPHABET)]) for n in range(256))
_PREFIX_REJECTED = bytes(range(4 * len(_PREFIX_ALPHABET), 256))


def _random_prefix() -> bytes:
    prefix = b""
    while len(prefix) < RANDOM_PREFIX_BYTES:
        prefix += secrets.token_bytes(RANDOM_PREFIX_BYTES).translate(
            _PREFIX_TABLE, _PREFIX_REJECTED
        )
    return prefix[:RANDOM_PREFIX_BYTES]


class WXBizMsgCrypt:
    """AES-256-CBC with IV = key[:16], as the WeChat servers do it (spec §6).

    `appid` is the receive id checked in every trailer: the AppID of an Official Account, or
    the CorpID for 企业号/WeCom.
    """

    def __init__(self, *, token: str, aes_key: bytes, appid: str) -> None:
        if len(aes_key) != _KEY_BYTES:
            raise ValueError("aes_key must be 32 bytes (the decoded EncodingAESKey)")
        if not appid:
            raise ValueError("appid is required: every message ends with it")
        self._token = token
        self._key = aes_key
        self._appid = appid
        self._appid_bytes = appid.encode("utf-8")

    def __repr__(self) -> str:
        # Never the key or the token: this object ends up in tracebacks.
        return f"WXBizMsgCrypt(appid={self._appid!r})"

    def _cipher(self) -> Cipher[modes.CBC]:
        # The IV is fixed, which is what makes the re-encryption vectors deterministic (spec §6).
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:_AES_BLOCK_BYTES]))

    def encrypt(self, plaintext: str, *, random_prefix: bytes | None = None) -> str:
        prefix = _random_prefix() if random_prefix is None else random_prefix
        if len(prefix) != RANDOM_PREFIX_BYTES:
            raise ValueError("random_prefix must be 16 bytes")
        message = plaintext.encode("utf-8")
        # The length is of the UTF-8 bytes, not of the characters (spec §6, §9.6).
        buffer = prefix + struct.pack(">I", len(message)) + message + self._appid_bytes
        encryptor = self._cipher().encryptor()
        ciphertext = encryptor.update(_pad(buffer)) + encryptor.finalize()
        return base64.b64encode(ciphertext).decode("ascii")

    def decrypt(self, encrypt_b64: str) -> Decrypted:
        # Every check of spec §6 "Decrypting", failing closed: a wrong key must come out as an
        # authentication failure, not as struct.error or UnicodeDecodeError (spec §9.5).
        if not isinstance(encrypt_b64, str):
            raise WeChatDecryptError("Encrypt is not text")
        ciphertext = _strict_b64decode(encrypt_b64)
        if not ciphertext or len(ciphertext) % _AES_BLOCK_BYTES:
            raise WeChatDecryptError("Encrypt is not whole AES blocks")
        decryptor = self._cipher().decryptor()
        body = _unpad(decryptor.update(ciphertext) + decryptor.finalize())
        if len(body) < _HEADER_BYTES:
            raise WeChatDecryptError("message too short")
        (length,) = struct.unpack(">I", body[RANDOM_PREFIX_BYTES:_HEADER_BYTES])
        if length > len(body) - _HEADER_BYTES:
            raise WeChatDecryptError("length field out of range")
        message = body[_HEADER_BYTES : _HEADER_BYTES + length]
        trailer = body[_HEADER_BYTES + length :]
        if not hmac.compare_digest(trailer, self._appid_bytes):
            raise WeChatDecryptError("message is for another AppID")
        try:
            plaintext = message.decode("utf-8")
        except UnicodeDecodeError:
            raise WeChatDecryptError("message is not UTF-8") from None
        return Decrypted(
            plaintext=plaintext,
            random_prefix=body[:RANDOM_PREFIX_BYTES],
            receive_id=self._appid,
        )

    def check_msg_signature(self, given: str, *, timestamp: str, nonce: str, encrypt: str) -> None:
        # Before decrypting: the 4-part signature covers the ciphertext (spec §6 step 1, §9.2).
        expected = msg_signature(self._token, timestamp, nonce, encrypt)
        if not signatures_match(expected, given):
            raise WeChatSignatureError("msg_signature does not match")

    def decrypt_verified(
        self, encrypt_b64: str, *, msg_signature: str, timestamp: str, nonce: str
    ) -> Decrypted:
        self.check_msg_signature(
            msg_signature, timestamp=timestamp, nonce=nonce, encrypt=encrypt_b64
        )
        return self.decrypt(encrypt_b64)

    def encrypted_reply_xml(
        self,
        plaintext: str,
        *,
        timestamp: str,
        nonce: str,
        random_prefix: bytes | None = None,
    ) -> str:
        # The passive-reply envelope of spec §6; the sample reuses the request's timestamp/nonce.
        if not _TIMESTAMP_RE.fullmatch(timestamp):
            raise ValueError("timestamp must be decimal digits")
        if not _NONCE_RE.fullmatch(nonce):
            raise ValueError("nonce must be 1 to 64 letters, digits, '_' or '-'")
        encrypt = self.encrypt(plaintext, random_prefix=random_prefix)
        signature = msg_signature(self._token, timestamp, nonce, encrypt)
        return (
            f"<xml>\n<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n"
            f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>\n"
            f"<TimeStamp>{timestamp}</TimeStamp>\n"
            f"<Nonce><![CDATA[{nonce}]]></Nonce>\n</xml>"
        )
