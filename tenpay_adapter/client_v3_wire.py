"""The v3 wire under `TenpayV3Channel` (spec §2.1, §2.2): signing our requests with the merchant
key, checking every answer and notify against a platform key, and keeping those keys, refreshed
from `GET /v3/certificates` when an unknown serial shows up. Plus the typed JSON readers.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from payments.channels import ChannelError, ChannelRetryableError
from tenpay_adapter.client import (
    bad_response,
    channel_error,
    owned_http_client,
    reading_answer,
    secret,
    send,
)
from tenpay_adapter.config import TenpayAccount
from tenpay_adapter.errors import TenpayProtocolError
from tenpay_adapter.v3_signing import (
    SIGNTEST_PREFIX,
    aes_gcm_decrypt,
    authorization_header,
    certificate_serial,
    load_private_key,
    load_public_key,
    parse_rfc3339,
    same_serial,
    verify_response,
)

logger = logging.getLogger(__name__)

# An unknown Wechatpay-Serial triggers a certificate download; anyone can send a notify with a
# made-up serial, so at most one download per this many seconds.
REFRESH_INTERVAL_S = 60.0
_PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"

PlatformKeys = Mapping[str, RSAPublicKey]


class V3Wire:
    """Thread-safe: the httpx client is, and the platform keys are only ever replaced whole."""

    def __init__(
        self,
        account: TenpayAccount,
        *,
        http: httpx.Client | None,
        clock: Callable[[], float],
    ) -> None:
        self._account = account
        self._http = http if http is not None else owned_http_client(self, account)
        self._clock = clock
        self.base_url = account.base_url.rstrip("/")
        self.apiv3_key = secret(account.apiv3_key, "apiv3_key")
        self.private_key = load_private_key(
            secret(account.merchant_private_key_pem, "merchant_private_key_pem")
        )
        self._platform_keys: PlatformKeys = _configured_platform_keys(account)
        self._refreshed_at: float | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A verified 2xx answer's JSON object ({} for 204), or the call's ChannelError."""
        url = httpx.URL(self.base_url + path + (f"?{urlencode(query)}" if query else ""))
        # Compact and unescaped, as WeChat's SDKs send it; what is signed is what is sent.
        content = b"" if body is None else _compact_json(body)
        response = self.exchange(method, url, content)
        status = response.status_code
        if status >= 500:  # a gateway error need not be signed; it settles nothing anyway
            raise ChannelRetryableError(f"WeChat Pay answered HTTP {status}", code=f"HTTP_{status}")
        problem = self.signature_problem(_lower(response.headers), response.content)
        if problem is not None:
            raise bad_response(f"answer not trusted: {problem}")
        with reading_answer():
            data = json_object(json.loads(response.content), "answer") if response.content else {}
        if response.is_success:
            return data
        code, message = data.get("code"), data.get("message")
        if not isinstance(code, str) or not code:
            code = "FREQUENCY_LIMITED" if status == 429 else f"HTTP_{status}"
        raise channel_error(code, message if isinstance(message, str) else "")

    def exchange(self, method: str, url: httpx.URL, content: bytes) -> httpx.Response:
        """One signed exchange, its answer unchecked (the bill file's is not signed)."""
        # Sign the path and query exactly as httpx will send them (spec §2.1).
        authorization = authorization_header(
            mchid=self._account.mchid,
            serial_no=self._account.merchant_serial_no or "",
            private_key=self.private_key,
            method=method,
            url=url.raw_path.decode("ascii"),
            body=content,
            timestamp=str(int(self._clock())),
            nonce=secrets.token_hex(16),
        )
        headers = {"Authorization": authorization, "Accept": "application/json"}
        if content:
            headers["Content-Type"] = "application/json"
        request = self._http.build_request(method, url, content=content or None, headers=headers)
        return send(self._http, request)

    def signature_problem(
        self, headers: Mapping[str, str], body: bytes, *, keys: PlatformKeys | None = None
    ) -> str | None:
        """Why this answer or notify is not WeChat Pay's, or None when it is (spec §2.2).
        `headers` have lower-case names; `keys` given: those keys and no refresh."""
        signature = headers.get("wechatpay-signature", "")
        timestamp = headers.get("wechatpay-timestamp", "")
        serial = headers.get("wechatpay-serial", "")
        if not signature or not serial:
            return "unsigned"
        if signature.startswith(SIGNTEST_PREFIX):
            return "a signature probe (WECHATPAY/SIGNTEST)"
        # Before the key lookup, so a stale replay cannot trigger a certificate download.
        window = self._account.notify_window_s
        if not timestamp.isdigit() or abs(self._clock() - int(timestamp)) > window:
            return "Wechatpay-Timestamp outside the accepted window"
        key = _find_key(keys, serial) if keys is not None else self._platform_key(serial)
        if key is None:
            return f"unknown Wechatpay-Serial {serial!r}"
        if not verify_response(
            public_key=key,
            timestamp=timestamp,
            nonce=headers.get("wechatpay-nonce", ""),
            body=body,
            signature_b64=signature,
        ):
            return "the signature does not verify"
        return None

    # -- platform keys ---------------------------------------------------------------------

    def _platform_key(self, serial: str) -> RSAPublicKey | None:
        key = _find_key(self._platform_keys, serial)
        if key is not None or serial.startswith(_PUBLIC_KEY_ID_PREFIX):
            return key  # a public key id is configured, never downloaded
        now = time.monotonic()
        if self._refreshed_at is None or now - self._refreshed_at >= REFRESH_INTERVAL_S:
            self._refreshed_at = now
            self._refresh_platform_keys()
        return _find_key(self._platform_keys, serial)

    def _refresh_platform_keys(self) -> None:
        """Each certificate is sealed with our APIv3 key, so opening it proves its origin; the
        answer must also verify with one of them. Failing leaves the serial unknown, which
        refuses the message at hand."""
        try:
            response = self.exchange("GET", httpx.URL(self.base_url + "/v3/certificates"), b"")
            if response.status_code != 200:
                raise bad_response(f"HTTP {response.status_code}")
            fresh = self._open_certificates(response.content)
        except (ChannelError, ValueError) as exc:
            logger.warning("WeChat Pay platform certificates not refreshed: %s", exc)
            return
        keys = {**self._platform_keys, **fresh}
        problem = self.signature_problem(_lower(response.headers), response.content, keys=keys)
        if problem is not None:
            logger.warning("WeChat Pay platform certificates refused: %s", problem)
            return
        self._platform_keys = keys

    def _open_certificates(self, content: bytes) -> dict[str, RSAPublicKey]:
        items = json_object(json.loads(content), "certificates").get("data")
        if not isinstance(items, list):
            raise TenpayProtocolError("certificates answer lacks data")
        found: dict[str, RSAPublicKey] = {}
        for item in items:
            sealed = json_object(json_object(item, "item").get("encrypt_certificate"), "sealed")
            pem = aes_gcm_decrypt(
                apiv3_key=self.apiv3_key,
                nonce=text(sealed, "nonce"),
                ciphertext_b64=text(sealed, "ciphertext"),
                associated_data=text(sealed, "associated_data"),
            )
            serial = certificate_serial(pem)
            if not same_serial(serial, text(item, "serial_no")):
                raise TenpayProtocolError("a certificate is not the serial it is listed under")
            found[serial] = load_public_key(pem)
        return found


