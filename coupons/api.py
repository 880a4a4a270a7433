"""The coupon API a WeChat user's H5 pages call: read an offer, claim it, list my coupons and
points. Routes are thin; the rules are coupons.claims' and coupons.points'.

The read models of this API live here with the few texts they carry (terms in Chinese), since
the H5 pages (coupons/pages.py) show exactly these.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Self

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from coupons import claims, points
from coupons.codes import format_code
from coupons.errors import OfferNotFoundError
from coupons.explain import only_on_zh, weekdays_zh, windows_zh, yuan
from coupons.models import Claim, ClaimStatus, Offer, OfferStatus, time_windows_of, weekdays_of
from coupons.rules import OfferKind
from coupons.schemas import PointsEntryRead
from coupons.service import get_offer
from lbs.coords import CoordinateError, CoordSystem, to_gcj02
from lbs.h5_session import WeChatLoginRequiredError, current_openid
from merchants.models import Merchant, Store, StoreStatus
from merchants.opening_hours import SHANGHAI
from tianfu.deps import DbSession
from tianfu.errors import InvalidInputError, TianfuError
from tianfu.orm import utcnow

router = APIRouter(prefix="/api/v1", tags=["coupons"])


async def api_user(request: Request) -> str:
    """The session's openid. Without a session: 401 JSON whatever the method. WeChatUser would
    send a GET to WeChat's OAuth, which suits a page but not a script's fetch (a cross-origin
    redirect it cannot follow); the page reloads itself to log in again.

    Async, though it calls the sync `current_openid`: checking the cookie's HMAC takes
    microseconds, and a sync dependency would cost the request a hop through the thread pool."""
    openid = current_openid(request)
    if openid is None:
        raise TianfuError(
            "open this page from the WeChat Official Account",
            status_code=401,
            code=WeChatLoginRequiredError.code,
        )
    return openid


ApiUser = Annotated[str, Depends(api_user)]

MAX_STORES_LISTED = 50
POINTS_HISTORY_LIMIT = 50
COUPON_STATUS_ZH = {
    ClaimStatus.claimed: "可使用",
    ClaimStatus.redeemed: "已使用",
    ClaimStatus.expired: "已过期",
    ClaimStatus.void: "已作废",
}
KIND_ZH = {
    OfferKind.fixed_off: "立减",
    OfferKind.threshold_off: "满减",
    OfferKind.percent_off: "折扣",
    OfferKind.gift: "赠品",
    OfferKind.points_exchange: "积分兑换",
}
# Offers still being written or reviewed are nobody's business but the merchant's and the bank's.
_UNPUBLISHED = (OfferStatus.draft, OfferStatus.pending_review)

Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


# -- read models ------------------------------------------------------------------------------


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Made once per page load (crypto.randomUUID): a double tap or a retry claims once.
    client_request_id: str = Field(min_length=8, max_length=64, pattern=r"^[\x21-\x7e]+$")
    lat: Latitude | None = None
    lng: Longitude | None = None
    coord: CoordSystem = CoordSystem.GCJ02

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.lat is None) != (self.lng is None):
            raise ValueError("send lat and lng together, or neither")
        return self

    def position_gcj02(self) -> tuple[float | None, float | None]:
        if self.lat is None or self.lng is None:
            return None, None
        try:
            point = to_gcj02(self.lat, self.lng, self.coord)
        except CoordinateError as exc:
            raise InvalidInputError(str(exc)) from exc
        return point.lat, point.lng


class CouponRead(BaseModel):
    id: int
    offer_id: int
    code: str = Field(description='Grouped for reading aloud: "4821 0937 5516"')
    # A claimed coupon past expires_at reads as expired before the expiry job has run.
    status: ClaimStatus
    status_zh: str
    claimed_at: datetime
    expires_at: datetime | None
    expires_zh: str = Field(description='"有效期至2026-12-31 24:00" (Asia/Shanghai) or "长期有效"')
    redeemed_at: datetime | None


class MyCouponRead(CouponRead):
    offer_title_zh: str


class PointsRead(BaseModel):
    balance: int
    entries: list[PointsEntryRead] = Field(description="Newest first, at most 50")


class OfferStoreRead(BaseModel):
    id: int
    name: str
    address: str


class OfferPublicRead(BaseModel):
    id: int
    merchant_name: str
    title_zh: str
    kind: OfferKind
    kind_zh: str
    description: str
    status: OfferStatus
    claimable: bool = Field(description="Active, in its validity window and with stock left")
    terms_zh: list[str] = Field(description='"满100元减20元", "每人限领1张", "仅限周末使用" …')
    validity_zh: str
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days_after_claim: int | None
    stock_left: int = Field(description="Coupons still claimable, by stock and budget alike")
    per_user_limit: int
    geo_targeted: bool = Field(description="Claiming needs the user's position")
    store_count: int
    stores: list[OfferStoreRead] = Field(description="The first 50 stores it applies to")


# -- texts ------------------------------------------------------------------------------------


def shanghai_text(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def until_text(moment: datetime) -> str:
    """An exclusive end as people write it: midnight closes the day before, "12-31 24:00"."""
    local = moment.astimezone(SHANGHAI)
    if (local.hour, local.minute) == (0, 0):
        return f"{(local - timedelta(days=1)):%Y-%m-%d} 24:00"
    return f"{local:%Y-%m-%d %H:%M}"


def expiry_zh(expires_at: datetime | None) -> str:
    return f"有效期至{until_text(expires_at)}" if expires_at is not None else "长期有效"


def _benefit_zh(offer: Offer) -> str:
    match offer.kind:
        case OfferKind.fixed_off:
            text = f"立减{yuan(offer.amount_off_fen)}元"
        case OfferKind.threshold_off:
            text = f"满{yuan(offer.threshold_fen)}元减{yuan(offer.amount_off_fen)}元"
        case OfferKind.percent_off:
            # 120‰ off is 8.8折: the price paid in tenths, written like yuan (880 -> "8.8").
            text = f"{yuan(1000 - offer.discount_permille)}折"
            if offer.cap_fen:
                text += f"，最高减{yuan(offer.cap_fen)}元"
        case OfferKind.gift:
            return f"赠价值{yuan(offer.gift_value_fen)}元礼品"
        case OfferKind.points_exchange:
            gets = [f"立减{yuan(offer.amount_off_fen)}元"] if offer.amount_off_fen else []
            if offer.gift_value_fen:
                gets.append(f"价值{yuan(offer.gift_value_fen)}元礼品")
            return f"{offer.points_cost}积分兑换{'及'.join(gets)}"
    if offer.gift_value_fen:
        text += f"，另赠价值{yuan(offer.gift_value_fen)}元礼品"
    return text


def terms_zh(offer: Offer) -> list[str]:
    lines = [_benefit_zh(offer)]
    stated = offer.threshold_fen if offer.kind is OfferKind.threshold_off else 0
    if offer.min_spend_fen > stated:
        lines.append(f"满{yuan(offer.min_spend_fen)}元可用")
    if (weekdays := weekdays_of(offer.weekdays_mask)) is not None:
        lines.append(only_on_zh(weekdays_zh(weekdays)))
    if windows := time_windows_of(offer.time_windows):
        lines.append(only_on_zh(windows_zh((w.start, w.end) for w in windows)))
    if offer.new_customers_only:
        lines.append("仅限新客")
    if offer.exclusive:
        lines.append("不与其他优惠同享")
    lines.append(f"每人限领{offer.per_user_limit}张")
    if offer.per_day_limit is not None:
        lines.append(f"每日限量{offer.per_day_limit}张")
    where = []
    if offer.claim_radius_m is not None:
        where.append(f"适用门店{offer.claim_radius_m}米内")
    if offer.claim_area_gcj02 is not None:
        where.append("活动区域内")
    if where:
        lines.append(f"需在{'或'.join(where)}领取")
    return lines


def validity_zh(offer: Offer) -> str:
    parts = []
    if offer.valid_from is not None:
        parts.append(f"{shanghai_text(offer.valid_from)}起")
    if offer.valid_days_after_claim is not None:
        parts.append(f"领取后{offer.valid_days_after_claim}天内有效")
        if offer.valid_until is not None:
            parts.append(f"最晚至{until_text(offer.valid_until)}")
    elif offer.valid_until is not None:
        parts.append(f"有效期至{until_text(offer.valid_until)}")
    return "，".join(parts) or "长期有效"


# -- views ------------------------------------------------------------------------------------


def stock_left(offer: Offer) -> int:
    left = offer.total_stock - offer.claimed_count
    if offer.max_benefit_fen > 0:  # the budget may run out before the stock does
        left = min(left, (offer.budget_fen - offer.claimed_fen) // offer.max_benefit_fen)
    return max(left, 0)


def _stores(session: Session, offer: Offer) -> tuple[int, list[OfferStoreRead]]:
    statement = select(Store.id, Store.name, Store.address).where(
        Store.merchant_id == offer.merchant_id, Store.status != StoreStatus.closed
    )
    if scoped := [link.store_id for link in offer.scope]:  # none listed: every store
        statement = statement.where(Store.id.in_(scoped))
    count = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.execute(statement.order_by(Store.id).limit(MAX_STORES_LISTED))
    return count, [OfferStoreRead(id=i, name=name, address=address) for i, name, address in rows]


def offer_view(session: Session, offer_id: int, *, now: datetime) -> OfferPublicRead:
    offer = get_offer(session, offer_id)
    if offer.status in _UNPUBLISHED:
        raise OfferNotFoundError(f"优惠 {offer_id} 不存在")
    store_count, stores = _stores(session, offer)
    merchant = session.get_one(Merchant, offer.merchant_id)
    left = stock_left(offer)
    in_window = (offer.valid_from is None or offer.valid_from <= now) and (
        offer.valid_until is None or now < offer.valid_until
    )
    return OfferPublicRead(
        id=offer.id,
        merchant_name=merchant.name,
        title_zh=offer.title_zh,
        kind=offer.kind,
        kind_zh=KIND_ZH[offer.kind],
        description=offer.description,
        status=offer.status,
        claimable=offer.status is OfferStatus.active and in_window and left > 0,
        terms_zh=terms_zh(offer),
        validity_zh=validity_zh(offer),
        valid_from=offer.valid_from,
        valid_until=offer.valid_until,
        valid_days_after_claim=offer.valid_days_after_claim,
        stock_left=left,
        per_user_limit=offer.per_user_limit,
        geo_targeted=offer.claim_radius_m is not None or offer.claim_area_gcj02 is not None,
        store_count=store_count,
        stores=stores,
    )


def shown_status(coupon: Claim, now: datetime) -> ClaimStatus:
    # The expiry job marks expired coupons in batches; until it has, the clock decides.
    expires_at = coupon.expires_at
    if coupon.status is ClaimStatus.claimed and expires_at is not None and expires_at <= now:
        return ClaimStatus.expired
    return coupon.status


def coupon_read(coupon: Claim, *, now: datetime) -> CouponRead:
    status = shown_status(coupon, now)
    return CouponRead(
        id=coupon.id,
        offer_id=coupon.offer_id,
        code=format_code(coupon.code),
        status=status,
        status_zh=COUPON_STATUS_ZH[status],
        claimed_at=coupon.claimed_at,
        expires_at=coupon.expires_at,
        expires_zh=expiry_zh(coupon.expires_at),
        redeemed_at=coupon.redeemed_at,
    )


# -- routes -----------------------------------------------------------------------------------


@router.get("/offers/{offer_id}", response_model=OfferPublicRead)
def read_offer(session: DbSession, offer_id: int) -> OfferPublicRead:
    return offer_view(session, offer_id, now=utcnow())


@router.post(
    "/offers/{offer_id}/claims",
    response_model=CouponRead,
    status_code=201,
    responses={200: {"model": CouponRead, "description": "A repeat of an earlier request"}},
)
async def claim_offer(
    offer_id: int,
    body: ClaimRequest,
    openid: ApiUser,
    request: Request,
    response: Response,
) -> CouponRead:
    # The whole transaction in one trip to the thread pool: a session dependency and a sync
    # route would take three (open, route, commit) on the hottest route of a busy offer.
    coupon, now = await run_in_threadpool(
        _claim_committed,
        request.app.state.session_factory,
        request.app.state.autocommit_session_factory,
        offer_id,
        body,
        openid,
    )
    # A repeat gets the coupon an earlier request issued, stamped with that request's time.
    if coupon.claimed_at != now:
        response.status_code = 200
    # No offer title here: reading it would be one more round trip before the commit, while
    # the transaction holds the offer row's lock that every other claim of the offer waits for.
    return coupon_read(coupon, now=now)


def _claim_committed(
    session_factory: sessionmaker[Session],
    autocommit_factory: sessionmaker[Session] | None,
    offer_id: int,
    body: ClaimRequest,
    openid: str,
) -> tuple[Claim, datetime]:
    """Claim and commit before the answer is written, as every route does (tianfu.deps)."""
    now = utcnow()
    lat, lng = body.position_gcj02()
    if autocommit_factory is not None:
        # Most requests to a popular offer come after it sold out: refuse those in one round
        # trip, without a transaction. The claim below checks everything again, atomically.
        with autocommit_factory() as reader:
            claims.refuse_early(
                reader, offer_id=offer_id, openid=openid, client_request_id=body.client_request_id
            )
    with session_factory() as session, session.begin():
        # The claim is the transaction's first statement, as SQLite needs (coupons.claims).
        coupon = claims.claim(
            session,
            offer_id=offer_id,
            openid=openid,
            client_request_id=body.client_request_id,
            now=now,
            lat_gcj02=lat,
            lng_gcj02=lng,
        )
    return coupon, now


@router.get("/me/coupons", response_model=list[MyCouponRead])
def my_coupons(session: DbSession, openid: ApiUser) -> list[MyCouponRead]:
    now = utcnow()
    return [
        MyCouponRead(
            **coupon_read(mine.claim, now=now).model_dump(), offer_title_zh=mine.offer_title_zh
        )
        for mine in claims.user_claims(session, openid)
    ]


@router.get("/me/points", response_model=PointsRead)
def my_points(session: DbSession, openid: ApiUser) -> PointsRead:
    entries = points.history(session, openid, limit=POINTS_HISTORY_LIMIT)
    return PointsRead(
        balance=points.balance(session, openid),
        entries=[PointsEntryRead.model_validate(entry) for entry in entries],
    )
