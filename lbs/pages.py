"""H5 pages of the Official Account: the nearby list a location reply links to, and "我的".

`/h5/nearby` needs no login: its link is signed and expires (lbs/links.py), which is all the
authority a list of public stores needs. Offers are not personalised on it yet, so the first
paint and a refresh through `/api/v1/nearby` (which knows no user) show the same offers.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lbs.client import WeChatApiError
from lbs.coords import CoordSystem
from lbs.errors import LinkExpiredError, LinkInvalidError
from lbs.h5_session import PAGE_HEADERS, WeChatUser, message_page, templates
from lbs.links import NearbyPoint, read_nearby_token
from lbs.nearby import distance_text, find_nearby
from lbs.schemas import MAX_RADIUS_M, NearbyQuery, NearbyStoreRead
from lbs.wxcrypto import jssdk_signature
from merchants.errors import UnknownCategoryError
from merchants.store_index import LiveStoreIndex
from tianfu.deps import DbSession
from tianfu.settings import TianfuSettings

logger = logging.getLogger(__name__)

NEARBY_LIMIT = 20
JWEIXIN_URL = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"
# Only what the page calls; WeChat refuses an API missing from jsApiList.
JS_API_LIST = ("getLocation", "openLocation")
router = APIRouter(prefix="/h5", tags=["h5"], include_in_schema=False)


# -- the map ---------------------------------------------------------------------------------

MAP_WIDTH, MAP_HEIGHT, MAP_MARGIN_PX = 360, 260, 18
# Metres per degree of latitude on the mean sphere. An equirectangular projection around the
# user is exact enough for a sketch of a few kilometres; distances shown come from the index.
_M_PER_DEG = 6_371_008.8 * math.pi / 180
_SCALE_STEPS_M = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000)


@dataclass(frozen=True)
class MapDot:
    number: int
    store_id: int
    x: float
    y: float


@dataclass(frozen=True)
class MapView:
    """The SVG sketch: the user at the centre, north up. static/h5/nearby.js lays out the
    same way (`layoutMap`) when it redraws after a refresh; change both together."""

    width: int
    height: int
    cx: float
    cy: float
    dots: list[MapDot]
    scale_x1: float
    scale_x2: float
    scale_y: float
    scale_label: str


def scale_label(metres: int) -> str:
    return f"{metres}米" if metres < 1000 else f"{metres // 1000}公里"


def map_view(lat: float, lng: float, stores: list[NearbyStoreRead], *, radius_m: int) -> MapView:
    """Lay the stores out around (lat, lng); the stores' coordinates are in the same system."""
    cx, cy = MAP_WIDTH / 2, MAP_HEIGHT / 2
    m_per_deg_lng = _M_PER_DEG * math.cos(math.radians(lat))
    offsets = [((s.lng - lng) * m_per_deg_lng, (s.lat - lat) * _M_PER_DEG) for s in stores]
    farthest = max((max(abs(dx), abs(dy)) for dx, dy in offsets), default=0.0)
    # 15% beyond the farthest store keeps its dot off the edge; 100 m keeps a store next door
    # from being drawn on top of the user.
    extent_m = max(farthest * 1.15, 100.0) if stores else float(radius_m)
    px_per_m = (min(MAP_WIDTH, MAP_HEIGHT) / 2 - MAP_MARGIN_PX) / extent_m
    dots = [
        MapDot(n, s.id, round(cx + dx * px_per_m, 1), round(cy - dy * px_per_m, 1))
        for n, (s, (dx, dy)) in enumerate(zip(stores, offsets, strict=True), start=1)
    ]
    bar_m = max((m for m in _SCALE_STEPS_M if m * px_per_m <= MAP_WIDTH * 0.3), default=10)
    x1, y = 12.0, MAP_HEIGHT - 12.0
    return MapView(
        width=MAP_WIDTH,
        height=MAP_HEIGHT,
        cx=cx,
        cy=cy,
        dots=dots,
        scale_x1=x1,
        scale_x2=round(x1 + bar_m * px_per_m, 1),
        scale_y=y,
        scale_label=scale_label(bar_m),
    )


# -- the JS-SDK ------------------------------------------------------------------------------


def _page_url(settings: TianfuSettings, request: Request) -> str:
    # The JS-SDK signs the URL as the browser shows it, without the #fragment (spec §8). That
    # is the public URL: behind a proxy this request's own scheme and host may be internal.
    query = request.url.query
    return f"{settings.public_base_url}{request.url.path}" + (f"?{query}" if query else "")


