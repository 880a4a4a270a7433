"""Small typed builders for test data: they flush (for ids) and never commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants.models import Category, Merchant, MerchantStatus, Store, StoreStatus
from tianfu.geo import gcj02_point

ALWAYS_OPEN: dict[str, Any] = {
    "weekly": {
        day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    },
    "closed_dates": [],
}


def category(session: Session, code: str = "hotpot") -> Category:
    return session.scalars(select(Category).where(Category.code == code)).one()


def make_merchant(
    session: Session,
    *,
    name: str = "蜀味老灶火锅",
    category_code: str = "hotpot",
    status: MerchantStatus = MerchantStatus.approved,
    external_ref: str | None = None,
) -> Merchant:
    merchant = Merchant(
        name=name,
        category_id=category(session, category_code).id,
        status=status,
        external_ref=external_ref,
    )
    session.add(merchant)
    session.flush()
    return merchant


def make_store(
    session: Session,
    *,
    lat: float = 30.6577,
    lng: float = 104.0807,
    merchant: Merchant | None = None,
    name: str = "蜀味老灶火锅(春熙路店)",
    status: StoreStatus = StoreStatus.open,
    external_ref: str | None = None,
) -> Store:
    merchant = merchant or make_merchant(session)
    store = Store(
        merchant_id=merchant.id,
        category_id=merchant.category_id,
        name=name,
        district="锦江区",
        address="成都市锦江区红星路三段1号",
        phone="028-86660000",
        location_gcj02=gcj02_point(lat, lng),
        opening_hours=ALWAYS_OPEN,
        status=status,
        external_ref=external_ref,
    )
    session.add(store)
    session.flush()
    return store
