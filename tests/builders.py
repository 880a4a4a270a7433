"""Small typed builders for test data: they flush (for ids) and never commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coupons.models import Offer, OfferStatus
from coupons.rules import OfferKind
from coupons.schemas import OfferCreate
from coupons.service import create_offer
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


def make_offer(
    session: Session,
    *,
    merchant: Merchant | None = None,
    kind: OfferKind = OfferKind.fixed_off,
    title_zh: str = "立减10元",
    amount_off_fen: int = 1000,
    total_stock: int = 100,
    budget_fen: int = 1_000_000,
    status: OfferStatus = OfferStatus.active,
    created_by: str = "maker@merchant",
    **terms: Any,
) -> Offer:
    """An offer through the service's own checks, put straight into `status` (no review)."""
    merchant = merchant or make_merchant(session)
    data = OfferCreate(
        kind=kind,
        title_zh=title_zh,
        amount_off_fen=amount_off_fen,
        total_stock=total_stock,
        budget_fen=budget_fen,
        **terms,
    )
    offer = create_offer(session, merchant_id=merchant.id, data=data, created_by=created_by)
    offer.status = status
    session.flush()
    return offer
