from __future__ import annotations

from pydantic import BaseModel, Field

from coupons.schemas import OfferBrief as OfferBrief  # nearby answers carry the engine's brief
from lbs.coords import CoordSystem

MAX_RADIUS_M = 50_000
MAX_LIMIT = 100


class NearbyQuery(BaseModel):
    lat: float = Field(ge=-90, le=90, description="Latitude in the system named by `coord`")
    lng: float = Field(ge=-180, le=180, description="Longitude in the system named by `coord`")
    coord: CoordSystem = CoordSystem.GCJ02
    radius_m: int = Field(default=3000, ge=1, le=MAX_RADIUS_M)
    limit: int = Field(default=20, ge=1, le=MAX_LIMIT)
    category: str | None = Field(default=None, max_length=32, description="Category code")
    open_now: bool = False


class MerchantBrief(BaseModel):
    id: int
    name: str


class CategoryBrief(BaseModel):
    code: str
    name: str


class NearbyStoreRead(BaseModel):
    id: int
    name: str
    merchant: MerchantBrief
    category: CategoryBrief
    address: str
    district: str
    phone: str
    distance_m: float = Field(description="Great-circle distance from the query point, metres")
    distance_text: str
    open_now: bool
    opening_hours_text: str
    lat: float
    lng: float
    coord: CoordSystem
    best_offer: OfferBrief | None = None


class NearbyResponse(BaseModel):
    query: NearbyQuery
    stores: list[NearbyStoreRead]
