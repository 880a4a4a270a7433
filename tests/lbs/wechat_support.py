"""An Official Account for tests, and a way to push to `/wechat` exactly as WeChat does."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import httpx
from defusedxml.ElementTree import fromstring

from lbs.config import decode_encoding_aes_key
from lbs.wechat_push import EncryptMode, build_push, location_message_xml, read_reply
from lbs.wxcrypto import WXBizMsgCrypt
from tianfu.settings import TianfuSettings, load_settings

# Throwaway values in the shapes WeChat uses; nothing here is a real account.
TOKEN = "TianfuTestToken2026"
APPID = "wx1234567890abcdef"
APPSECRET = "0123456789abcdef0123456789abcdef"
ENCODING_AES_KEY = "TianfuTestEncodingAESKey0123456789abcdefABC"
ACCOUNT_ID = "gh_7ianfu7e57ac"
SECRET_KEY = "test-secret-key-for-signing-h5-links-0123456789"
USER = "oTianfuTestUser000000000001"


def wechat_settings(database_url: str, **wechat: Any) -> TianfuSettings:
    values: dict[str, Any] = {
        "token": TOKEN,
        "appid": APPID,
        "appsecret": APPSECRET,
        "encoding_aes_key": ENCODING_AES_KEY,
        "account_id": ACCOUNT_ID,
    }
    values.update(wechat)
    return load_settings(database_url=database_url, secret_key=SECRET_KEY, wechat=values)


def account_crypt(
    token: str = TOKEN, key: str = ENCODING_AES_KEY, appid: str = APPID
) -> WXBizMsgCrypt:
    return WXBizMsgCrypt(token=token, aes_key=decode_encoding_aes_key(key), appid=appid)


_msg_ids = itertools.count(int(time.time() * 1000) * 1000)


def next_msg_id() -> int:
    return next(_msg_ids)


def square_location(user: str) -> str:
    """A new location message from `user`, sent from Tianfu Square, as WeChat would push it."""
    return location_message_xml(
        to_user=ACCOUNT_ID,
        from_user=user,
        lat=TIANFU_SQUARE[0],
        lng=TIANFU_SQUARE[1],
        msg_id=next_msg_id(),
        create_time=int(time.time()),
    )


@dataclass
class Pusher:
    """Plays WeChat's side of the callback against an in-process or loopback app."""

    http: httpx.AsyncClient
    mode: EncryptMode = EncryptMode.safe
    token: str = TOKEN
    crypt: WXBizMsgCrypt = field(default_factory=account_crypt)
    clock: Any = time.time

    async def push(self, message_xml: str, *, nonce: str = "1320562132") -> httpx.Response:
        request = build_push(
            message_xml,
            token=self.token,
            mode=self.mode,
            crypt=self.crypt,
            to_user=ACCOUNT_ID,
            timestamp=int(self.clock()),
            nonce=nonce,
        )
        return await self.http.post("/wechat", params=request.params, content=request.body)

    async def reply(self, message_xml: str) -> str:
        """The plaintext reply XML (or "success"), its signature checked and decrypted."""
        response = await self.push(message_xml)
        assert response.status_code == 200, response.text
        return read_reply(response.content, token=self.token, crypt=self.crypt)

    async def reply_element(self, message_xml: str) -> Element:
        reply = await self.reply(message_xml)
        assert reply != "success", "expected a message, got success"
        return fromstring(reply)


def articles_of(reply: Element) -> list[dict[str, str]]:
    assert reply.findtext("MsgType") == "news"
    items = reply.findall("Articles/item")
    assert reply.findtext("ArticleCount") == str(len(items))
    return [
        {name: item.findtext(name) or "" for name in ("Title", "Description", "Url", "PicUrl")}
        for item in items
    ]


# -- a small town around Tianfu Square ---------------------------------------------------------

TIANFU_SQUARE = (30.6574, 104.0661)
# A merchant name that would break a naive CDATA wrapper (spec §5, vector cdata_breakout_in_reply)
HOSTILE_NAME = "老码头]]><MsgType>news</MsgType>火锅"


@dataclass(frozen=True)
class Town:
    url: str
    hotpot_id: int  # ~100 m east of the square, always open, hostile name
    coffee_id: int  # ~600 m north
    far_id: int  # supermarket ~12 km south


def build_town(url: str) -> Town:
    from merchants.opening_hours import OpeningHours
    from merchants.service import create_store
    from tests.builders import make_merchant
    from tianfu import migrate
    from tianfu.db import create_db_engine, make_session_factory, session_scope

    engine = create_db_engine(url)
    migrate.upgrade(engine)
    always = OpeningHours.always_open()
    try:
        with session_scope(make_session_factory(engine)) as session:

            def store(category: str, name: str, lat: float, lng: float) -> int:
                merchant = make_merchant(session, name=name, category_code=category)
                return create_store(
                    session,
                    merchant_id=merchant.id,
                    name=name,
                    address="成都市青羊区人民南路一段1号",
                    lat_gcj02=lat,
                    lng_gcj02=lng,
                    opening_hours=always,
                ).id

            lat, lng = TIANFU_SQUARE
            return Town(
                url=url,
                hotpot_id=store("hotpot", HOSTILE_NAME, lat, lng + 0.00104),
                coffee_id=store("coffee", "晨光咖啡(人民南路店)", lat + 0.0054, lng),
                far_id=store("supermarket", "华府生鲜超市", 30.5457, 104.0694),
            )
    finally:
        engine.dispose()
