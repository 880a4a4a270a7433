"""Conversions between WGS-84, GCJ-02 and BD-09 (spec/wechat-official-account.md §7).

Everything here takes and returns **(lat, lng)** in decimal degrees. WeChat's `Location_X` is the
latitude and `Location_Y` the longitude. Beware of libraries in the other order: coordTransform
takes (lng, lat), and so do WKT, GeoJSON, shapely and the database `POINT(lng lat)`. `LatLng` is a
named tuple so callers can write `.lat`/`.lng` instead of relying on the position.

The project stores GCJ-02 and converts only at the edges (docs/architecture.md): `to_gcj02` for
incoming WGS-84 (raw GPS) or BD-09 (Baidu) data, `from_gcj02` for the rare outgoing case. Avoid
publishing GCJ→WGS results: de-shifting is legally sensitive in mainland China (spec §7).

Only the stdlib is imported, so this module is cheap to use from anywhere (the HTTP layer, the
spatial index, scripts).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple

# Krasovsky 1940 ellipsoid, which GCJ-02 uses to turn its metre offsets into degrees. eviltransform
# 0.1.1 uses the WGS-84 a = 6378137 instead and is off by ~1e-7° (spec §7): keep 6378245.
KRASOVSKY_A = 6378245.0
KRASOVSKY_EE = 0.00669342162296594323

# BD-09 = GCJ-02 with a small polar-coordinate wobble plus a fixed shift.
BD_X_PI = math.pi * 3000.0 / 180.0
BD_DLAT = 0.006
BD_DLNG = 0.0065

# The box where GCJ-02 differs from WGS-84. The libraries disagree (spec §7, vectors'
# `china_box_*`); we use the eviltransform/prcoords box, inclusive. coordTransform's tighter box
# (73.66 < lng < 135.05, 3.86 < lat < 53.55) clips real Chinese territory: Mohe reaches ~53.56°N,
# Fuyuan ~135.08°E and the Pamirs ~73.5°E, and an unshifted point there lands hundreds of metres
# off. The price is the other side: Singapore (and Kuala Lumpur, Brunei) are shifted here but
# not by coordTransform. No rectangle is right: Seoul, Taipei and Kyushu fall inside every
# library's box although Korea and Japan do not use GCJ-02 and Tencent returns WGS-84 for Taiwan
# and overseas. For a Chengdu bank those points have no merchants; a caller that knows a point is
# abroad should not ask for a WGS-84 → GCJ-02 conversion at all.
CHINA_MIN_LAT, CHINA_MAX_LAT = 0.8293, 55.8271
CHINA_MIN_LNG, CHINA_MAX_LNG = 72.004, 137.8347

# The inverses iterate the forward map. It moves points by < 0.01° and its Jacobian is within a
# few 1e-3 of the identity, so each step gains two to three digits (Chengdu: 5e-6, 1e-8, 2e-11,
# 4e-14°); 1e-12° is far below any test tolerance (1e-8°) and above float resolution at lng ~100°.
_INVERSE_EPS_DEG = 1e-12
_INVERSE_MAX_STEPS = 30


class CoordSystem(StrEnum):
    """The values are the `coord=` query parameter of the HTTP API."""

    GCJ02 = "gcj02"
    WGS84 = "wgs84"
    BD09 = "bd09"


class LatLng(NamedTuple):
    """Latitude first, as WeChat's Location_X/Location_Y; a tuple, so `lat, lng = p` works."""

    lat: float
    lng: float


class CoordinateError(ValueError):
    pass


def validate_lat_lng(lat: float, lng: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lng)):
        raise CoordinateError(f"coordinates must be finite numbers, got lat={lat!r}, lng={lng!r}")
    if not -90.0 <= lat <= 90.0:
        raise CoordinateError(
            f"latitude {lat!r} is outside -90..90 (were latitude and longitude swapped?)"
        )
    if not -180.0 <= lng <= 180.0:
        raise CoordinateError(f"longitude {lng!r} is outside -180..180")


def in_china_offset_area(lat: float, lng: float) -> bool:
    """Whether GCJ-02 shifts this point; outside the box GCJ-02 == WGS-84 exactly.

    A rough rectangle, not a border: see the note on `CHINA_MIN_LAT` for what it gets wrong.
    """
    validate_lat_lng(lat, lng)
    return _in_box(lat, lng)


def _in_box(lat: float, lng: float) -> bool:
    return CHINA_MIN_LAT <= lat <= CHINA_MAX_LAT and CHINA_MIN_LNG <= lng <= CHINA_MAX_LNG


def _waves(amp1: float, angle1: float, amp2: float, angle2: float) -> float:
    return (amp1 * math.sin(angle1 * math.pi) + amp2 * math.sin(angle2 * math.pi)) * 2.0 / 3.0


def _gcj_offset_m(x: float, y: float) -> tuple[float, float]:
    """The published GCJ-02 polynomial-plus-sine offsets (north, east), nominally in metres,
    of x = lng - 105, y = lat - 35."""
    shared = _waves(20.0, 6.0 * x, 20.0, 2.0 * x)
    north = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    north += shared + _waves(20.0, y, 40.0, y / 3.0) + _waves(160.0, y / 12.0, 320.0, y / 30.0)
    east = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    east += shared + _waves(20.0, x, 40.0, x / 3.0) + _waves(150.0, x / 12.0, 300.0, x / 30.0)
    return north, east


