"""WeChat's side of a push: the XML WeChat builds when a user acts, the signed (and in
compatible/safe mode encrypted) POST, its 5 s / 3 tries delivery, and reading the passive
reply back (spec/wechat-official-account.md §3-§6).

Used by `tianfu wechat send`, by the WeChat API simulator (TEMPLATESENDJOBFINISH callbacks), by
tests and by the load benchmark; nothing here is on the server's own request path.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

import httpx

from lbs.wxcrypto import (
    WeChatDecryptError,
    WeChatSignatureError,
    WXBizMsgCrypt,
    msg_signature,
    plain_signature,
    signatures_match,
)
from lbs.wxxml import SUCCESS, XmlRejectedError, cdata, parse_reply

# What the phone shows when the reply is late or not reply XML (spec §3, "Fatal responses").
SERVICE_UNAVAILABLE_TEXT = "该公众号暂时无法提供服务，请稍后再试"
NO_REPLY_TEXT = "(no reply: WeChat shows nothing)"
WECHAT_TIMEOUT_S = 5.0
WECHAT_TRIES = 3

# WeChat's own spelling of each event (spec §4): some upper case, some lower case.
_EVENT_SPELLING = {
    name.lower(): name
    for name in (
        "subscribe",
        "unsubscribe",
        "SCAN",
        "LOCATION",
        "CLICK",
        "VIEW",
        "TEMPLATESENDJOBFINISH",
        "location_select",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "view_miniprogram",
    )
}
_FIELD_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_BARE_NUMBER_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class EncryptMode(StrEnum):
    plaintext = "plaintext"
    compat = "compat"
    safe = "safe"


class PushFailedError(Exception):
    """No usable HTTP answer: what WeChat turns into 「该公众号暂时无法提供服务」."""

    def __init__(self, message: str, *, attempts: int, status_code: int | None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status_code = status_code


# --- the XML WeChat sends ------------------------------------------------------------------------


def _string(name: str, value: str) -> str:
    return f"<{name}>{cdata(value)}</{name}>"


def _number(name: str, value: int | str) -> str:
    return f"<{name}>{value}</{name}>"


def _extra(name: str, value: str) -> str:
    # Strings in CDATA, numbers bare, as WeChat writes them (spec §4).
    if not _FIELD_NAME_RE.fullmatch(name):
        raise ValueError(f"not an XML field name: {name!r}")
    return _number(name, value) if _BARE_NUMBER_RE.fullmatch(value) else _string(name, value)


def _header(to_user: str, from_user: str, create_time: int, msg_type: str) -> list[str]:
    return [
        _string("ToUserName", to_user),
        _string("FromUserName", from_user),
        _number("CreateTime", int(create_time)),
        _string("MsgType", msg_type),
    ]


def _document(fields: list[str]) -> str:
    # One field a line, like the decrypted official samples.
    return "<xml>" + "\n".join(fields) + "</xml>"


def text_message_xml(
    *, to_user: str, from_user: str, content: str, msg_id: int, create_time: int
) -> str:
    return _document(
        [
            *_header(to_user, from_user, create_time, "text"),
            _string("Content", content),
            _number("MsgId", int(msg_id)),
        ]
    )


def location_message_xml(
    *,
    to_user: str,
    from_user: str,
    lat: float,
    lng: float,
    scale: int = 15,
    label: str = "",
    msg_id: int,
    create_time: int,
) -> str:
    # Location_X is the latitude (spec §4); six decimals as in WeChat's samples.
    return _document(
        [
            *_header(to_user, from_user, create_time, "location"),
            _number("Location_X", f"{lat:.6f}"),
            _number("Location_Y", f"{lng:.6f}"),
            _number("Scale", int(scale)),
            _string("Label", label),
            _number("MsgId", int(msg_id)),
        ]
    )


def event_xml(
    *,
    to_user: str,
    from_user: str,
    event: str,
    create_time: int,
    event_key: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    # `extra` carries the event's own fields: Latitude/Longitude/Precision, Ticket, MsgID/Status.
    fields = [
        *_header(to_user, from_user, create_time, "event"),
        _string("Event", _EVENT_SPELLING.get(event.lower(), event)),
    ]
    if event_key is not None:
        fields.append(_string("EventKey", event_key))
    fields.extend(_extra(name, value) for name, value in (extra or {}).items())
    return _document(fields)


# --- the signed POST -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PushRequest:
    params: dict[str, str]
    body: bytes


def _with_encrypt(message_xml: str, encrypt: str) -> str:
    # Compatible mode: every plaintext field and <Encrypt> (the official 公众号 sample, §6).
    stripped = message_xml.rstrip()
    if not stripped.endswith("</xml>"):
        raise ValueError("message_xml must end with </xml>")
    return stripped.removesuffix("</xml>") + f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>"


def build_push(
    message_xml: str,
    *,
    token: str,
    mode: EncryptMode,
    crypt: WXBizMsgCrypt | None,
    to_user: str,
    timestamp: int,
    nonce: str,
) -> PushRequest:
    stamp = str(int(timestamp))
    # The 3-part signature is sent in every mode (spec §3).
    params = {"signature": plain_signature(token, stamp, nonce), "timestamp": stamp, "nonce": nonce}
    if mode is EncryptMode.plaintext:
        return PushRequest(params=params, body=message_xml.encode("utf-8"))
    if crypt is None:
        raise ValueError(f"{mode} mode needs a WXBizMsgCrypt")
    encrypt = crypt.encrypt(message_xml)
    params["encrypt_type"] = "aes"
    params["msg_signature"] = msg_signature(token, stamp, nonce, encrypt)
    if mode is EncryptMode.safe:
        # Safe mode: nothing in the clear but the account's id (spec §6, "Request bodies").
        body = _document([_string("ToUserName", to_user), _string("Encrypt", encrypt)])
    else:
        body = _with_encrypt(message_xml, encrypt)
    return PushRequest(params=params, body=body.encode("utf-8"))


def _text_field(fields: Mapping[str, object], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str):
        raise XmlRejectedError(f"encrypted reply without {name}")
    return value


def read_reply(response_body: bytes, *, token: str, crypt: WXBizMsgCrypt | None) -> str:
    """The reply's plaintext XML, or "success" / "" when the server chose not to answer.

    Raises XmlRejectedError for a body that is not reply XML, WeChatSignatureError for an
    envelope whose MsgSignature is wrong, WeChatDecryptError for one that does not decrypt.
    """
    if response_body.strip() in (b"", SUCCESS.encode("ascii")):
        return response_body.strip().decode("ascii")
    text = _decode(response_body)
    fields = parse_reply(text)
    if "Encrypt" not in fields:
        return text
    encrypt = _text_field(fields, "Encrypt")
    expected = msg_signature(
        token, _text_field(fields, "TimeStamp"), _text_field(fields, "Nonce"), encrypt
    )
    # Verified before decrypting, with the envelope's own TimeStamp and Nonce (spec §6).
    if not signatures_match(expected, _text_field(fields, "MsgSignature")):
        raise WeChatSignatureError("reply MsgSignature does not match")
    if crypt is None:
        raise WeChatDecryptError("encrypted reply, but no EncodingAESKey to read it")
    return crypt.decrypt(encrypt).plaintext


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise XmlRejectedError("reply is not UTF-8") from None


# --- delivery ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    reply_xml: str
    attempts: int
    status_code: int
    elapsed_s: float  # from the first try to the answer, retries included


def new_nonce() -> str:
    # WeChat's nonces are decimal digits (spec §2 example).
    return str(secrets.randbelow(9_000_000_000) + 1_000_000_000)


class PushClient:
    """Delivers pushes as WeChat does: 5 s per try, 3 tries in all, the same request each time
    (spec §3), so a server's deduplication sees exactly what WeChat's retries look like."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        mode: EncryptMode,
        crypt: WXBizMsgCrypt | None,
        account_id: str,
        timeout_s: float = WECHAT_TIMEOUT_S,
        tries: int = WECHAT_TRIES,
        http: httpx.Client | None = None,
    ) -> None:
        if tries < 1:
            raise ValueError("tries must be at least 1")
        if mode is not EncryptMode.plaintext and crypt is None:
            raise ValueError(f"{mode} mode needs a WXBizMsgCrypt")
        self.url = url
        self._token = token
        self.mode = mode
        self._crypt = crypt
        self.account_id = account_id
        self.timeout_s = timeout_s
        self.tries = tries
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout_s)

    def __repr__(self) -> str:
        return f"PushClient(url={self.url!r}, mode={self.mode.value!r})"

    def __enter__(self) -> PushClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def build(self, message_xml: str) -> PushRequest:
        return build_push(
            message_xml,
            token=self._token,
            mode=self.mode,
            crypt=self._crypt,
            to_user=self.account_id,
            timestamp=int(time.time()),
            nonce=new_nonce(),
        )

    def send(self, message_xml: str) -> PushResult:
        return self.deliver(self.build(message_xml))

    def deliver(self, push: PushRequest) -> PushResult:
        started = time.perf_counter()
        problem = "no attempt"
        status_code: int | None = None
        for attempt in range(1, self.tries + 1):
            try:
                response = self._post(push)
            except httpx.TimeoutException:
                problem, status_code = f"no answer within {self.timeout_s:g} s", None
                continue
            except httpx.TransportError as exc:
                problem, status_code = f"connection failed ({type(exc).__name__})", None
                continue
            status_code = response.status_code
            if status_code >= 500:
                problem = f"HTTP {status_code}"
                continue
            if status_code >= 400:
                # WeChat shows its error to the user; a retry would get the same answer.
                raise PushFailedError(
                    f"HTTP {status_code}", attempts=attempt, status_code=status_code
                )
            reply = read_reply(response.content, token=self._token, crypt=self._crypt)
            elapsed = time.perf_counter() - started
            return PushResult(reply, attempt, status_code, elapsed)
        raise PushFailedError(
            f"{problem} after {self.tries} tries", attempts=self.tries, status_code=status_code
        )

    def _post(self, push: PushRequest) -> httpx.Response:
        return self._http.post(
            self.url,
            params=push.params,
            content=push.body,
            headers={"Content-Type": "text/xml; charset=utf-8"},
            timeout=self.timeout_s,
        )


# --- what the user sees ------------------------------------------------------------------------


def _article_lines(articles: object) -> list[str]:
    lines: list[str] = []
    for item in articles if isinstance(articles, list) else []:
        if isinstance(item, dict):
            title, description = item.get("Title", ""), item.get("Description", "")
            lines += [f"[图文] {title}", f" {description}", f" → {item.get('Url', '')}"]
    return lines


def render_for_user(reply_xml: str) -> str:
    """The reply as the phone shows it, for a terminal."""
    if reply_xml.strip() in ("", SUCCESS):
        return NO_REPLY_TEXT
    try:
        fields = parse_reply(reply_xml)
    except XmlRejectedError:
        return SERVICE_UNAVAILABLE_TEXT
    msg_type = fields.get("MsgType")
    content = fields.get("Content")
    if msg_type == "text" and isinstance(content, str):
        return content
    if msg_type == "news":
        lines = _article_lines(fields.get("Articles"))
        return "\n".join(lines) if lines else SERVICE_UNAVAILABLE_TEXT
    if isinstance(msg_type, str) and msg_type:
        return f"[{msg_type}]"
    return SERVICE_UNAVAILABLE_TEXT
