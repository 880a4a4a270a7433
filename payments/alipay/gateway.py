"""The Alipay gateway (`gateway.do`, spec §3.1–§3.4): one signed form POST per call, one verified
answer back, its `code` mapped onto the channel errors.

Built on alipay-sdk-python as far as it works (spec §3.5), and no further. Each of its defects is
handled here, on purpose:

1. `WebUtils.get_http_connection` ignores the port of `server_url` (and raises TypeError on any
   URL carrying one), and a non-200 status raises TypeError instead of ResponseException: the
   SDK never touches the network. The HTTP is ours, httpx with explicit timeouts.
2. It signs with a PKCS#1 key only (a PKCS#8 key fails as "request sign failed"), in pure-Python
   `rsa` (about 32 ms per request, holding the GIL): the key from settings, PKCS#1 or PKCS#8, is
   loaded once with `cryptography`, which signs the SDK's sign content to the very same bytes
   (tests/alipay/test_signing.py holds the SDK's signer to ours on the vectors).
3. It stamps `timestamp` with `datetime.now()`, host local time, 8 hours off on a UTC host: we
   build the common parameters ourselves, with Beijing time from our (aware) clock.
4. `AlipayResponse.is_success()` only means "no sub_code", so 10003 passes as success: the
   response classes are not used; `code == "10000"` is checked explicitly.
5. There is no async-notify helper: `notify.py` builds the content itself (sign and sign_type
   dropped) and verifies it.
6. Every reply must be signed, errors included, and `verify_with_rsa` accepts SHA-1 signatures
   under RSA2: answers and notifies are verified with OUR verifier (`signing.rsa2_verify`,
   SHA-256 only) over the exact `…_response` text; an unsigned or badly signed answer is
   unverifiable, hence retryable (the call may have taken effect: settle by query).

So the SDK does what it does right, the sign content (`get_sign_content`), and is the reference
our signer is tested against. Only that name is imported; the SDK's ~36,600 request/response/model
modules stay unloaded.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from alipay.aop.api.util.SignatureUtils import get_sign_content

from payments.alipay.config import AlipaySettings
from payments.alipay.errors import AlipayProtocolError
from payments.alipay.signing import (
    beijing_timestamp,
    fen_of,
    load_private_key,
    load_public_key,
    rsa2_sign,
    rsa2_verify,
    signed_response_text,
)
from payments.channels import (
    ChannelDeclinedError,
    ChannelError,
    ChannelRetryableError,
    ChannelUnreachableError,
    TradeAlreadyPaidError,
)

SUCCESS: Final = "10000"
PAYING: Final = "10003"  # spec §3.4: waiting for the buyer's password
CHARSET: Final = "utf-8"
# Outcome unknown: retry with the same parameters, or query (spec §3.4).
_RETRYABLE_SUB_CODES: Final = frozenset(
    {"ACQ.SYSTEM_ERROR", "isp.unknow-error", "aop.unknow-error"}
)
_UNAVAILABLE: Final = "20000"


def bad_response(message: str) -> ChannelRetryableError:
    """An answer we cannot trust or read. The call may still have taken effect, so this is never
    a decline: the caller settles it by querying."""
    return ChannelRetryableError(message, code="BAD_RESPONSE")


@contextmanager
def reading_answer() -> Iterator[None]:
    """Inside: a verified answer is read; a shape we cannot read is a `bad_response`."""
    try:
        yield
    except (ValueError, KeyError, TypeError) as exc:  # AlipayProtocolError is a ValueError
        raise bad_response(f"unreadable answer: {exc}") from exc


def text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise AlipayProtocolError(f"{name} is missing")
    return value


def optional_text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def amount_fen(data: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    """A yuan field as fen. Absent is None unless required; present, it must be a yuan string
    (a JSON number is refused by `fen_of`, never trusted)."""
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise AlipayProtocolError(f"{name} is missing")
        return None
    return fen_of(value)


def refusal(data: Mapping[str, Any]) -> ChannelError:
    """The error for an answer whose `code` is not 10000 (spec §3.4's table)."""
    code, sub_code = str(data.get("code", "")), str(data.get("sub_code") or "")
    detail = " ".join(str(data.get(k) or "") for k in ("msg", "sub_msg")).strip()
    message = f"Alipay answered {code} {sub_code}: {detail}".strip()
    if code == _UNAVAILABLE or sub_code in _RETRYABLE_SUB_CODES:
        return ChannelRetryableError(message, code=sub_code or code)
    if code == PAYING:  # in progress: only a query can tell how it ends
        return ChannelRetryableError(message, code=PAYING)
    if sub_code == "ACQ.TRADE_HAS_SUCCESS":
        return TradeAlreadyPaidError(message, code=sub_code)
    if code.startswith("400") or code == "20001":
        return ChannelDeclinedError(message, code=sub_code or code)
    return bad_response(f"unknown answer code {code!r}")  # not known final: settle by query


class AlipayGateway:
    """Signs, sends, verifies. Thread-safe: nothing mutable after construction."""

    def __init__(
        self,
        settings: AlipaySettings,
        *,
        http: httpx.Client | None,
        clock: Callable[[], datetime],
        owner: object,
    ) -> None:
        if (
            settings.app_id is None
            or settings.app_private_key_pem is None
            or settings.alipay_public_key_pem is None
        ):
            raise ValueError("Alipay needs app_id, app_private_key_pem and alipay_public_key_pem")
        self.app_id = settings.app_id
        self.gateway_url = settings.gateway_url
        private_key = load_private_key(settings.app_private_key_pem.get_secret_value())
        # Defect 2: the SDK reads PKCS#1 only, whatever form settings hold.
        self._private_key = private_key
        self.alipay_key = load_public_key(settings.alipay_public_key_pem)
        self._clock = clock
        if http is None:
            http = _default_http_client(settings.timeout_s)
            # Channels live as long as the app and have no close of their own (`close` closes
            # trades): the pooled sockets go when the channel does, not to the GC's warnings.
            weakref.finalize(owner, http.close)
        self.http = http

    def now(self) -> datetime:
        return self._clock()

    # -- requests ----------------------------------------------------------------------------

    def signed_params(
        self,
        method: str,
        biz: Mapping[str, Any],
        *,
        notify_url: str | None = None,
        return_url: str | None = None,
    ) -> dict[str, str]:
        """The common parameters (spec §3.1) plus `biz_content`, and their `sign`."""
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": CHARSET,
            "sign_type": "RSA2",
            # Defect 3: Beijing time from our aware clock, never the host's local time.
            "timestamp": beijing_timestamp(self._clock()),
            "version": "1.0",
            # Compact and key-sorted, as the SDK's models serialise (vector request_rsa2).
            "biz_content": json.dumps(
                biz, ensure_ascii=False, separators=(",", ":"), sort_keys=True
            ),
        }
        if notify_url:
            params["notify_url"] = notify_url
        if return_url:
            params["return_url"] = return_url
        params["sign"] = self._sdk_sign(params)
        return params

    def _sdk_sign(self, params: Mapping[str, str]) -> str:
        # get_sign_content joins whatever it is given; the request rule (drop sign and empty
        # values, keep sign_type: spec §3.2) is applied first, as the SDK's own client does.
        kept = {name: value for name, value in params.items() if name != "sign" and value != ""}
        # The SDK builds the content; the signature is made with `cryptography`, which gives
        # the very same bytes (PKCS#1 v1.5 is deterministic: tests/alipay/test_signing.py checks
        # the SDK's `sign_with_rsa2` against ours on the vectors). The SDK's signer is pure-Python
        # `rsa`: about 32 ms per request holding the GIL, which would stall every other request
        # of the worker, the WeChat webhook's included.
        return rsa2_sign(self._private_key, get_sign_content(kept))

    def page_url(self, params: Mapping[str, str]) -> str:
        """A signed GET to the gateway (what the SDK's `page_execute(request, "GET")` returns)."""
        return f"{self.gateway_url.split('?', 1)[0]}?{urlencode(params)}"

    def call(
        self,
        method: str,
        biz: Mapping[str, Any],
        *,
        notify_url: str | None = None,
        accept: frozenset[str] = frozenset({SUCCESS}),
    ) -> dict[str, Any]:
        """The verified `…_response` object of a call whose code is in `accept`; any other code
        raises its `refusal`."""
        params = self.signed_params(method, biz, notify_url=notify_url)
        # Defect 1: our HTTP. Everything goes in the form body; the gateway merges the query
        # string and the body (spec §3.1), so either placement is read alike.
        response = self.exchange(self.http.build_request("POST", self.gateway_url, data=params))
        if response.status_code != 200:
            raise ChannelRetryableError(
                f"Alipay answered HTTP {response.status_code}", code=f"HTTP_{response.status_code}"
            )
        data = self._verified(response.content, method)
        code = str(data.get("code", ""))
        if code not in accept:
            raise refusal(data)
        return data

    def exchange(self, request: httpx.Request) -> httpx.Response:
        """One exchange; a timeout or a broken connection leaves the outcome unknown."""
        try:
            return self.http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # No connection, so no byte of the request left: nothing happened at Alipay, and
            # routing may try another channel.
            raise ChannelUnreachableError(
                f"Alipay cannot be reached ({type(exc).__name__})", code="UNREACHABLE"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ChannelRetryableError("Alipay did not answer in time", code="TIMEOUT") from exc
        except httpx.TransportError as exc:
            raise ChannelRetryableError(
                f"Alipay cannot be reached ({type(exc).__name__})", code="NETWORK"
            ) from exc

    def _verified(self, content: bytes, method: str) -> dict[str, Any]:
        """Defect 6: our verifier, over the exact `…_response` text as sent (spec §3.2)."""
        try:
            raw = content.decode(CHARSET)
            signed_text, sign = signed_response_text(raw, method)
        except (UnicodeDecodeError, AlipayProtocolError) as exc:
            # An unsigned error reply lands here too: unverifiable, so retryable.
            raise bad_response(f"unverifiable answer: {exc}") from exc
        if not rsa2_verify(self.alipay_key, signed_text, sign):
            raise bad_response("the answer's signature does not verify")
        # Exactly the verified characters are read, nothing else of the answer.
        with reading_answer():
            data = json.loads(signed_text)
            if not isinstance(data, dict):
                raise AlipayProtocolError("the answer is not an object")
        return data


def _default_http_client(timeout_s: float) -> httpx.Client:
    """Explicit timeouts (STYLE.md §4): connecting fails fast, the answer gets `timeout_s`."""
    return httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)))
