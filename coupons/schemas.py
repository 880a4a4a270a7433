"""What the portal sends and reads about offers, and what a user reads about coupons and points.

`OfferCreate` checks the terms as a whole (each kind needs its amounts; a budget must be
boundable), so a bad offer is refused when written, not when a customer meets it.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from shapely.geometry import Polygon

from coupons.models import ClaimStatus, OfferStatus, PointsKind
from coupons.rules import OfferKind, TimeWindow

Fen = Annotated[int, Field(ge=0)]


class GeoPointGcj02(BaseModel):
    lat_gcj02: float = Field(ge=-90, le=90)
    lng_gcj02: float = Field(ge=-180, le=180)


class TimeWindowIn(BaseModel):
    """Asia/Shanghai wall clock, [start, end); end 00:00 means midnight."""

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if any(t.second or t.microsecond or t.tzinfo for t in (self.start, self.end)):
            raise ValueError("time windows are whole minutes, without a time zone")
        TimeWindow(self.start, self.end)  # raises ValueError when start does not precede end
        return self


class _OfferFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: OfferKind
    title_zh: str = Field(min_length=1, max_length=60)
    description: str = Field(default="", max_length=2000)
    amount_off_fen: Fen = 0
    threshold_fen: Fen = 0
    discount_permille: int = Field(default=0, ge=0, le=1000)
    cap_fen: Fen | None = None
    gift_value_fen: Fen = 0
    points_cost: Fen = 0
    min_spend_fen: Fen = 0
    exclusive: bool = False
    priority: int = 0
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] | None = Field(default=None, min_length=1)
    time_windows: list[TimeWindowIn] = Field(default_factory=list, max_length=8)
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    valid_days_after_claim: int | None = Field(default=None, ge=1, le=3650)
    new_customers_only: bool = False
    store_ids: list[int] | None = Field(default=None, min_length=1)  # None: every store
    total_stock: int = Field(ge=1)
    budget_fen: Fen
    per_user_limit: int = Field(default=1, ge=1)
    per_day_limit: int | None = Field(default=None, ge=1)
    claim_radius_m: int | None = Field(default=None, gt=0, le=100_000)
    # The drawn area's outer ring, GCJ-02; closed automatically.
    claim_area_gcj02: list[GeoPointGcj02] | None = Field(default=None, min_length=3)
    points_per_yuan: int = Field(default=0, ge=0)


class OfferCreate(_OfferFields):
    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_kind_amounts(self)
        if self.valid_from and self.valid_until and self.valid_from >= self.valid_until:
            raise ValueError("valid_from must precede valid_until")
        if self.claim_area_gcj02 is not None and not area_polygon(self.claim_area_gcj02).is_valid:
            raise ValueError("claim_area_gcj02 must be a simple polygon (no self-crossing)")
        return self


def _check_kind_amounts(offer: _OfferFields) -> None:
    kind = offer.kind
    if kind in (OfferKind.fixed_off, OfferKind.threshold_off) and offer.amount_off_fen <= 0:
        raise ValueError(f"{kind} needs amount_off_fen > 0")
    if kind is OfferKind.threshold_off and offer.threshold_fen < offer.amount_off_fen:
        raise ValueError("threshold_off needs threshold_fen >= amount_off_fen (满X减Y: X >= Y)")
    if kind is OfferKind.percent_off:
        if not 0 < offer.discount_permille < 1000:
            raise ValueError("percent_off needs discount_permille within 1..999")
        # Without a cap one coupon's discount is unbounded and no budget could be reserved.
        if not offer.cap_fen:
            raise ValueError("percent_off needs cap_fen > 0 (最高减)")
    if kind is OfferKind.gift and offer.gift_value_fen <= 0:
        raise ValueError("gift needs gift_value_fen > 0")
    if kind is OfferKind.points_exchange:
        if offer.points_cost <= 0:
            raise ValueError("points_exchange needs points_cost > 0")
        if offer.amount_off_fen <= 0 and offer.gift_value_fen <= 0:
            raise ValueError("points_exchange needs amount_off_fen or gift_value_fen > 0")


def area_polygon(points: list[GeoPointGcj02]) -> Polygon:
    # Shapely and WKT order coordinates (x=lng, y=lat).
    return Polygon([(p.lng_gcj02, p.lat_gcj02) for p in points])


class OfferUpdate(BaseModel):
    """Only the fields sent change; the result is checked again as a whole (OfferCreate)."""

    model_config = ConfigDict(extra="forbid")

    title_zh: str | None = Field(default=None, min_length=1, max_length=60)
    description: str | None = Field(default=None, max_length=2000)
    amount_off_fen: Fen | None = None
    threshold_fen: Fen | None = None
    discount_permille: int | None = Field(default=None, ge=0, le=1000)
    cap_fen: Fen | None = None
    gift_value_fen: Fen | None = None
    points_cost: Fen | None = None
    min_spend_fen: Fen | None = None
    exclusive: bool | None = None
    priority: int | None = None
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] | None = None
    time_windows: list[TimeWindowIn] | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    valid_days_after_claim: int | None = Field(default=None, ge=1, le=3650)
    new_customers_only: bool | None = None
    store_ids: list[int] | None = None
    total_stock: int | None = Field(default=None, ge=1)
    budget_fen: Fen | None = None
    per_user_limit: int | None = Field(default=None, ge=1)
    per_day_limit: int | None = Field(default=None, ge=1)
    claim_radius_m: int | None = Field(default=None, gt=0, le=100_000)
    claim_area_gcj02: list[GeoPointGcj02] | None = None
    points_per_yuan: int | None = Field(default=None, ge=0)


class OfferRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    merchant_id: int
    kind: OfferKind
    title_zh: str
    description: str
    status: OfferStatus
    total_stock: int
    budget_fen: int
    claimed_count: int
    claimed_fen: int
    per_user_limit: int
    per_day_limit: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days_after_claim: int | None
    created_by: str
    reviewed_by: str | None
    review_note: str
    created_at: datetime
    updated_at: datetime


class ClaimRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    offer_id: int
    code: str
    status: ClaimStatus
    claimed_at: datetime
    expires_at: datetime | None
    redeemed_at: datetime | None
    redeemed_store_id: int | None


class PointsEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    delta: int
    balance_after: int
    kind: PointsKind
    source_key: str
    created_at: datetime


class OfferBrief(BaseModel):
    """A store's best offer for a user, as shown next to the store in nearby answers."""

    id: int
    title: str = Field(description="满100减20, 8.8折 …")
    explanation: str = Field(
        description="Why it applies or what is missing: 再消费12元可用满100减20"
    )