def _compact_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _lower(headers: httpx.Headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _find_key(keys: PlatformKeys, serial: str) -> RSAPublicKey | None:
    return next((key for known, key in keys.items() if same_serial(known, serial)), None)


def _configured_platform_keys(account: TenpayAccount) -> dict[str, RSAPublicKey]:
    keys: dict[str, RSAPublicKey] = {}
    if account.platform_certificate_pem:
        pem = account.platform_certificate_pem
        keys[certificate_serial(pem)] = load_public_key(pem)
    if account.platform_public_key_pem:
        if not account.platform_public_key_id:
            raise ValueError(f"account {account.mchid}: platform_public_key_pem needs its id")
        keys[account.platform_public_key_id] = load_public_key(account.platform_public_key_pem)
    return keys


# -- reading JSON (raising TenpayProtocolError, a ValueError) -----------------------------------


def json_object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TenpayProtocolError(f"{where} is not a JSON object")
    return value


def text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise TenpayProtocolError(f"{name} is missing")
    return value


def optional_text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def fen(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    # bool is an int in Python; amounts are JSON integers of fen (spec §2.4).
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TenpayProtocolError(f"{name} is not an amount in fen")
    return value


def rfc3339_time(data: Mapping[str, Any], name: str) -> datetime | None:
    value = optional_text(data, name)
    return parse_rfc3339(value) if value is not None else None
