"""WeChat XML at the edge: the hardened parser, typed incoming messages and passive replies
(spec/wechat-official-account.md §3-§5, §9.3-§9.4, §9.11). Pure: no database, no HTTP."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict
from xml.dom import Node
from xml.dom.minidom import Element

from defusedxml import DefusedXmlException
from defusedxml.minidom import parseString

# Real pushes are a few KB (spec §9.3).
MAX_BODY_BYTES = 64 * 1024
# "No reply": WeChat does nothing and does not retry (spec §3); never encrypted (spec §5).
SUCCESS = "success"
# News articles per passive reply (spec §5): 1 answering a user's message, up to 8 otherwise.
NEWS_ARTICLES_FOR_MESSAGES = 1
NEWS_ARTICLES_FOR_EVENTS = 8

Fields = dict[str, str | dict[str, str]]
ReplyFields = dict[str, str | dict[str, str] | list[dict[str, str]]]

# Bare numbers (CreateTime, MsgId, Location_X …) may carry layout whitespace around them.
_BARE_NUMBER_RE = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_DECIMAL_RE = re.compile(r"[+-]?[0-9]{1,12}(?:\.[0-9]{1,15})?")
_INTEGER_RE = re.compile(r"[0-9]{1,19}")
_MSG_ID_RE = re.compile(r"[0-9]{1,32}")
# Everything XML 1.0 does not allow (surrogates included): stripped from reply values.
_INVALID_XML_CHARS_RE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Longest value accepted per field; OpenIDs are 28 characters, a VIEW EventKey is a URL.
_MAX_CHARS = {
    "ToUserName": 128,
    "FromUserName": 128,
    "MsgType": 32,
    "Event": 64,
    "EventKey": 2048,
    "Content": 16_384,
    "Label": 1024,
    "Poiname": 1024,
    "Ticket": 512,
    "Status": 256,
}


class XmlRejectedError(Exception):
    """The body is not a document this edge accepts; `reason` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MessageInvalidError(Exception):
    """Well-formed XML that is not a usable WeChat message."""


# --- parsing ---------------------------------------------------------------------------------


