"""A merchant's stores as its people and its API clients change them: create, edit, close and
reopen, each writing the store change log in the same transaction (so nearby search and WeChat
replies on every worker see it within a poll), and each telling what changed for the audit log.

The portal pages, the portal's JSON API and the REST API all come through here; who may call
(owner or API key, approved merchant, the store in scope) is their gate's business.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from lbs.coords import LatLng
from merchants import changes, service
from merchants.errors import StoreStateError, UnknownCategoryError
from merchants.models import Category, Store, StoreStatus
from merchants.opening_hours import SHANGHAI, OpeningHours
from merchants.schemas import StoreCreate, StoreRead, StoreUpdate
from tianfu.geo import gcj02_point

STATUS_ZH = {
    StoreStatus.open: "营业中",
    StoreStatus.temporarily_closed: "暂停营业",
    StoreStatus.closed: "已关闭",
}
# About a centimetre: a pin saved again from the form it was shown in is not a move.
_SAME_PLACE_DEG = 1e-7


@dataclass(frozen=True)
class StoreChanges:
    """What an edit sets; None leaves a field as it is. `position` is GCJ-02."""

    name: str | None = None
    address: str | None = None
    district: str | None = None
    phone: str | None = None
    category: str | None = None
    position: LatLng | None = None
    opening_hours: OpeningHours | None = None

    @classmethod
    def of_create(cls, data: StoreCreate) -> StoreChanges:
        """Every field as a whole form gives it (the portal's edit page)."""
        return cls(
            name=data.name,
            address=data.address,
            district=data.district,
            phone=data.phone,
            category=data.category,
            position=data.position(),
            opening_hours=data.opening_hours,
        )

    @classmethod
    def of_update(cls, update: StoreUpdate) -> StoreChanges:
        return cls(
            name=update.name,
            address=update.address,
            district=update.district,
            phone=update.phone,
            category=update.category,
            position=update.position(),
            opening_hours=update.opening_hours,
        )


def category_id(session: Session, code: str) -> int:
    try:
        return service.category_by_code(session, code).id
    except UnknownCategoryError:
        raise UnknownCategoryError("经营类目不存在") from None


def category_codes(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Category.id, Category.code)).all())


def position_of(store: Store) -> LatLng:
    point = to_shape(store.location_gcj02)
    return LatLng(point.y, point.x)  # shapely's x is the longitude


def hours_of(store: Store) -> OpeningHours:
    return OpeningHours.from_json(store.opening_hours)


def hours_text(store: Store, *, now: datetime) -> str:
    return hours_of(store).describe_zh(closures_from=now.astimezone(SHANGHAI).date())


# -- writing --------------------------------------------------------------------------------------


def create_store(session: Session, *, merchant_id: int, data: StoreCreate) -> Store:
    position = data.position()
    if data.category is not None:
        category_id(session, data.category)  # refused in Chinese before the service's check
    return service.create_store(
        session,
        merchant_id=merchant_id,
        name=data.name,
        address=data.address,
        district=data.district,
        phone=data.phone,
        category_code=data.category,
        lat_gcj02=position.lat,
        lng_gcj02=position.lng,
        opening_hours=data.opening_hours,
    )


def _moved(before: LatLng, after: LatLng) -> bool:
    return not (
        math.isclose(before.lat, after.lat, abs_tol=_SAME_PLACE_DEG)
        and math.isclose(before.lng, after.lng, abs_tol=_SAME_PLACE_DEG)
    )


def update_store(session: Session, store: Store, edit: StoreChanges) -> dict[str, Any]:
    """Applies the changes; what changed as {field: [before, after]} (empty: nothing did, and
    nothing is written)."""
    diff: dict[str, Any] = {}
    for name in ("name", "address", "district", "phone"):
        wanted = getattr(edit, name)
        if wanted is not None and wanted != getattr(store, name):
            diff[name] = [getattr(store, name), wanted]
            setattr(store, name, wanted)
    if edit.category is not None:
        new_id = category_id(session, edit.category)
        if new_id != store.category_id:
            diff["category"] = [category_codes(session).get(store.category_id), edit.category]
            store.category_id = new_id
    if edit.position is not None:
        before = position_of(store)
        if _moved(before, edit.position):
            diff["position_gcj02"] = [list(before), list(edit.position)]
            # A WKT element is what the column takes on the way in (it reads back as WKB).
            store.location_gcj02 = gcj02_point(*edit.position)  # type: ignore[assignment]
    if edit.opening_hours is not None:
        wanted_hours = edit.opening_hours.to_json()
        if wanted_hours != hours_of(store).to_json():
            diff["opening_hours"] = [store.opening_hours, wanted_hours]
            store.opening_hours = wanted_hours
    if diff:
        session.flush()
        changes.record_store_change(session, store.id)
    return diff


def close_store(session: Session, store: Store, *, permanent: bool) -> Store:
    wanted = StoreStatus.closed if permanent else StoreStatus.temporarily_closed
    if store.status is wanted:
        raise StoreStateError(f"门店已经是{STATUS_ZH[wanted]}状态")
    return service.set_store_status(session, store.id, status=wanted)


def reopen_store(session: Session, store: Store) -> Store:
    if store.status is StoreStatus.open:
        raise StoreStateError("门店已在营业中")
    return service.set_store_status(session, store.id, status=StoreStatus.open)


# -- reading --------------------------------------------------------------------------------------


def store_read(store: Store, *, category_code: str, now: datetime) -> StoreRead:
    position = position_of(store)
    return StoreRead(
        id=store.id,
        merchant_id=store.merchant_id,
        name=store.name,
        address=store.address,
        district=store.district,
        phone=store.phone,
        category=category_code,
        status=store.status,
        lat_gcj02=position.lat,
        lng_gcj02=position.lng,
        opening_hours=store.opening_hours,
        opening_hours_text=hours_text(store, now=now),
        created_at=store.created_at,
        updated_at=store.updated_at,
    )


def stores_read(session: Session, stores: Iterable[Store], *, now: datetime) -> list[StoreRead]:
    codes = category_codes(session)
    return [store_read(s, category_code=codes.get(s.category_id, ""), now=now) for s in stores]
