"""lbs.wxxml: the hardened parser, incoming messages (spec/wechat-vectors.json `incoming_messages`,
the XML kinds of `security_negative_vectors`) and passive replies (spec §5)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbs.wxxml import (
    MAX_BODY_BYTES,
    NEWS_ARTICLES_FOR_EVENTS,
    NEWS_ARTICLES_FOR_MESSAGES,
    SUCCESS,
    Article,
    IncomingMessage,
    MessageInvalidError,
    XmlRejectedError,
    cdata,
    news_reply,
    parse_message,
    parse_reply,
    parse_xml,
    text_reply,
)
from tests.lbs.vectors import MISSING, VECTORS, Vector


def _vector(vector: Vector | None) -> Vector:
    if vector is None:
        pytest.fail(MISSING)
    return vector


def _cases(
    section: str, *, kinds: tuple[str, ...] | None = None, having: str | None = None
) -> list[Any]:
    if VECTORS is None:
        return [pytest.param(None, id="vectors-missing")]
    return [
        pytest.param(vector, id=vector["id"])
        for vector in VECTORS[section]
        if (kinds is None or vector["kind"] in kinds) and (having is None or having in vector)
    ]


def _message(xml: str) -> IncomingMessage:
    return parse_message(parse_xml(xml.encode("utf-8")))


HEADER = (
    "<ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>"
    "<FromUserName><![CDATA[oTianfuUser]]></FromUserName>"
    "<CreateTime>1718000000</CreateTime>"
)


def _event(body: str) -> str:
    return f"<xml>{HEADER}<MsgType><![CDATA[event]]></MsgType>{body}</xml>"


# --- incoming_messages vectors -------------------------------------------------------------------


@pytest.mark.parametrize("vector", _cases("incoming_messages"))
def test_incoming_message_vector_fields(vector: Vector | None) -> None:
    v = _vector(vector)
    fields = parse_xml(v["xml"].encode("utf-8"))
    for name, value in v["expected_fields"].items():
        assert fields[name] == value, name


@pytest.mark.parametrize("vector", _cases("incoming_messages"))
def test_incoming_message_vector_parses_with_its_dedup_key(vector: Vector | None) -> None:
    v = _vector(vector)
    message = _message(v["xml"])
    expected = v["expected_fields"]
    assert message.dedup_key == v["dedup_key"]
    assert message.msg_type == expected["MsgType"].lower()
    assert message.event == (expected["Event"].lower() if "Event" in expected else None)
    assert message.msg_id == expected.get("MsgId", expected.get("MsgID"))
    assert message.content == expected.get("Content")
    assert message.event_key == expected.get("EventKey")
    assert message.ticket == expected.get("Ticket")
    assert message.status == expected.get("Status")
    assert str(message.create_time) == parse_xml(v["xml"].encode("utf-8"))["CreateTime"]


@pytest.mark.parametrize("vector", _cases("incoming_messages"))
def test_incoming_message_vector_position(vector: Vector | None) -> None:
    v = _vector(vector)
    message = _message(v["xml"])
    position = v.get("expected_position")
    if position is None:
        assert (message.location_lat, message.latitude) == (None, None)
    elif message.msg_type == "location":
        # Location_X is the latitude (spec §4).
        assert (message.location_lat, message.location_lng) == (position["lat"], position["lng"])
        assert message.scale == int(v["expected_fields"]["Scale"])
        assert message.label == v["expected_fields"]["Label"]
    else:
        assert (message.latitude, message.longitude) == (position["lat"], position["lng"])
        assert message.precision == float(v["expected_fields"]["Precision"])


@pytest.mark.parametrize("vector", _cases("incoming_messages", having="expected_scene"))
def test_incoming_message_vector_scene(vector: Vector | None) -> None:
    v = _vector(vector)
    key = _message(v["xml"]).event_key
    assert key is not None
    assert key.removeprefix("qrscene_") == v["expected_scene"]


def test_subscribe_and_location_in_the_same_second_have_different_keys() -> None:
    subscribe = _message(_event("<Event><![CDATA[subscribe]]></Event>"))
    location = _message(
        _event(
            "<Event><![CDATA[LOCATION]]></Event><Latitude>30.6</Latitude>"
            "<Longitude>104.0</Longitude><Precision>65.0</Precision>"
        )
    )
    assert subscribe.dedup_key != location.dedup_key
    assert location.dedup_key == "event:oTianfuUser:1718000000:LOCATION"


def test_template_job_finish_takes_msgid_with_capital_d() -> None:
    message = _message(
        _event(
            "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID>"
            "<Status><![CDATA[failed:user block]]></Status>"
        )
    )
    assert message.msg_id == "200163836"
    assert message.status == "failed:user block"
    assert message.event == "templatesendjobfinish"
    # An event still deduplicates as an event, MsgID or not.
    assert message.dedup_key == "event:oTianfuUser:1718000000:TEMPLATESENDJOBFINISH"


LOCATION_SELECT = _event(
    "<Event><![CDATA[location_select]]></Event><EventKey><![CDATA[pick_place]]></EventKey>"
    "<SendLocationInfo><Location_X><![CDATA[30.657420]]></Location_X>"
    "<Location_Y><![CDATA[104.065840]]></Location_Y><Scale><![CDATA[15]]></Scale>"
    "<Label><![CDATA[成都市青羊区天府广场]]></Label><Poiname><![CDATA[天府广场]]></Poiname>"
    "</SendLocationInfo>"
)


def test_location_select_reads_the_nested_send_location_info() -> None:
    fields = parse_xml(LOCATION_SELECT.encode("utf-8"))
    assert fields["SendLocationInfo"] == {
        "Location_X": "30.657420",
        "Location_Y": "104.065840",
        "Scale": "15",
        "Label": "成都市青羊区天府广场",
        "Poiname": "天府广场",
    }
    message = parse_message(fields)
    assert message.event == "location_select"
    assert (message.location_lat, message.location_lng) == (30.65742, 104.06584)
    assert (message.scale, message.label, message.poiname) == (
        15,
        "成都市青羊区天府广场",
        "天府广场",
    )


def test_location_select_without_send_location_info_is_invalid() -> None:
    with pytest.raises(MessageInvalidError, match="SendLocationInfo"):
        _message(_event("<Event><![CDATA[location_select]]></Event>"))


def test_deeper_nesting_is_skipped_not_refused() -> None:
    # pic_sysphoto nests SendPicsInfo/PicList/item: WeChat sends it, so it must not fail.
    xml = _event(
        "<Event><![CDATA[pic_sysphoto]]></Event><SendPicsInfo><Count>1</Count><PicList>"
        "<item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item>"
        "</PicList></SendPicsInfo>"
    )
    fields = parse_xml(xml.encode("utf-8"))
    assert fields["SendPicsInfo"] == {"Count": "1"}
    assert _message(xml).event == "pic_sysphoto"


# --- parse_message refusals -----------------------------------------------------------------------

TEXT_FIELDS = {
    "ToUserName": "gh_0123456789ab",
    "FromUserName": "oTianfuUser",
    "CreateTime": "1718000000",
    "MsgType": "text",
    "Content": "附近",
    "MsgId": "24612345678901234",
}


@pytest.mark.parametrize("missing", ["ToUserName", "FromUserName", "CreateTime", "MsgType"])
def test_missing_header_field_is_invalid(missing: str) -> None:
    fields: dict[str, str | dict[str, str]] = {k: v for k, v in TEXT_FIELDS.items() if k != missing}
    with pytest.raises(MessageInvalidError, match=missing):
        parse_message(fields)


@pytest.mark.parametrize("value", ["", "  ", "abc", "17e8", "-1", "1718000000.5", "１７"])
def test_create_time_must_be_an_integer(value: str) -> None:
    with pytest.raises(MessageInvalidError, match="CreateTime"):
        parse_message({**TEXT_FIELDS, "CreateTime": value})


def test_blank_from_user_is_invalid() -> None:
    with pytest.raises(MessageInvalidError, match="FromUserName"):
        parse_message({**TEXT_FIELDS, "FromUserName": "   "})


def test_event_without_event_name_is_invalid() -> None:
    with pytest.raises(MessageInvalidError, match="Event"):
        _message(_event(""))


@pytest.mark.parametrize(
    ("name", "limit"), [("FromUserName", 128), ("Content", 16_384), ("MsgType", 32)]
)
def test_over_long_fields_are_invalid(name: str, limit: int) -> None:
    assert parse_message({**TEXT_FIELDS, name: "x" * limit if name != "MsgType" else "text"})
    with pytest.raises(MessageInvalidError, match="too long"):
        parse_message({**TEXT_FIELDS, name: "x" * (limit + 1)})


def test_nested_value_where_text_belongs_is_invalid() -> None:
    with pytest.raises(MessageInvalidError, match="Content"):
        parse_message({**TEXT_FIELDS, "Content": {"a": "b"}})


@pytest.mark.parametrize("msg_id", ["abc", "-1", "1" * 33, "12.5"])
def test_msg_id_must_be_digits(msg_id: str) -> None:
    with pytest.raises(MessageInvalidError, match="MsgId"):
        parse_message({**TEXT_FIELDS, "MsgId": msg_id})


def _location(x: str, y: str) -> dict[str, str | dict[str, str]]:
    fields: dict[str, str | dict[str, str]] = {
        k: v for k, v in TEXT_FIELDS.items() if k != "Content"
    }
    return {**fields, "MsgType": "location", "Location_X": x, "Location_Y": y, "Scale": "15"}


@pytest.mark.parametrize(
    ("x", "y"),
    [
        pytest.param("nan", "104.0", id="nan"),
        pytest.param("30.6", "inf", id="inf"),
        pytest.param("1e1", "104.0", id="exponent"),
        pytest.param("3_0.6", "104.0", id="underscore"),
        pytest.param("90.000001", "104.0", id="lat-above-90"),
        pytest.param("-90.5", "104.0", id="lat-below-minus-90"),
        pytest.param("30.6", "180.5", id="lng-above-180"),
        pytest.param("30.6", "-181", id="lng-below-minus-180"),
        pytest.param("", "104.0", id="empty"),
        pytest.param("30,6", "104.0", id="comma"),
    ],
)
def test_bad_location_coordinates_are_invalid(x: str, y: str) -> None:
    with pytest.raises(MessageInvalidError, match="Location_"):
        parse_message(_location(x, y))


def test_location_edges_are_valid() -> None:
    message = parse_message(_location("-90", "180.000000"))
    assert (message.location_lat, message.location_lng) == (-90.0, 180.0)


def test_location_message_without_coordinates_is_invalid() -> None:
    fields = _location("30.6", "104.0")
    del fields["Location_Y"]
    with pytest.raises(MessageInvalidError, match="Location_Y"):
        parse_message(fields)


@pytest.mark.parametrize(
    ("lat", "lng", "precision"),
    [("91", "104", "65"), ("30", "-180.1", "65"), ("30", "104", "nan"), ("NaN", "104", "65")],
)
def test_bad_location_event_values_are_invalid(lat: str, lng: str, precision: str) -> None:
    xml = _event(
        f"<Event><![CDATA[LOCATION]]></Event><Latitude>{lat}</Latitude>"
        f"<Longitude>{lng}</Longitude><Precision>{precision}</Precision>"
    )
    with pytest.raises(MessageInvalidError):
        _message(xml)


def test_event_name_is_lowercased_but_dedup_keeps_wechat_casing() -> None:
    message = _message(_event("<Event><![CDATA[CLICK]]></Event><EventKey>附近优惠</EventKey>"))
    assert (message.event, message.event_key) == ("click", "附近优惠")
    assert message.dedup_key.endswith(":CLICK")


def test_message_without_msg_id_still_has_a_dedup_key() -> None:
    fields: dict[str, str | dict[str, str]] = {k: v for k, v in TEXT_FIELDS.items() if k != "MsgId"}
    assert parse_message(fields).dedup_key == "message:oTianfuUser:1718000000:text"


# --- the hardened parser --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vector", _cases("security_negative_vectors", kinds=("xml_must_be_rejected",))
)
def test_xml_negative_vector_is_rejected_before_parsing(vector: Vector | None) -> None:
    v = _vector(vector)
    with pytest.raises(XmlRejectedError, match="DOCTYPE") as caught:
        parse_xml(v["xml"].encode("utf-8"))
    assert caught.value.reason == "DOCTYPE or ENTITY declaration"


def test_billion_laughs_with_more_levels_is_rejected_quickly() -> None:
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)
    )
    body = f'<?xml version="1.0"?><!DOCTYPE xml [{entities}]><xml><C>&a9;</C></xml>'
    with pytest.raises(XmlRejectedError):
        parse_xml(body.encode("utf-8"))


def test_undeclared_entity_reference_is_rejected() -> None:
    with pytest.raises(XmlRejectedError):
        parse_xml(b"<xml><Content>&xxe;</Content></xml>")


def test_standard_character_references_still_work() -> None:
    assert parse_xml(b"<xml><Content>a &lt;b&gt; &amp; &#x4E2D;</Content></xml>") == {
        "Content": "a <b> & 中"
    }


def test_body_over_64_kib_is_rejected() -> None:
    head, tail = b"<xml><Content><![CDATA[", b"]]></Content></xml>"
    filler = MAX_BODY_BYTES - len(head) - len(tail)
    assert parse_xml(head + b"x" * filler + tail)["Content"] == "x" * filler
    with pytest.raises(XmlRejectedError, match="64 KiB"):
        parse_xml(head + b"x" * (filler + 1) + tail)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<xml><Content>\xff\xfe</Content></xml>", id="invalid-bytes"),
        pytest.param(b"<xml><Content>\xe4\xb8</Content></xml>", id="truncated-sequence"),
        pytest.param("<xml><C>中</C></xml>".encode("gbk"), id="gbk"),
        pytest.param("<xml/>".encode("utf-16"), id="utf-16"),
    ],
)
def test_non_utf8_body_is_rejected(body: bytes) -> None:
    with pytest.raises(XmlRejectedError):
        parse_xml(body)


def test_declared_encoding_cannot_reinterpret_utf8() -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><xml><C>中</C></xml>'.encode()
    assert parse_xml(body) == {"C": "中"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"success", id="not-xml"),
        pytest.param(b"<xml><A>1</A>", id="unclosed"),
        pytest.param(b"<xml><A>1</B></xml>", id="mismatched"),
        pytest.param(b"<xml></xml><xml></xml>", id="two-roots"),
        pytest.param(b'{"ToUserName": "gh"}', id="json"),
        pytest.param(b"<xml><C>\x01</C></xml>", id="control-character"),
        pytest.param(b"<xml><A>1</A><A>2</A></xml>", id="duplicate-field"),
        pytest.param(b"<xml><S><A>1</A><A>2</A></S></xml>", id="duplicate-nested-field"),
        pytest.param(b"<root><A>1</A></root>", id="root-not-xml"),
        pytest.param(b"<XML><A>1</A></XML>", id="root-upper-case"),
    ],
)
def test_bad_documents_are_rejected(body: bytes) -> None:
    with pytest.raises(XmlRejectedError):
        parse_xml(body)


def test_non_bytes_body_is_rejected() -> None:
    with pytest.raises(XmlRejectedError):
        parse_xml("<xml/>")  # type: ignore[arg-type]


def test_cdata_whitespace_is_kept_and_bare_numbers_are_trimmed() -> None:
    body = (
        "<xml>\n  <Content><![CDATA[  two spaces\nand a line  ]]></Content>\n"
        "  <CreateTime>\n   1718000000  </CreateTime>\n  <Score><![CDATA[ 42 ]]></Score>\n"
        "  <Word> bare words </Word>\n</xml>"
    )
    assert parse_xml(body.encode("utf-8")) == {
        "Content": "  two spaces\nand a line  ",
        "CreateTime": "1718000000",
        "Score": " 42 ",
        "Word": " bare words ",
    }


def test_empty_element_is_an_empty_string() -> None:
    assert parse_xml(b"<xml><EventKey/><Label><![CDATA[]]></Label></xml>") == {
        "EventKey": "",
        "Label": "",
    }


# --- replies -------------------------------------------------------------------------------------

USER, ACCOUNT = "oTianfuUser", "gh_0123456789ab"


@pytest.mark.parametrize(
    "vector", _cases("security_negative_vectors", kinds=("reply_builder_must_escape",))
)
def test_reply_escape_vector_round_trips(vector: Vector | None) -> None:
    v = _vector(vector)
    reply = text_reply(to_user=USER, from_user=ACCOUNT, content=v["content"], create_time=1)
    fields = parse_xml(reply.encode("utf-8"))
    assert fields["Content"] == v["content"]
    assert fields["MsgType"] == "text"
    assert "]]]]><![CDATA[>" in reply


def test_text_reply_swaps_the_header() -> None:
    reply = text_reply(
        to_user=USER, from_user=ACCOUNT, content="第一行\n第二行", create_time=1718000001
    )
    assert reply == (
        "<xml><ToUserName><![CDATA[oTianfuUser]]></ToUserName>"
        "<FromUserName><![CDATA[gh_0123456789ab]]></FromUserName>"
        "<CreateTime>1718000001</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[第一行\n第二行]]></Content></xml>"
    )


def test_control_characters_invalid_in_xml_are_stripped() -> None:
    reply = text_reply(
        to_user=USER, from_user=ACCOUNT, content="a\x00b\x0bc\x1fd\tе\ud800", create_time=1
    )
    assert parse_xml(reply.encode("utf-8"))["Content"] == "abcd\tе"


def test_cdata_of_nested_breakouts() -> None:
    assert cdata("]]>]]>") == "<![CDATA[]]]]><![CDATA[>]]]]><![CDATA[>]]>"


def test_negative_create_time_is_refused() -> None:
    with pytest.raises(ValueError, match="create_time"):
        text_reply(to_user=USER, from_user=ACCOUNT, content="x", create_time=-1)


def _articles(count: int) -> list[Article]:
    return [
        Article(
            title=f"商户{i}]]>满50减10",
            description=f"距离 {i * 100} 米 <b>&",
            url=f"https://tianfu.example/h5/offers?i={i}&lat=30.6",
            pic_url="" if i else "https://tianfu.example/p.png",
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [1, NEWS_ARTICLES_FOR_EVENTS])
def test_news_reply_round_trips(count: int) -> None:
    articles = _articles(count)
    reply = news_reply(
        to_user=USER, from_user=ACCOUNT, articles=articles, create_time=5, max_articles=8
    )
    fields = parse_reply(reply)
    assert fields["MsgType"] == "news"
    assert fields["ArticleCount"] == str(count)
    assert fields["Articles"] == [
        {"Title": a.title, "Description": a.description, "PicUrl": a.pic_url, "Url": a.url}
        for a in articles
    ]


def test_news_reply_to_a_message_allows_one_article() -> None:
    with pytest.raises(ValueError, match="at most 1"):
        news_reply(
            to_user=USER, from_user=ACCOUNT, articles=_articles(2), create_time=5,
            max_articles=NEWS_ARTICLES_FOR_MESSAGES,
        )  # fmt: skip


def test_news_reply_beyond_eight_articles_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 8"):
        news_reply(
            to_user=USER, from_user=ACCOUNT, articles=_articles(9), create_time=5, max_articles=8
        )
    with pytest.raises(ValueError, match="max_articles"):
        news_reply(
            to_user=USER, from_user=ACCOUNT, articles=_articles(9), create_time=5, max_articles=10
        )


def test_news_reply_needs_an_article() -> None:
    with pytest.raises(ValueError, match="at least one"):
        news_reply(to_user=USER, from_user=ACCOUNT, articles=[], create_time=5, max_articles=8)


def test_parse_reply_of_an_encrypted_envelope_is_flat() -> None:
    envelope = (
        "<xml><Encrypt><![CDATA[abc=]]></Encrypt><MsgSignature><![CDATA[f00]]></MsgSignature>"
        "<TimeStamp>1409735669</TimeStamp><Nonce><![CDATA[1320562132]]></Nonce></xml>"
    )
    assert parse_reply(envelope) == {
        "Encrypt": "abc=",
        "MsgSignature": "f00",
        "TimeStamp": "1409735669",
        "Nonce": "1320562132",
    }


def test_success_is_not_xml() -> None:
    assert SUCCESS == "success"
    with pytest.raises(XmlRejectedError):
        parse_reply(SUCCESS)


# Everything XML 1.0 can carry, minus "\r": parsers turn it into "\n", CDATA or not. Pieces
# of CDATA syntax are mixed in, since those are what a naive wrapper gets wrong.
_XML_CHAR = st.characters(
    exclude_categories=["Cs"], exclude_characters="\r\ufffe\uffff", min_codepoint=0x20
) | st.sampled_from(["\n", "\t"])
_XML_TEXT = st.lists(
    st.text(alphabet=_XML_CHAR, max_size=8) | st.sampled_from(["]]>", "]]", "]>", "<![CDATA["])
).map("".join)


@given(content=_XML_TEXT)
def test_text_reply_round_trips_any_content(content: str) -> None:
    reply = text_reply(to_user=USER, from_user=ACCOUNT, content=content, create_time=1)
    fields = parse_xml(reply.encode("utf-8"))
    assert fields["Content"] == content
    assert fields["MsgType"] == "text"
    assert set(fields) == {"ToUserName", "FromUserName", "CreateTime", "MsgType", "Content"}