def jssdk_config(request: Request, settings: TianfuSettings) -> dict[str, Any] | None:
    """`wx.config` arguments for this page, or None where the JS-SDK cannot be used."""
    if "micromessenger" not in request.headers.get("user-agent", "").lower():
        return None  # outside WeChat there is no JS-SDK; don't fetch a ticket for nothing
    client = getattr(request.app.state, "wechat_client", None)
    if client is None or settings.wechat.appid is None:
        return None
    try:
        ticket = client.jsapi_ticket()
    except WeChatApiError as exc:
        # WeChat down, or refusing us (IP whitelist, secret): the list is still useful without
        # the JS-SDK, only without "navigate" and the live position.
        logger.warning("no jsapi_ticket (%s); nearby page served without the JS-SDK", exc)
        return None
    timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
    return {
        "appId": settings.wechat.appid,
        "timestamp": int(timestamp),
        "nonceStr": nonce,
        "signature": jssdk_signature(ticket, nonce, timestamp, _page_url(settings, request)),
        "jsApiList": list(JS_API_LIST),
    }


# -- routes ----------------------------------------------------------------------------------


def _nearby_stores(
    request: Request, session: DbSession, point: NearbyPoint, radius_m: int
) -> tuple[list[NearbyStoreRead], str | None]:
    live_index: LiveStoreIndex = request.app.state.store_index
    query = NearbyQuery(
        lat=point.lat_gcj02,
        lng=point.lng_gcj02,
        coord=CoordSystem.GCJ02,
        radius_m=radius_m,
        limit=NEARBY_LIMIT,
        category=point.category,
    )
    offers = request.app.state.offer_lookup
    try:
        return find_nearby(session, live_index, query, offers=offers), point.category
    except UnknownCategoryError:
        # A category renamed since the link was sent: all nearby stores beat an error page.
        query = query.model_copy(update={"category": None})
        return find_nearby(session, live_index, query, offers=offers), None


def _point_or_page(
    request: Request, settings: TianfuSettings, token: str
) -> NearbyPoint | Response:
    """The point of a usable link, or the page that tells the user why it is not usable."""
    try:
        point = read_nearby_token(settings, token)
    except LinkExpiredError:
        title, message, status = "链接已过期", "请回到公众号，重新发送你的位置。", 410
    except LinkInvalidError:
        title, message, status = "链接无效", "请从公众号的消息里打开这个页面。", 403
    else:
        if request.app.state.store_index.ready:
            return point
        title, message, status = "稍后再试", "商户数据正在加载，请稍后再试。", 503
    page = message_page(request, status_code=status, title=title, message=message)
    if status == 503:
        page.headers["Retry-After"] = "5"
    return page


@router.get("/nearby", response_class=HTMLResponse)
def nearby_page(request: Request, session: DbSession, t: str = "") -> Response:
    settings: TianfuSettings = request.app.state.settings
    point = _point_or_page(request, settings, t)
    if isinstance(point, Response):
        return point
    radius_m = min(point.radius_m or settings.wechat.nearby_radius_m, MAX_RADIUS_M)
    stores, category = _nearby_stores(request, session, point, radius_m)
    config = {"apiUrl": "/api/v1/nearby", "radiusM": radius_m, "limit": NEARBY_LIMIT}
    config |= {"category": category, "wx": jssdk_config(request, settings)}
    context = {
        "stores": stores,
        "map": map_view(point.lat_gcj02, point.lng_gcj02, stores, radius_m=radius_m),
        "summary": f"{distance_text(radius_m)}内 {len(stores)} 家",
        "status": "按你发送的位置" if stores else "",
        "config": config,
        "jweixin_url": JWEIXIN_URL,
    }
    return templates.TemplateResponse(request, "h5/nearby.html", context, headers=PAGE_HEADERS)


def mask_openid(openid: str) -> str:
    # Enough to tell two test accounts apart on screen, not enough to copy someone's openid.
    if len(openid) <= 8:
        return openid[:2] + "****"
    return f"{openid[:4]}****{openid[-4:]}"


@router.get("/me", response_class=HTMLResponse)
def me_page(request: Request, openid: WeChatUser) -> Response:
    context = {"masked_openid": mask_openid(openid)}
    return templates.TemplateResponse(request, "h5/me.html", context, headers=PAGE_HEADERS)
