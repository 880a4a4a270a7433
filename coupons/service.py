"""Offers through their lifecycle: draft -> pending_review -> active <-> paused -> ended/expired.

Maker-checker: whoever wrote or last edited an offer cannot approve or reject it. Editing is
allowed in draft and paused only, and an edited paused offer goes back to draft, so changed terms
are always reviewed again before anyone can claim them. State changes are conditional UPDATEs
(`WHERE status IN (...)`), so two people acting on one offer at once cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from geoalchemy2 import WKTElement
from geoalchemy2.shape import to_shape
from pydantic import ValidationError
from sqlalchemy import CursorResult, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from coupons.errors import (
    InvalidOfferTermsError,
    OfferNotEditableError,
    OfferNotFoundError,
    OfferReviewConflictError,
    OfferTransitionError,
)
from coupons.models import (
    Claim,
    ClaimStatus,
    Offer,
    OfferStatus,
    OfferStore,
    time_windows_of,
    weekdays_mask,
    weekdays_of,
)
from coupons.rules import OfferTerms, headline_value_fen
from coupons.schemas import GeoPointGcj02, OfferCreate, OfferUpdate, TimeWindowIn, area_polygon
from merchants.errors import MerchantNotFoundError
from merchants.models import Merchant, Store
from tianfu.geo import STORAGE_SRID
from tianfu.orm import UTCDateTime, utcnow

STATUS_ZH = {
    OfferStatus.draft: "草稿",
    OfferStatus.pending_review: "待审核",
    OfferStatus.active: "进行中",
    OfferStatus.paused: "已暂停",
    OfferStatus.ended: "已结束",
    OfferStatus.expired: "已过期",
}
_EDITABLE = (OfferStatus.draft, OfferStatus.paused)
# Fields of OfferCreate stored in another shape than given (mask, JSON, geometry, scope rows).
_SHAPED_FIELDS = {"weekdays", "time_windows", "store_ids", "claim_area_gcj02"}
_LIVE = (OfferStatus.draft, OfferStatus.pending_review, OfferStatus.active, OfferStatus.paused)


@dataclass(frozen=True)
class OfferFigures:
    stock_left: int
    budget_left_fen: int
    claimed: int
    redeemed: int  # coupons currently redeemed (a restored one counts again once re-redeemed)
    restored: int  # coupons that came back after a refund or an undo
    expired: int
    void: int


@dataclass(frozen=True)
class ExpiryCounts:
    offers: int
    claims: int


# -- reading ----------------------------------------------------------------------------------


def get_offer(
    session: Session, offer_id: int, *, fresh: bool = False, with_scope: bool = True
) -> Offer:
    """The offer, with its store scope unless `with_scope` is False (a query saved where the
    scope is not needed); `fresh` re-reads counters changed by Core UPDATEs."""
    statement = select(Offer).where(Offer.id == offer_id)
    if with_scope:
        statement = statement.options(selectinload(Offer.scope))
    if fresh:
        statement = statement.execution_options(populate_existing=True)
    offer = session.scalars(statement).one_or_none()
    if offer is None:
        raise OfferNotFoundError(f"优惠 {offer_id} 不存在")
    return offer


def terms_of(offer: Offer) -> OfferTerms:
    """The offer as coupons.rules judges it; its `scope` must have been loaded."""
    return offer.terms(frozenset(link.store_id for link in offer.scope) or None)


def offer_figures(session: Session, offer_id: int) -> OfferFigures:
    offer = get_offer(session, offer_id, fresh=True)
    counts = session.execute(
        select(
            func.count().filter(Claim.status == ClaimStatus.redeemed),
            func.count().filter(Claim.restore_count > 0),
            func.count().filter(Claim.status == ClaimStatus.expired),
            func.count().filter(Claim.status == ClaimStatus.void),
        ).where(Claim.offer_id == offer_id)
    ).one()
    return OfferFigures(
        stock_left=offer.total_stock - offer.claimed_count,
        budget_left_fen=offer.budget_fen - offer.claimed_fen,
        claimed=offer.claimed_count,
        redeemed=counts[0],
        restored=counts[1],
        expired=counts[2],
        void=counts[3],
    )


# Built once: this runs for nearby answers and WeChat replies, where building it per call costs
# more than running it.
# Active, still valid at :now, with stock and budget for one more coupon.
_CLAIMABLE = (
    Offer.status == OfferStatus.active,
    or_(Offer.valid_until.is_(None), Offer.valid_until > bindparam("now", type_=UTCDateTime())),
    Offer.claimed_count < Offer.total_stock,
    Offer.claimed_fen + Offer.max_benefit_fen <= Offer.budget_fen,
)
_ACTIVE_OFFERS_OF_STORES = (
    select(Store.id, Offer)
    .join(Offer, Offer.merchant_id == Store.merchant_id)
    .where(Store.id.in_(bindparam("store_ids", expanding=True)), *_CLAIMABLE)
    .options(selectinload(Offer.scope))
    .order_by(Store.id, Offer.id)
)


_ACTIVE_OFFERS_OF_MERCHANTS = (
    select(Offer)
    .where(Offer.merchant_id.in_(bindparam("merchant_ids", expanding=True)), *_CLAIMABLE)
    .options(selectinload(Offer.scope))
    .order_by(Offer.id)
)


def active_offers_of_merchants(
    session: Session, merchant_ids: Collection[int], now: datetime
) -> dict[int, list[OfferTerms]]:
    """Each merchant's claimable offers (as active_offers_for_stores judges them, store scopes
    included): two queries for any number of merchants."""
    result: dict[int, list[OfferTerms]] = {merchant_id: [] for merchant_id in merchant_ids}
    if not result:
        return result
    offers = session.scalars(
        _ACTIVE_OFFERS_OF_MERCHANTS, {"merchant_ids": list(result), "now": now}
    ).all()
    for offer in offers:
        result[offer.merchant_id].append(terms_of(offer))
    return result


def merchants_with_active_offers(session: Session) -> frozenset[int]:
    """The merchants that have at least one active offer (a small set, read in one query)."""
    return frozenset(
        session.scalars(
            select(Offer.merchant_id).where(Offer.status == OfferStatus.active).distinct()
        )
    )


def active_offers_for_stores(
    session: Session, store_ids: Collection[int], now: datetime
) -> dict[int, list[OfferTerms]]:
    """Each store's claimable offers, for nearby search and the WeChat reply: two queries (the
    offers of the stores' merchants, then their store scopes), whatever the number of stores.

    Offers past valid_until or without stock or budget for one more coupon are left out; the
    remaining rules (weekday, time of day, spend, the user) are coupons.rules' to judge.
    """
    result: dict[int, list[OfferTerms]] = {store_id: [] for store_id in store_ids}
    if not result:
        return result
    rows = session.execute(_ACTIVE_OFFERS_OF_STORES, {"store_ids": list(result), "now": now}).all()
    terms_by_offer: dict[int, OfferTerms] = {}
    for store_id, offer in rows:
        terms = terms_by_offer.get(offer.id)
        if terms is None:
            terms = terms_by_offer[offer.id] = terms_of(offer)
        if terms.store_ids is None or store_id in terms.store_ids:
            result[store_id].append(terms)
    return result


# -- writing the terms ------------------------------------------------------------------------


def create_offer(
    session: Session, *, merchant_id: int, data: OfferCreate, created_by: str
) -> Offer:
    if session.get(Merchant, merchant_id) is None:
        raise MerchantNotFoundError(f"merchant {merchant_id} does not exist")
    offer = Offer(
        merchant_id=merchant_id,
        status=OfferStatus.draft,
        created_by=created_by,
        claimed_count=0,
        claimed_fen=0,
    )
    _apply(session, offer, data, scope=[])
    session.add(offer)
    session.flush()
    return offer


def update_offer(session: Session, offer_id: int, *, changes: OfferUpdate, edited_by: str) -> Offer:
    offer = get_offer(session, offer_id, fresh=True)
    if offer.status not in _EDITABLE:
        raise OfferNotEditableError(f"{STATUS_ZH[offer.status]}的优惠不能修改，请先暂停")
    merged = _as_create_fields(offer) | changes.model_dump(exclude_unset=True)
    try:
        data = OfferCreate.model_validate(merged)
    except ValidationError as exc:
        raise InvalidOfferTermsError(_first_problem(exc)) from exc
    _apply(session, offer, data, scope=offer.scope)
    offer.edited_by = edited_by
    offer.terms_version += 1
    # Changed terms are reviewed again before anyone can claim them (maker-checker).
    offer.status = OfferStatus.draft
    session.flush()
    return offer


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _as_create_fields(offer: Offer) -> dict[str, Any]:
    area = None
    if offer.claim_area_gcj02 is not None:
        ring = list(to_shape(offer.claim_area_gcj02).exterior.coords)[:-1]
        area = [GeoPointGcj02(lat_gcj02=lat, lng_gcj02=lng) for lng, lat in ring]
    weekdays = weekdays_of(offer.weekdays_mask)
    plain = OfferCreate.model_fields.keys() - _SHAPED_FIELDS
    return {name: getattr(offer, name) for name in plain} | {
        "weekdays": sorted(weekdays) if weekdays is not None else None,
        "time_windows": [
            TimeWindowIn(start=w.start, end=w.end) for w in time_windows_of(offer.time_windows)
        ],
        "store_ids": sorted(link.store_id for link in offer.scope) or None,
        "claim_area_gcj02": area,
    }


def _apply(session: Session, offer: Offer, data: OfferCreate, *, scope: list[OfferStore]) -> None:
    # Everything is checked before the offer changes, so a refused edit leaves it as it was.
    if data.total_stock < offer.claimed_count or data.budget_fen < offer.claimed_fen:
        raise InvalidOfferTermsError("库存或预算不能低于已领取的数量或金额")
    max_benefit_fen = headline_value_fen(_terms_for_budget(offer, data))
    if data.budget_fen < max_benefit_fen:
        raise InvalidOfferTermsError("预算不足以发放一张券")
    new_scope = _scope(session, offer, data.store_ids, scope)
    fields = data.model_dump(exclude=_SHAPED_FIELDS)
    for name, value in fields.items():
        setattr(offer, name, value)
    offer.max_benefit_fen = max_benefit_fen
    offer.scope = new_scope
    offer.weekdays_mask = weekdays_mask(data.weekdays)
    offer.time_windows = [
        [w.start.strftime("%H:%M"), w.end.strftime("%H:%M")] for w in data.time_windows
    ]
    area = data.claim_area_gcj02
    polygon = None if area is None else WKTElement(area_polygon(area).wkt, srid=STORAGE_SRID)
    # The column is typed as read back (WKB); a WKT element is what it accepts on the way in.
    offer.claim_area_gcj02 = polygon  # type: ignore[assignment]


def _terms_for_budget(offer: Offer, data: OfferCreate) -> OfferTerms:
    # Only the amounts matter for the largest benefit one coupon can give.
    return OfferTerms(
        offer_id=offer.id or 0,
        merchant_id=offer.merchant_id,
        kind=data.kind,
        title_zh=data.title_zh,
        amount_off_fen=data.amount_off_fen,
        threshold_fen=data.threshold_fen,
        discount_permille=data.discount_permille,
        cap_fen=data.cap_fen,
        gift_value_fen=data.gift_value_fen,
        points_cost=data.points_cost,
        min_spend_fen=data.min_spend_fen,
    )


def _scope(
    session: Session, offer: Offer, store_ids: Sequence[int] | None, current: list[OfferStore]
) -> list[OfferStore]:
    wanted = set(store_ids or ())
    if wanted:
        found = set(
            session.scalars(
                select(Store.id).where(Store.id.in_(wanted), Store.merchant_id == offer.merchant_id)
            )
        )
        if missing := sorted(wanted - found):
            raise InvalidOfferTermsError(f"门店 {missing} 不属于该商户")
    # Links already there are kept, not deleted and re-inserted under the same key.
    kept = [link for link in current if link.store_id in wanted]
    have = {link.store_id for link in kept}
    return kept + [OfferStore(store_id=store_id) for store_id in sorted(wanted - have)]


# -- lifecycle --------------------------------------------------------------------------------


def _transition(
    session: Session,
    offer_id: int,
    *,
    allowed: Sequence[OfferStatus],
    to: OfferStatus,
    action_zh: str,
    **values: Any,
) -> Offer:
    result = session.execute(
        update(Offer)
        .where(Offer.id == offer_id, Offer.status.in_(allowed))
        .values(status=to, **values)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    if result.rowcount == 0:
        offer = get_offer(session, offer_id, fresh=True)
        raise OfferTransitionError(f"{STATUS_ZH[offer.status]}的优惠不能{action_zh}")
    return get_offer(session, offer_id, fresh=True)


def submit_for_review(session: Session, offer_id: int) -> Offer:
    return _transition(
        session,
        offer_id,
        allowed=[OfferStatus.draft],
        to=OfferStatus.pending_review,
        action_zh="提交审核",
    )


def _check_reviewer(session: Session, offer_id: int, reviewer: str) -> None:
    offer = get_offer(session, offer_id)
    if reviewer in (offer.created_by, offer.edited_by):
        raise OfferReviewConflictError("不能审核自己创建或修改的优惠")


def approve(session: Session, offer_id: int, *, reviewer: str, note: str = "") -> Offer:
    _check_reviewer(session, offer_id, reviewer)
    return _transition(
        session,
        offer_id,
        allowed=[OfferStatus.pending_review],
        to=OfferStatus.active,
        action_zh="审核通过",
        reviewed_by=reviewer,
        reviewed_at=utcnow(),
        review_note=note,
    )


def reject(session: Session, offer_id: int, *, reviewer: str, reason: str) -> Offer:
    if not reason.strip():
        raise InvalidOfferTermsError("驳回须说明原因")
    _check_reviewer(session, offer_id, reviewer)
    return _transition(
        session,
        offer_id,
        allowed=[OfferStatus.pending_review],
        to=OfferStatus.draft,
        action_zh="驳回",
        reviewed_by=reviewer,
        reviewed_at=utcnow(),
        review_note=reason[:255],
    )


def pause(session: Session, offer_id: int) -> Offer:
    return _transition(
        session, offer_id, allowed=[OfferStatus.active], to=OfferStatus.paused, action_zh="暂停"
    )


def resume(session: Session, offer_id: int) -> Offer:
    return _transition(
        session, offer_id, allowed=[OfferStatus.paused], to=OfferStatus.active, action_zh="恢复"
    )


def end(session: Session, offer_id: int) -> Offer:
    """Stops claims for good; coupons already claimed stay usable until they expire."""
    return _transition(session, offer_id, allowed=_LIVE, to=OfferStatus.ended, action_zh="结束")


def expire_due(session: Session, now: datetime) -> ExpiryCounts:
    """Offers past valid_until become expired; claimed coupons past expires_at become expired.
    Both are conditional UPDATEs of what is still due, so running the job twice changes nothing."""
    offers = session.execute(
        update(Offer)
        .where(
            Offer.status.in_([OfferStatus.active, OfferStatus.paused]),
            Offer.valid_until.is_not(None),
            Offer.valid_until <= now,
        )
        .values(status=OfferStatus.expired)
        .execution_options(synchronize_session=False)
    )
    claims = session.execute(
        update(Claim)
        .where(
            Claim.status == ClaimStatus.claimed,
            Claim.expires_at.is_not(None),
            Claim.expires_at <= now,
        )
        .values(status=ClaimStatus.expired)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(offers, CursorResult)
    assert isinstance(claims, CursorResult)
    return ExpiryCounts(offers=offers.rowcount, claims=claims.rowcount)
