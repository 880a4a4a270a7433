"""Store and merchant changes. Every change that nearby search must see also writes the store
change log in the same transaction, so it reaches every worker's index once committed."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants import changes
from merchants.errors import (
    InvalidOpeningHoursError,
    MerchantNotFoundError,
    StoreNotFoundError,
    UnknownCategoryError,
)
from merchants.models import Category, Merchant, MerchantStatus, Store, StoreStatus
from merchants.opening_hours import OpeningHours
from tianfu.geo import gcj02_point


def category_by_code(session: Session, code: str) -> Category:
    category = session.scalars(select(Category).where(Category.code == code)).one_or_none()
    if category is None:
        raise UnknownCategoryError(f"unknown category {code!r}")
    return category


def _checked_hours(opening_hours: dict[str, Any] | OpeningHours) -> dict[str, Any]:
    if isinstance(opening_hours, OpeningHours):
        return opening_hours.to_json()
    try:
        return OpeningHours.from_json(opening_hours).to_json()
    except ValidationError as exc:
        raise InvalidOpeningHoursError(str(exc.errors()[0]["msg"])) from exc


def create_store(
    session: Session,
    *,
    merchant_id: int,
    name: str,
    address: str,
    lat_gcj02: float,
    lng_gcj02: float,
    opening_hours: dict[str, Any] | OpeningHours,
    category_code: str | None = None,
    district: str = "",
    phone: str = "",
    external_ref: str | None = None,
) -> Store:
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise MerchantNotFoundError(f"merchant {merchant_id} does not exist")
    category_id = (
        category_by_code(session, category_code).id if category_code else merchant.category_id
    )
    store = Store(
        merchant_id=merchant_id,
        category_id=category_id,
        name=name,
        district=district,
        address=address,
        phone=phone,
        location_gcj02=gcj02_point(lat_gcj02, lng_gcj02),
        opening_hours=_checked_hours(opening_hours),
        status=StoreStatus.open,
        external_ref=external_ref,
    )
    session.add(store)
    session.flush()
    changes.record_store_change(session, store.id)
    return store


def _store(session: Session, store_id: int) -> Store:
    store = session.get(Store, store_id)
    if store is None:
        raise StoreNotFoundError(f"store {store_id} does not exist")
    return store


def move_store(session: Session, store_id: int, *, lat_gcj02: float, lng_gcj02: float) -> Store:
    store = _store(session, store_id)
    store.location_gcj02 = gcj02_point(lat_gcj02, lng_gcj02)  # type: ignore[assignment]
    session.flush()
    changes.record_store_change(session, store.id)
    return store


def set_store_status(session: Session, store_id: int, *, status: StoreStatus) -> Store:
    store = _store(session, store_id)
    store.status = status
    session.flush()
    changes.record_store_change(session, store.id)
    return store


def set_opening_hours(
    session: Session, store_id: int, *, opening_hours: dict[str, Any] | OpeningHours
) -> Store:
    store = _store(session, store_id)
    store.opening_hours = _checked_hours(opening_hours)
    session.flush()
    changes.record_store_change(session, store.id)
    return store


def set_merchant_status(session: Session, merchant_id: int, *, status: MerchantStatus) -> Merchant:
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise MerchantNotFoundError(f"merchant {merchant_id} does not exist")
    merchant.status = status
    session.flush()
    changes.record_merchant_change(session, merchant.id)
    return merchant