def _wgs_to_gcj_unchecked(lat: float, lng: float) -> LatLng:
    if not _in_box(lat, lng):
        return LatLng(lat, lng)
    north, east = _gcj_offset_m(lng - 105.0, lat - 35.0)
    rad_lat = lat / 180.0 * math.pi
    w = 1.0 - KRASOVSKY_EE * math.sin(rad_lat) ** 2
    # Metres → degrees with the meridional (M) and prime-vertical (N) radii of curvature.
    meridional = KRASOVSKY_A * (1.0 - KRASOVSKY_EE) / (w * math.sqrt(w))
    prime_vertical = KRASOVSKY_A / math.sqrt(w)
    dlat = north * 180.0 / (meridional * math.pi)
    dlng = east * 180.0 / (prime_vertical * math.cos(rad_lat) * math.pi)
    return LatLng(lat + dlat, lng + dlng)


def _gcj_to_bd_unchecked(lat: float, lng: float) -> LatLng:
    z = math.hypot(lng, lat) + 2e-5 * math.sin(lat * BD_X_PI)
    theta = math.atan2(lat, lng) + 3e-6 * math.cos(lng * BD_X_PI)
    return LatLng(z * math.sin(theta) + BD_DLAT, z * math.cos(theta) + BD_DLNG)


def _bd_to_gcj_one_step(lat: float, lng: float) -> LatLng:
    """The usual closed-form inverse; ~1e-7..7e-7° off at the test points (spec §7)."""
    x, y = lng - BD_DLNG, lat - BD_DLAT
    z = math.hypot(x, y) - 2e-5 * math.sin(y * BD_X_PI)
    theta = math.atan2(y, x) - 3e-6 * math.cos(x * BD_X_PI)
    return LatLng(z * math.sin(theta), z * math.cos(theta))


def _invert(forward: Callable[[float, float], LatLng], target: LatLng, start: LatLng) -> LatLng:
    """Solve forward(p) == target by p += target - forward(p).

    Bounded: near the box edge the forward map jumps and the iteration may not settle; the last
    estimate is then still within the jump (< 0.01°) of the answer, which is the best a
    discontinuous map allows.
    """
    lat, lng = start
    for _ in range(_INVERSE_MAX_STEPS):
        got = forward(lat, lng)
        dlat, dlng = target.lat - got.lat, target.lng - got.lng
        lat, lng = lat + dlat, lng + dlng
        if abs(dlat) < _INVERSE_EPS_DEG and abs(dlng) < _INVERSE_EPS_DEG:
            break
    return LatLng(lat, lng)


def wgs84_to_gcj02(lat: float, lng: float) -> LatLng:
    validate_lat_lng(lat, lng)
    return _wgs_to_gcj_unchecked(lat, lng)


def gcj02_to_wgs84(lat: float, lng: float) -> LatLng:
    """Exact inverse of `wgs84_to_gcj02` (to < 1e-12°), not the one-step guess `g - Δ(g)`,
    which is off by up to ~1e-5° (~1 m)."""
    validate_lat_lng(lat, lng)
    if not _in_box(lat, lng):
        return LatLng(lat, lng)
    return _invert(_wgs_to_gcj_unchecked, LatLng(lat, lng), LatLng(lat, lng))


def gcj02_to_bd09(lat: float, lng: float) -> LatLng:
    """Applied everywhere, like coordTransform and prcoords (eviltransform leaves points outside
    China alone); the spec asserts nothing about BD-09 abroad, and one rule keeps it invertible."""
    validate_lat_lng(lat, lng)
    return _gcj_to_bd_unchecked(lat, lng)


def bd09_to_gcj02(lat: float, lng: float) -> LatLng:
    """The closed-form inverse refined by iteration, so that a GCJ → BD → GCJ round trip is
    exact; it differs from other libraries' one-step result by < 1e-6° (~0.1 m)."""
    validate_lat_lng(lat, lng)
    target = LatLng(lat, lng)
    return _invert(_gcj_to_bd_unchecked, target, _bd_to_gcj_one_step(lat, lng))


def to_gcj02(lat: float, lng: float, system: CoordSystem) -> LatLng:
    """Convert a point given in `system` to GCJ-02, the system we store."""
    match system:
        case CoordSystem.GCJ02:
            validate_lat_lng(lat, lng)
            return LatLng(lat, lng)
        case CoordSystem.WGS84:
            return wgs84_to_gcj02(lat, lng)
        case CoordSystem.BD09:
            return bd09_to_gcj02(lat, lng)


def from_gcj02(lat: float, lng: float, system: CoordSystem) -> LatLng:
    """Convert a stored GCJ-02 point to `system`."""
    match system:
        case CoordSystem.GCJ02:
            validate_lat_lng(lat, lng)
            return LatLng(lat, lng)
        case CoordSystem.WGS84:
            return gcj02_to_wgs84(lat, lng)
        case CoordSystem.BD09:
            return gcj02_to_bd09(lat, lng)
