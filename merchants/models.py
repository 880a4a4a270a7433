from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, Mapper, mapped_column, relationship

from tianfu.geo import STORAGE_SRID
from tianfu.orm import Base, TimestampMixin, UTCDateTime, enum_column, model_repr, utcnow


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


# -- the partner portal: accounts, sessions, onboarding, audit ------------------------------------


class PortalRole(StrEnum):
    bank_admin = "bank_admin"
    merchant_owner = "merchant_owner"
    merchant_staff = "merchant_staff"


class ApplicationStatus(StrEnum):
    submitted = "submitted"
    rejected = "rejected"
    approved = "approved"


class PortalAccount(TimestampMixin, Base):
    """A person who logs in to /portal. Bank admins belong to no merchant; owners and staff
    belong to exactly one (the CHECK holds that on both backends)."""

    __tablename__ = "portal_accounts"
    __table_args__ = (
        CheckConstraint(
            "(role = 'bank_admin' AND merchant_id IS NULL) "
            "OR (role <> 'bank_admin' AND merchant_id IS NOT NULL)",
            name="merchant_unless_admin",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored lower-case (merchants.accounts.normalise_username), so "Li" and "li" are one user.
    username: Mapped[str] = mapped_column(String(32), unique=True)
    # argon2id in PHC string format ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[PortalRole] = mapped_column(enum_column(PortalRole, "portal_role"))
    merchant_id: Mapped[int | None] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    display_name: Mapped[str] = mapped_column(String(64), default="")
    # Wrong passwords since the last good one or the last lock-out.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)

    def __repr__(self) -> str:
        return model_repr(self, "id", "username", "role", "merchant_id")


class StaffStoreScope(Base):
    """The stores a staff account is limited to; a staff account with no rows here works for
    every store of its merchant."""

    __tablename__ = "staff_store_scopes"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("portal_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class PortalSession(Base):
    """A server-side login session, so the idle timeout and logout take effect at once on every
    worker. The browser holds a random token; only its SHA-256 is stored here (`id`), so a copy
    of this table opens no session."""

    __tablename__ = "portal_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("portal_accounts.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    def __repr__(self) -> str:
        return model_repr(self, "account_id", "expires_at", "revoked")


class MerchantApplication(Base):
    """One submission of a merchant's onboarding form. A resubmission is a new row with the next
    version, so every version and its review stay on record; the highest version is current."""

    __tablename__ = "merchant_applications"
    __table_args__ = (UniqueConstraint("merchant_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    business_name: Mapped[str] = mapped_column(String(120))
    # 统一社会信用代码 (18 characters).
    licence_no: Mapped[str] = mapped_column(String(32), index=True)
    contact_name: Mapped[str] = mapped_column(String(32))
    contact_phone: Mapped[str] = mapped_column(String(20))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"))
    status: Mapped[ApplicationStatus] = mapped_column(
        enum_column(ApplicationStatus, "application_status"),
        default=ApplicationStatus.submitted,
        index=True,
    )
    # A rejection's reason for each field it concerns: {"licence_no": "执照号与执照照片不符"}.
    field_reasons: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    submitted_by: Mapped[int | None] = mapped_column(
        ForeignKey("portal_accounts.id", ondelete="RESTRICT")
    )
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reviewed_by: Mapped[int | None] = mapped_column(
        ForeignKey("portal_accounts.id", ondelete="RESTRICT")
    )
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return model_repr(self, "id", "merchant_id", "version", "status")


class AuditEntry(Base):
    """Who changed what, when and from where. Append-only: no code path updates or deletes a
    row (merchants.audit refuses it at flush), and database triggers refuse it on both backends
    (migration 0007). No foreign keys: the record must outlive what it names."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_account_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # The username at the time (accounts may be renamed), or "cli:<user>" for the command line.
    actor_label: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(45), default="")
    action: Mapped[str] = mapped_column(String(48), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    merchant_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def __repr__(self) -> str:
        return model_repr(self, "id", "action", "target_type", "target_id")


class AuditEntryImmutableError(RuntimeError):
    """A programming error: something tried to change or delete an audit entry."""


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _refuse_audit_change(_mapper: Mapper[AuditEntry], _conn: Connection, entry: AuditEntry) -> None:
    # The ORM path; bulk UPDATE/DELETE statements meet the database triggers instead.
    raise AuditEntryImmutableError(f"audit entry {entry.id} is append-only")


# -- the merchants' REST API: API keys ------------------------------------------------------------


class ApiKeyAccess(StrEnum):
    read = "read"
    write = "write"  # read and write


class MerchantApiKey(Base):
    """A key for the merchant REST API (/api/v1/merchant). The client holds
    `tfk_<prefix>_<secret>`; only the prefix (shown in lists) and the SHA-256 of the 32-byte random
    secret are stored (merchants.api_keys says why not argon2). Revoking sets `revoked_at`; rows
    are kept, so the audit log's "apikey:<prefix>" always names a known key."""

    __tablename__ = "merchant_api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(60))
    # "tfk_" and 8 hex digits: how the key is found, and how people tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    access: Mapped[ApiKeyAccess] = mapped_column(enum_column(ApiKeyAccess, "api_key_access"))
    created_by: Mapped[int] = mapped_column(ForeignKey("portal_accounts.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return model_repr(self, "id", "merchant_id", "prefix", "access", "revoked_at")
