"""Offers, their stock and claims (the user's coupons), and the bank points ledger.

Race-free by construction, on PostgreSQL and SQLite alike:

* Stock, budget and the per-day limit live on the offer row and are taken by ONE conditional
  UPDATE (`claimed_count < total_stock AND claimed_fen + max_benefit_fen <= budget_fen ...`);
  the CHECK constraints below are the backstop should any code path forget the condition.
* The per-user limit is a counter row per (offer, openid), taken by one
  `INSERT ... ON CONFLICT DO UPDATE SET claimed = claimed + 1 WHERE claimed < limit`: two claims
  of one user meet on that row (PostgreSQL waits on its lock or its unique key and re-checks the
  condition on the committed value; SQLite has one writer at a time), so only one can pass.
* Redeem and restore are conditional UPDATEs on the claim's status; idempotency keys are UNIQUE.
* Points: one balance row per user with CHECK (balance >= 0); each entry's source key is UNIQUE.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, time
from enum import StrEnum

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from coupons.rules import OfferKind, OfferTerms, TimeWindow
from tianfu.geo import STORAGE_SRID
from tianfu.orm import Base, TimestampMixin, UTCDateTime, enum_column, model_repr, utcnow


def weekdays_of(mask: int | None) -> frozenset[int] | None:
    return None if mask is None else frozenset(d for d in range(7) if mask & (1 << d))


def weekdays_mask(weekdays: Collection[int] | None) -> int | None:
    return None if weekdays is None else sum(1 << d for d in set(weekdays))


def time_windows_of(stored: list[list[str]]) -> tuple[TimeWindow, ...]:
    return tuple(TimeWindow(time.fromisoformat(a), time.fromisoformat(b)) for a, b in stored)


class OfferStatus(StrEnum):
    draft = "draft"
    pending_review = "pending_review"
    active = "active"
    paused = "paused"
    ended = "ended"  # stopped by the merchant or the bank
    expired = "expired"  # past valid_until (the expiry job)


class ClaimStatus(StrEnum):
    claimed = "claimed"
    redeemed = "redeemed"
    expired = "expired"
    void = "void"  # refunded after its validity, or refunded a second time: never comes back


class PointsKind(StrEnum):
    earn = "earn"
    spend = "spend"
    reverse = "reverse"
    exchange = "exchange"  # spent on a points-exchange offer's claim


class Offer(TimestampMixin, Base):
    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint(
            "amount_off_fen >= 0 AND threshold_fen >= 0 AND gift_value_fen >= 0 "
            "AND points_cost >= 0 AND min_spend_fen >= 0 AND (cap_fen IS NULL OR cap_fen >= 0) "
            "AND max_benefit_fen >= 0 AND budget_fen >= 0 AND claimed_fen >= 0 "
            "AND total_stock >= 0 AND claimed_count >= 0 AND day_claimed >= 0 "
            "AND points_per_yuan >= 0",
            name="amounts_not_negative",
        ),
        CheckConstraint("claimed_count <= total_stock", name="stock_not_oversold"),
        CheckConstraint("claimed_fen <= budget_fen", name="budget_not_overspent"),
        CheckConstraint("discount_permille BETWEEN 0 AND 1000", name="discount_permille_range"),
        CheckConstraint("per_user_limit >= 1", name="per_user_limit_positive"),
        CheckConstraint(
            "per_day_limit IS NULL OR per_day_limit >= 1", name="per_day_limit_positive"
        ),
        CheckConstraint(
            "weekdays_mask IS NULL OR weekdays_mask BETWEEN 1 AND 127", name="weekdays_mask_range"
        ),
        CheckConstraint(
            "claim_radius_m IS NULL OR claim_radius_m > 0", name="claim_radius_positive"
        ),
        CheckConstraint(
            "valid_days_after_claim IS NULL OR valid_days_after_claim >= 1",
            name="valid_days_positive",
        ),
        CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until",
            name="validity_ordered",
        ),
        Index("ix_offers_merchant_id_status", "merchant_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    kind: Mapped[OfferKind] = mapped_column(enum_column(OfferKind, "offer_kind"))
    title_zh: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[OfferStatus] = mapped_column(
        enum_column(OfferStatus, "offer_status"), default=OfferStatus.draft
    )

    # The terms, as coupons.rules.OfferTerms reads them (fen; permille = thousandths off).
    amount_off_fen: Mapped[int] = mapped_column(Integer, default=0)
    threshold_fen: Mapped[int] = mapped_column(Integer, default=0)
    discount_permille: Mapped[int] = mapped_column(Integer, default=0)
    cap_fen: Mapped[int | None] = mapped_column(Integer)
    gift_value_fen: Mapped[int] = mapped_column(Integer, default=0)
    points_cost: Mapped[int] = mapped_column(Integer, default=0)
    min_spend_fen: Mapped[int] = mapped_column(Integer, default=0)
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # Bit d set = usable on weekday d (0 = Monday, Asia/Shanghai); NULL = every day.
    weekdays_mask: Mapped[int | None] = mapped_column(Integer)
    # [["11:00", "14:00"], ...] Asia/Shanghai wall clock, [start, end), "00:00" as end = midnight.
    time_windows: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    # valid_until is exclusive; it bounds both claiming and use.
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A claimed coupon lasts this many days (never past valid_until); NULL: until valid_until.
    valid_days_after_claim: Mapped[int | None] = mapped_column(Integer)
    new_customers_only: Mapped[bool] = mapped_column(Boolean, default=False)

    # Stock and budget. A claim reserves the offer's largest possible benefit, max_benefit_fen
    # (amount_off_fen; a percentage's cap_fen; plus any gift_value_fen: rules.headline_value_fen),
    # so however the coupons are later used the budget can never be overspent. Reservations are
    # kept when a coupon expires or is voided: the budget is a ceiling, not a forecast.
    total_stock: Mapped[int] = mapped_column(Integer)
    budget_fen: Mapped[int] = mapped_column(Integer)
    max_benefit_fen: Mapped[int] = mapped_column(Integer, default=0)
    claimed_count: Mapped[int] = mapped_column(Integer, default=0)
    claimed_fen: Mapped[int] = mapped_column(Integer, default=0)
    per_user_limit: Mapped[int] = mapped_column(Integer, default=1)
    # Claims per Asia/Shanghai day across all users: day_claimed counts the day day_key
    # (YYYYMMDD); the claim UPDATE resets it when a new day starts.
    per_day_limit: Mapped[int | None] = mapped_column(Integer)
    day_key: Mapped[int] = mapped_column(Integer, default=0)
    day_claimed: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by every edit; a claim that read older terms is refused rather than charged wrongly.
    terms_version: Mapped[int] = mapped_column(Integer, default=1)

    # Geo-targeting: claimable within claim_radius_m of one of the offer's stores, or inside
    # claim_area_gcj02 (GCJ-02 lng/lat in a SRID 4326 column); with both set, either will do.
    claim_radius_m: Mapped[int | None] = mapped_column(Integer)
    claim_area_gcj02: Mapped[WKBElement | None] = mapped_column(
        Geometry(geometry_type="POLYGON", srid=STORAGE_SRID, spatial_index=False)
    )

    # Bank points earned per whole yuan paid on an order that uses this offer.
    points_per_yuan: Mapped[int] = mapped_column(Integer, default=0)

    # Maker-checker. Plain account names until the portal's accounts exist.
    created_by: Mapped[str] = mapped_column(String(64))
    edited_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    review_note: Mapped[str] = mapped_column(String(255), default="")

    # Loaded explicitly (selectinload) wherever terms are built: a forgotten load must fail, not
    # read as "no scope", which would widen the offer to every store.
    scope: Mapped[list[OfferStore]] = relationship(
        lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )

    def terms(self, store_ids: frozenset[int] | None) -> OfferTerms:
        """The terms as coupons.rules judges them, with the store scope given (None: every
        store of the merchant); coupons.service.terms_of reads the scope from `scope`."""
        return OfferTerms(
            offer_id=self.id,
            merchant_id=self.merchant_id,
            kind=self.kind,
            title_zh=self.title_zh,
            amount_off_fen=self.amount_off_fen,
            threshold_fen=self.threshold_fen,
            discount_permille=self.discount_permille,
            cap_fen=self.cap_fen,
            gift_value_fen=self.gift_value_fen,
            points_cost=self.points_cost,
            min_spend_fen=self.min_spend_fen,
            exclusive=self.exclusive,
            priority=self.priority,
            weekdays=weekdays_of(self.weekdays_mask),
            time_windows=time_windows_of(self.time_windows),
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            store_ids=store_ids,
            new_customers_only=self.new_customers_only,
        )

    def __repr__(self) -> str:
        return model_repr(self, "id", "kind", "title_zh", "status")


class OfferStore(Base):
    """The stores an offer is limited to; none at all = every store of its merchant."""

    __tablename__ = "offer_stores"

    offer_id: Mapped[int] = mapped_column(
        ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True
    )
    # RESTRICT, not CASCADE: losing the last listed store would silently widen the offer to
    # every store of the merchant.
    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class OfferUserCount(Base):
    """How many coupons of an offer one user has claimed: the per-user limit's race-free counter."""

    __tablename__ = "offer_user_counts"
    __table_args__ = (CheckConstraint("claimed >= 0", name="claimed_not_negative"),)

    offer_id: Mapped[int] = mapped_column(
        ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True
    )
    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    claimed: Mapped[int] = mapped_column(Integer, default=0)


