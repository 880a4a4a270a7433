"""H5 pages of the coupon engine inside WeChat: an offer with its 领取 button, my coupons (code
and QR for the counter), my points. Every page needs the WeChat session (lbs.h5_session).

Templates: a Jinja environment of our own over coupons/templates first and lbs/templates second
(a ChoiceLoader), so these pages extend lbs's "h5/base.html" and share its stylesheet, while
lbs's environment stays untouched. Adding our folder to lbs's loader at import time instead
would make lbs's pages depend on whether this module happened to be imported.

Scripts and styles: the pages' CSP (lbs.h5_session.PAGE_HEADERS) allows scripts and styles from
our origin only. The few lines these pages need are inline, allowed by a nonce made for each
response, which keeps them next to the markup they drive and needs no static route of their own.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from coupons import claims, points
from coupons.api import (
    COUPON_STATUS_ZH,
    POINTS_HISTORY_LIMIT,
    OfferPublicRead,
    expiry_zh,
    shanghai_text,
    shown_status,
)
from coupons.api import offer_view as build_offer_view
from coupons.codes import format_code
from coupons.errors import OfferNotFoundError
from coupons.models import ClaimStatus, OfferStatus, PointsKind
from coupons.qr import qr_svg
from lbs.h5_session import PAGE_HEADERS, WeChatUser, message_page, static_url
from tianfu.deps import DbSession
from tianfu.orm import utcnow

_HERE = Path(__file__).parent
_LBS_TEMPLATES = Path(__file__).parents[1] / "lbs" / "templates"

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(_HERE / "templates"), jinja2.FileSystemLoader(_LBS_TEMPLATES)]
        ),
        # On for every template whatever its name: titles and store names come from merchants.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
templates.env.globals["static_url"] = static_url

POINTS_KIND_ZH = {
    PointsKind.earn: "消费获得",
    PointsKind.spend: "积分抵扣",
    PointsKind.reverse: "退款冲正",
    PointsKind.exchange: "积分兑换",
}
router = APIRouter(prefix="/h5", tags=["h5"], include_in_schema=False)


def page_headers(nonce: str) -> dict[str, str]:
    """PAGE_HEADERS with this response's nonce added to script-src and style-src."""
    directives = []
    for directive in PAGE_HEADERS["Content-Security-Policy"].split(";"):
        directive = directive.strip()
        if directive.split(" ", 1)[0] in ("script-src", "style-src"):
            directive += f" 'nonce-{nonce}'"
        directives.append(directive)
    return PAGE_HEADERS | {"Content-Security-Policy": "; ".join(directives)}


def render_with_nonce(
    environment: Jinja2Templates, request: Request, name: str, context: dict[str, Any]
) -> Response:
    """A page of `environment` whose inline scripts and styles carry a nonce made for this
    response, allowed by its CSP (the H5 pages of coupons, payments and cinema)."""
    nonce = secrets.token_urlsafe(16)
    return environment.TemplateResponse(
        request, name, context | {"nonce": nonce}, headers=page_headers(nonce)
    )


def _render(request: Request, name: str, context: dict[str, Any]) -> Response:
    return render_with_nonce(templates, request, name, context)


def _coupon_item(
    claim_code: str, status: ClaimStatus, expires_at: datetime | None, **extra: Any
) -> dict[str, Any]:
    usable = status is ClaimStatus.claimed
    return {
        "code": format_code(claim_code),
        "status": status.value,
        "status_zh": COUPON_STATUS_ZH[status],
        "expires_zh": expiry_zh(expires_at),
        # A QR only while it can be used: a cashier scanning a used coupon gains nothing.
        "qr": Markup(qr_svg(claim_code)) if usable else None,  # noqa: S704  # our own SVG
    } | extra


def closed_zh(offer: OfferPublicRead, now: datetime) -> str | None:
    """Why the button cannot be pressed, or None when it can."""
    if offer.status is OfferStatus.paused:
        return "活动已暂停"
    if offer.status is not OfferStatus.active:
        return "活动已结束"
    if offer.valid_from is not None and now < offer.valid_from:
        return "活动未开始"
    if offer.valid_until is not None and now >= offer.valid_until:
        return "活动已结束"
    if offer.stock_left == 0:
        return "已抢光"
    return None


@router.get("/offers/{offer_id}", response_class=HTMLResponse)
def offer_page(request: Request, session: DbSession, openid: WeChatUser, offer_id: int) -> Response:
    now = utcnow()
    try:
        offer = build_offer_view(session, offer_id, now=now)
    except OfferNotFoundError:
        return message_page(
            request, status_code=404, title="优惠不存在", message="该优惠不存在或尚未上线。"
        )
    mine = [
        _coupon_item(m.claim.code, shown_status(m.claim, now), m.claim.expires_at)
        for m in claims.user_claims(session, openid)
        if m.claim.offer_id == offer_id
    ]
    config = {
        "claimUrl": f"/api/v1/offers/{offer_id}/claims",
        "geo": offer.geo_targeted,
        "couponsUrl": "/h5/me/coupons",
    }
    context = {"offer": offer, "closed_zh": closed_zh(offer, now), "mine": mine, "config": config}
    return _render(request, "h5/coupon_offer.html", context)


@router.get("/me/coupons", response_class=HTMLResponse)
def my_coupons_page(request: Request, session: DbSession, openid: WeChatUser) -> Response:
    now = utcnow()
    coupons = [
        _coupon_item(
            m.claim.code,
            shown_status(m.claim, now),
            m.claim.expires_at,
            title=m.offer_title_zh,
            offer_id=m.claim.offer_id,
        )
        for m in claims.user_claims(session, openid)
    ]
    return _render(request, "h5/my_coupons.html", {"coupons": coupons})


@router.get("/me/points", response_class=HTMLResponse)
def my_points_page(request: Request, session: DbSession, openid: WeChatUser) -> Response:
    entries = [
        {
            "kind_zh": POINTS_KIND_ZH[entry.kind],
            "delta": f"{entry.delta:+d}",
            "gain": entry.delta > 0,
            "balance_after": entry.balance_after,
            "at": shanghai_text(entry.created_at),
        }
        for entry in points.history(session, openid, limit=POINTS_HISTORY_LIMIT)
    ]
    context = {"balance": points.balance(session, openid), "entries": entries}
    return _render(request, "h5/my_points.html", context)
