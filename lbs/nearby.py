"""Nearby search: which listed stores are near a point, nearest first, with what users need to see.

Positions come from this worker's live spatial index (exact great-circle distances); the details
of the few stores returned come from the database in one query.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from lbs.coords import CoordSystem, from_gcj02, to_gcj02
from lbs.offers import OfferLookup, no_offers
from lbs.schemas import (
    CategoryBrief,
    MerchantBrief,
    NearbyQuery,
    NearbyStoreRead,
    OfferBrief,
)
from merchants.errors import UnknownCategoryError
from merchants.models import Category, Merchant, Store
from merchants.store_index import LiveStoreIndex, Neighbours, StoreFilter
from tianfu.orm import utcnow


def category_ids_for(session: Session, code: str) -> frozenset[int]:
    """The category and its sub-categories: 餐饮 includes 火锅 and 小吃."""
    rows = session.execute(select(Category.id, Category.code, Category.parent_id)).all()
    root = next((row.id for row in rows if row.code == code), None)
    if root is None:
        known = ", ".join(sorted(row.code for row in rows))
        raise UnknownCategoryError(f"unknown category {code!r}; known categories: {known}")
    wanted = {root}
    grew = True
    while grew:  # the taxonomy is a shallow tree of a few dozen rows
        before = len(wanted)
        wanted |= {row.id for row in rows if row.parent_id in wanted}
        grew = len(wanted) != before
    return frozenset(wanted)


def distance_text(distance_m: float) -> str:
    if distance_m < 1000:
        return f"{max(1, round(distance_m))}米"
    return f"{distance_m / 1000:.1f}公里"


# Built once: constructing this statement costs more than running it on the hot path.
_DETAILS = (
    select(
        Store.id,
        Store.name,
        Store.address,
        Store.district,
        Store.phone,
        func.ST_Y(Store.location_gcj02).label("lat"),
        func.ST_X(Store.location_gcj02).label("lng"),
        Merchant.id.label("merchant_id"),
        Merchant.name.label("merchant_name"),
        Category.code.label("category_code"),
        Category.name_zh.label("category_name"),
    )
    .join(Merchant, Merchant.id == Store.merchant_id)
    .join(Category, Category.id == Store.category_id)
    .where(Store.id.in_(bindparam("store_ids", expanding=True)))
)


def find_neighbours(
    session: Session,
    live_index: LiveStoreIndex,
    query: NearbyQuery,
    *,
    now: datetime,
) -> Neighbours:
    """(store id, metres) of the listed stores matching the query, nearest first; no details."""
    lat, lng = to_gcj02(query.lat, query.lng, query.coord)
    store_filter = StoreFilter(
        category_ids=category_ids_for(session, query.category) if query.category else None,
        open_at=now if query.open_now else None,
    )
    return live_index.within(
        lat, lng, radius_m=query.radius_m, limit=query.limit, store_filter=store_filter
    )


def store_details(
    session: Session,
    live_index: LiveStoreIndex,
    neighbours: Neighbours,
    *,
    coord: CoordSystem,
    now: datetime,
    best_offers: Mapping[int, OfferBrief],
) -> list[NearbyStoreRead]:
    """What users see of these stores, in the order given, in one query."""
    if not neighbours:
        return []
    ids = [store_id for store_id, _ in neighbours]
    details = {row.id: row for row in session.execute(_DETAILS, {"store_ids": ids})}
    results = []
    for store_id, distance_m in neighbours:
        row, facts = details.get(store_id), live_index.facts(store_id)
        if row is None or facts is None:  # removed meanwhile; the next poll catches up
            continue
        # The index already holds this store's hours, parsed once and shared by equal schedules.
        hours = live_index.opening_hours(facts.hours_json)
        shown_lat, shown_lng = from_gcj02(row.lat, row.lng, coord)
        results.append(
            NearbyStoreRead(
                id=row.id,
                name=row.name,
                merchant=MerchantBrief(id=row.merchant_id, name=row.merchant_name),
                category=CategoryBrief(code=row.category_code, name=row.category_name),
                address=row.address,
                district=row.district,
                phone=row.phone,
                distance_m=round(distance_m, 1),
                distance_text=distance_text(round(distance_m, 1)),
                open_now=hours.is_open_at(now),
                opening_hours_text=live_index.hours_text(facts.hours_json),
                lat=round(shown_lat, 7),
                lng=round(shown_lng, 7),
                coord=coord,
                best_offer=best_offers.get(store_id),
            )
        )
    return results


def find_nearby(
    session: Session,
    live_index: LiveStoreIndex,
    query: NearbyQuery,
    *,
    now: datetime | None = None,
    offers: OfferLookup = no_offers,
    openid: str | None = None,
) -> list[NearbyStoreRead]:
    """The stores near the query point, nearest first, each with its best offer for `openid`
    (or for anyone, when the user is not known)."""
    now = now or utcnow()
    neighbours = find_neighbours(session, live_index, query, now=now)
    if not neighbours:
        return []
    ids = [store_id for store_id, _ in neighbours]
    best_offers = offers(session, store_ids=ids, openid=openid, now=now)
    return store_details(
        session, live_index, neighbours, coord=query.coord, now=now, best_offers=best_offers
    )
