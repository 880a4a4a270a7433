"""What the store APIs read and write: the portal's session API and the merchants' REST API.

Coordinates come in the system named by `coord` (GCJ-02 by default: what Tencent and Amap
pickers give) and are stored as GCJ-02; answers give GCJ-02 with the system in the name.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lbs.coords import CoordinateError, CoordSystem, LatLng, to_gcj02
from merchants.models import StoreStatus
from merchants.opening_hours import OpeningHours
from tianfu.errors import InvalidInputError

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Mobile numbers, and landlines with their area code (a hyphen optional); the same rule as
# the onboarding form's (merchants.portal_forms), kept here so the API does not lean on a page.
PHONE_RE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")

Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
StoreName = Annotated[str, Field(min_length=2, max_length=60)]
Address = Annotated[str, Field(min_length=2, max_length=120)]
District = Annotated[str, Field(max_length=32)]
Phone = Annotated[str, Field(max_length=20)]
CategoryCode = Annotated[str, Field(min_length=1, max_length=32)]


def position_gcj02(lat: float, lng: float, coord: CoordSystem) -> LatLng:
    try:
        return to_gcj02(lat, lng, coord)
    except CoordinateError as exc:
        raise InvalidInputError(str(exc)) from exc


class _StoreFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("name", "address", "district", "phone", "category", check_fields=False)
    @classmethod
    def _plain_text(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL_RE.search(value):
            raise ValueError("control characters are not allowed")
        return value

    @field_validator("phone", check_fields=False)
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value and not PHONE_RE.fullmatch(value):
            raise ValueError("a mobile number, or a landline with its area code")
        return value


class StoreCreate(_StoreFields):
    name: StoreName
    address: Address
    district: District = ""
    phone: Phone = ""
    category: CategoryCode | None = Field(default=None, description="Default: the merchant's")
    lat: Latitude = Field(description="Latitude in the system named by `coord`")
    lng: Longitude = Field(description="Longitude in the system named by `coord`")
    coord: CoordSystem = CoordSystem.GCJ02
    opening_hours: OpeningHours

    def position(self) -> LatLng:
        return position_gcj02(self.lat, self.lng, self.coord)


class StoreUpdate(_StoreFields):
    """Only the fields sent change; `lat` and `lng` come together (with their `coord`)."""

    name: StoreName | None = None
    address: Address | None = None
    district: District | None = None
    phone: Phone | None = None
    category: CategoryCode | None = None
    lat: Latitude | None = None
    lng: Longitude | None = None
    coord: CoordSystem = CoordSystem.GCJ02
    opening_hours: OpeningHours | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.lat is None) != (self.lng is None):
            raise ValueError("send lat and lng together, or neither")
        return self

    def position(self) -> LatLng | None:
        if self.lat is None or self.lng is None:
            return None
        return position_gcj02(self.lat, self.lng, self.coord)


class StoreRead(BaseModel):
    id: int
    merchant_id: int
    name: str
    address: str
    district: str
    phone: str
    category: str = Field(description="Category code")
    status: StoreStatus
    lat_gcj02: float
    lng_gcj02: float
    opening_hours: dict[str, Any]
    opening_hours_text: str
    created_at: datetime
    updated_at: datetime
