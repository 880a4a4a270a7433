from __future__ import annotations

from enum import StrEnum
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tianfu.geo import STORAGE_SRID
from tianfu.orm import Base, TimestampMixin, enum_column, model_repr


class MerchantStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    suspended = "suspended"


class StoreStatus(StrEnum):
    open = "open"
    temporarily_closed = "temporarily_closed"
    closed = "closed"


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(32), unique=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT"), index=True
    )
    # Words a WeChat user may type to ask for this category ("火锅", "吃饭"); lists of strings.
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    parent: Mapped[Category | None] = relationship(remote_side=[id], lazy="raise")

    def __repr__(self) -> str:
        return model_repr(self, "id", "code", "name_zh")


class Merchant(TimestampMixin, Base):
    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    category_id: Mapped[int] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[MerchantStatus] = mapped_column(
        enum_column(MerchantStatus, "merchant_status"), default=MerchantStatus.pending, index=True
    )
    # A reference in some other system (the bank's CRM, the demo seed); unique when present.
    external_ref: Mapped[str | None] = mapped_column(String(64), unique=True)

    category: Mapped[Category] = relationship(lazy="raise")
    stores: Mapped[list[Store]] = relationship(back_populates="merchant", lazy="raise")

    def __repr__(self) -> str:
        return model_repr(self, "id", "name", "status")


class Store(TimestampMixin, Base):
    __tablename__ = "stores"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_ref"),
        Index("ix_stores_status_category", "status", "category_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    category_id: Mapped[int] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    district: Mapped[str] = mapped_column(String(32), default="")
    address: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str] = mapped_column(String(32), default="")
    # GCJ-02 (the system of WeChat, Tencent and Amap maps) in a column declared as SRID 4326.
    location_gcj02: Mapped[WKBElement] = mapped_column(
        Geometry(geometry_type="POINT", srid=STORAGE_SRID, spatial_index=True, nullable=False),
        nullable=False,
    )
    # merchants.opening_hours.OpeningHours.to_json(): weekly shifts (split, overnight),
    # closed weekdays and holiday dates.
    opening_hours: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[StoreStatus] = mapped_column(
        enum_column(StoreStatus, "store_status"), default=StoreStatus.open
    )
    external_ref: Mapped[str | None] = mapped_column(String(64))

    merchant: Mapped[Merchant] = relationship(back_populates="stores", lazy="raise")
    category: Mapped[Category] = relationship(lazy="raise")

    def __repr__(self) -> str:
        return model_repr(self, "id", "name", "status")