def _document_element(body: bytes) -> Element:
    if not isinstance(body, bytes | bytearray):
        raise XmlRejectedError("body is not bytes")
    if len(body) > MAX_BODY_BYTES:
        raise XmlRejectedError("body over 64 KiB")
    # WeChat never sends a DTD; refusing one outright keeps XXE and billion laughs away from
    # the parser altogether (spec §9.3, vectors xxe_external_entity and billion_laughs).
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise XmlRejectedError("DOCTYPE or ENTITY declaration")
    try:
        text = bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise XmlRejectedError("body is not UTF-8") from None
    # Parsing the str makes expat read UTF-8 whatever an XML declaration claims.
    try:
        document = parseString(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise XmlRejectedError("DTD, entity or external reference") from None
    except Exception:  # ExpatError mostly; from untrusted input, anything is a rejection
        raise XmlRejectedError("malformed XML") from None
    root = document.documentElement
    if root is None or root.tagName != "xml":
        raise XmlRejectedError("root element is not <xml>")
    return root


def _child_elements(element: Element) -> list[Element]:
    return [node for node in element.childNodes if node.nodeType == Node.ELEMENT_NODE]


def _leaf_text(element: Element) -> str:
    parts: list[str] = []
    in_cdata = False
    for node in element.childNodes:
        if node.nodeType == Node.CDATA_SECTION_NODE:
            in_cdata = True
            parts.append(node.data)
        elif node.nodeType == Node.TEXT_NODE:
            parts.append(node.data)
    value = "".join(parts)
    # CDATA content is kept exactly (a user's text may start with spaces); only a bare number
    # loses the layout whitespace of pretty-printed samples (spec §4: numbers are bare text).
    if not in_cdata and _BARE_NUMBER_RE.fullmatch(value.strip()):
        return value.strip()
    return value


def _leaves(element: Element) -> dict[str, str]:
    # One level below a field (SendLocationInfo, ScanCodeInfo): its leaf children. Deeper
    # structure (SendPicsInfo/PicList/item) is skipped, not refused: WeChat sends it.
    values: dict[str, str] = {}
    for child in _child_elements(element):
        if _child_elements(child):
            continue
        if child.tagName in values:
            raise XmlRejectedError(f"duplicate field {child.tagName}")
        values[child.tagName] = _leaf_text(child)
    return values


def parse_xml(body: bytes) -> Fields:
    root = _document_element(body)
    fields: Fields = {}
    for child in _child_elements(root):
        # Two ToUserName or two Encrypt could mean one thing to us and another to a
        # signature checker; WeChat never repeats a field.
        if child.tagName in fields:
            raise XmlRejectedError(f"duplicate field {child.tagName}")
        fields[child.tagName] = _leaves(child) if _child_elements(child) else _leaf_text(child)
    return fields


def parse_reply(xml: str) -> ReplyFields:
    # For tests and the CLI: the same hardened parser, with a news reply's repeated <item>
    # elements as a list (parse_xml refuses repeated fields).
    root = _document_element(xml.encode("utf-8"))
    fields: ReplyFields = {}
    for child in _child_elements(root):
        if child.tagName in fields:
            raise XmlRejectedError(f"duplicate field {child.tagName}")
        if child.tagName == "Articles":
            fields["Articles"] = [_leaves(item) for item in _child_elements(child)]
        elif _child_elements(child):
            fields[child.tagName] = _leaves(child)
        else:
            fields[child.tagName] = _leaf_text(child)
    return fields


# --- incoming messages -------------------------------------------------------------------------


@dataclass(frozen=True)
class IncomingMessage:
    to_user: str
    from_user: str
    create_time: int
    msg_type: str  # lowercased
    msg_id: str | None = None  # a 64-bit integer, kept as text (not JS-safe, spec §4)
    event: str | None = None  # lowercased: WeChat mixes LOCATION and subscribe (spec §4)
    event_key: str | None = None
    content: str | None = None
    # A location message or a location_select event: Location_X is the LATITUDE (spec §4).
    location_lat: float | None = None
    location_lng: float | None = None
    scale: int | None = None
    label: str | None = None
    # A LOCATION event (its coordinate system is a setting, spec §7).
    latitude: float | None = None
    longitude: float | None = None
    precision: float | None = None
    ticket: str | None = None
    status: str | None = None
    poiname: str | None = None
    raw: Mapping[str, str | dict[str, str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def dedup_key(self) -> str:
        if self.msg_type == "event":
            # The event name is part of the key: subscribe and LOCATION can share a second
            # (spec §3). Its casing is WeChat's, as in the vectors.
            raw_event = self.raw.get("Event")
            name = raw_event if isinstance(raw_event, str) else self.event
            return f"event:{self.from_user}:{self.create_time}:{name}"
        if self.msg_id is not None:
            return f"msgid:{self.msg_id}"
        return f"message:{self.from_user}:{self.create_time}:{self.msg_type}"


class _BodyFields(TypedDict, total=False):
    location_lat: float | None
    location_lng: float | None
    scale: int | None
    label: str | None
    poiname: str | None
    latitude: float | None
    longitude: float | None
    precision: float | None


_Source = Mapping[str, str | dict[str, str]]


def _text(fields: _Source, name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MessageInvalidError(f"{name} is not text")
    if len(value) > _MAX_CHARS.get(name, 1024):
        raise MessageInvalidError(f"{name} is too long")
    return value


def _required(fields: _Source, name: str) -> str:
    value = _text(fields, name)
    if value is None or not value.strip():
        raise MessageInvalidError(f"{name} is missing")
    return value


def _integer(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not _INTEGER_RE.fullmatch(value):
        raise MessageInvalidError(f"{name} is not an integer")
    return int(value)


def _decimal(value: str, name: str, *, limit: float | None) -> float:
    # A strict decimal: float() would also take "nan", "inf", "1e999" and "1_0".
    if not _DECIMAL_RE.fullmatch(value):
        raise MessageInvalidError(f"{name} is not a decimal number")
    number = float(value)
    if not math.isfinite(number) or (limit is not None and abs(number) > limit):
        raise MessageInvalidError(f"{name} is out of range")
    return number


def _msg_id(fields: _Source) -> str | None:
    # MsgId in messages, MsgID (capital D) in TEMPLATESENDJOBFINISH (spec §4, §9.11).
    value = fields.get("MsgId", fields.get("MsgID"))
    if value is None:
        return None
    if not isinstance(value, str) or not _MSG_ID_RE.fullmatch(value):
        raise MessageInvalidError("MsgId is not an integer")
    return value


def _position(source: _Source) -> _BodyFields:
    # Location_X is the latitude, Location_Y the longitude (spec §4, §9.11).
    return {
        "location_lat": _decimal(_required(source, "Location_X"), "Location_X", limit=90),
        "location_lng": _decimal(_required(source, "Location_Y"), "Location_Y", limit=180),
        "scale": _integer(_text(source, "Scale"), "Scale"),
        "label": _text(source, "Label"),
        "poiname": _text(source, "Poiname"),
    }


def _location_event(fields: _Source) -> _BodyFields:
    precision = _text(fields, "Precision")
    return {
        "latitude": _decimal(_required(fields, "Latitude"), "Latitude", limit=90),
        "longitude": _decimal(_required(fields, "Longitude"), "Longitude", limit=180),
        "precision": None if precision is None else _decimal(precision, "Precision", limit=None),
    }


def _body_fields(fields: _Source, msg_type: str, event: str | None) -> _BodyFields:
    if msg_type == "location":
        return _position(fields)
    if event == "location":
        return _location_event(fields)
    if event == "location_select":
        # The picker's answer is nested one level down (spec §4).
        info = fields.get("SendLocationInfo")
        if not isinstance(info, dict):
            raise MessageInvalidError("SendLocationInfo is missing")
        return _position(info)
    return {}


def parse_message(fields: _Source) -> IncomingMessage:
    msg_type = _required(fields, "MsgType").strip().lower()
    create_time = _integer(_required(fields, "CreateTime"), "CreateTime")
    event = _required(fields, "Event").strip().lower() if msg_type == "event" else None
    return IncomingMessage(
        to_user=_required(fields, "ToUserName"),
        from_user=_required(fields, "FromUserName"),
        create_time=create_time if create_time is not None else 0,
        msg_type=msg_type,
        msg_id=_msg_id(fields),
        event=event,
        event_key=_text(fields, "EventKey"),
        content=_text(fields, "Content"),
        ticket=_text(fields, "Ticket"),
        status=_text(fields, "Status"),
        raw=dict(fields),
        **_body_fields(fields, msg_type, event),
    )


# --- passive replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Article:
    title: str
    description: str
    url: str
    pic_url: str = ""


def cdata(value: str) -> str:
    # Merchant names and coupon text come from our database: a "]]>" in them must not end the
    # section (spec §5, vector cdata_breakout_in_reply), so it is split across two sections.
    clean = _INVALID_XML_CHARS_RE.sub("", value)
    return "<![CDATA[" + clean.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _header(*, to_user: str, from_user: str, create_time: int, msg_type: str) -> str:
    # A reply swaps the header: To is the user's OpenID, From is the account's gh_ id (spec §5).
    if isinstance(create_time, bool) or create_time < 0:
        raise ValueError("create_time must be Unix seconds")
    return (
        f"<ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(create_time)}</CreateTime>"
        f"<MsgType>{cdata(msg_type)}</MsgType>"
    )


def text_reply(*, to_user: str, from_user: str, content: str, create_time: int) -> str:
    header = _header(to_user=to_user, from_user=from_user, create_time=create_time, msg_type="text")
    return f"<xml>{header}<Content>{cdata(content)}</Content></xml>"


def _item(article: Article) -> str:
    return (
        f"<item><Title>{cdata(article.title)}</Title>"
        f"<Description>{cdata(article.description)}</Description>"
        f"<PicUrl>{cdata(article.pic_url)}</PicUrl><Url>{cdata(article.url)}</Url></item>"
    )


def news_reply(
    *,
    to_user: str,
    from_user: str,
    articles: Sequence[Article],
    create_time: int,
    max_articles: int,
) -> str:
    # WeChat silently drops extra articles (spec §5); refusing them shows the bug instead.
    if not 1 <= max_articles <= NEWS_ARTICLES_FOR_EVENTS:
        raise ValueError("max_articles must be 1 (answering a message) to 8 (events)")
    if not articles:
        raise ValueError("a news reply needs at least one article")
    if len(articles) > max_articles:
        raise ValueError(f"{len(articles)} articles, at most {max_articles} allowed here")
    header = _header(to_user=to_user, from_user=from_user, create_time=create_time, msg_type="news")
    items = "".join(_item(article) for article in articles)
    return (
        f"<xml>{header}<ArticleCount>{len(articles)}</ArticleCount>"
        f"<Articles>{items}</Articles></xml>"
    )
