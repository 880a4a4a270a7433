"""Points as stored: SRID 4326 geometry columns holding GCJ-02 longitude/latitude.

GCJ-02 has no EPSG code; the column is declared 4326 so PostGIS and SpatiaLite accept it, and the
system is stated in every name that carries a coordinate (docs/architecture.md, "Data rules").
"""

from __future__ import annotations

import math

from geoalchemy2 import WKTElement

STORAGE_SRID = 4326


class CoordinateRangeError(ValueError):
    pass


def check_lat_lng(lat: float, lng: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lng)):
        raise CoordinateRangeError("coordinates must be finite numbers")
    if not -90.0 <= lat <= 90.0:
        raise CoordinateRangeError(f"latitude {lat} is outside -90..90")
    if not -180.0 <= lng <= 180.0:
        raise CoordinateRangeError(f"longitude {lng} is outside -180..180")


def gcj02_point(lat_gcj02: float, lng_gcj02: float) -> WKTElement:
    check_lat_lng(lat_gcj02, lng_gcj02)
    # WKT and both databases order points (x=lng, y=lat); WeChat's Location_X is the latitude.
    return WKTElement(f"POINT({lng_gcj02!r} {lat_gcj02!r})", srid=STORAGE_SRID)