class Claim(Base):
    """A user's coupon."""

    __tablename__ = "claims"
    __table_args__ = (
        # The client's request id makes a retried claim return the same coupon.
        UniqueConstraint("openid", "client_request_id"),
        CheckConstraint("restore_count BETWEEN 0 AND 1", name="restored_at_most_once"),
        CheckConstraint("reserved_fen >= 0", name="reserved_not_negative"),
        Index("ix_claims_offer_id_status", "offer_id", "status"),
        Index("ix_claims_status_expires_at", "status", "expires_at"),
        Index("ix_claims_openid_claimed_at", "openid", "claimed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="RESTRICT"))
    openid: Mapped[str] = mapped_column(String(64))
    client_request_id: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(16), unique=True)  # coupons.codes, no separators
    status: Mapped[ClaimStatus] = mapped_column(
        enum_column(ClaimStatus, "claim_status"), default=ClaimStatus.claimed
    )
    # The budget this claim took from its offer (the offer's max_benefit_fen at the time).
    reserved_fen: Mapped[int] = mapped_column(Integer)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # exclusive; NULL: never
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    redeemed_store_id: Mapped[int | None] = mapped_column(
        ForeignKey("stores.id", ondelete="RESTRICT")
    )
    order_ref: Mapped[str | None] = mapped_column(String(64))
    # Times the coupon came back after a refund or an undo: at most once (litemall#163).
    restore_count: Mapped[int] = mapped_column(Integer, default=0)
    restored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return model_repr(self, "id", "offer_id", "openid", "status")


class PointsAccount(Base):
    """One user's points balance. The CHECK makes a negative balance impossible to commit; the
    conditional UPDATE in coupons.points refuses it before the database has to."""

    __tablename__ = "points_accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    balance: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PointsEntry(Base):
    """Append-only: a correction is a new `reverse` entry, never an edit."""

    __tablename__ = "points_entries"
    __table_args__ = (
        CheckConstraint("delta <> 0", name="delta_not_zero"),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        Index("ix_points_entries_openid_id", "openid", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    delta: Mapped[int] = mapped_column(Integer)  # + earned, - spent
    balance_after: Mapped[int] = mapped_column(Integer)
    kind: Mapped[PointsKind] = mapped_column(enum_column(PointsKind, "points_kind"))
    # The event this entry applies ("order:123:earn", "claim:45"): each is applied once.
    source_key: Mapped[str] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return model_repr(self, "id", "openid", "delta", "kind", "source_key")
