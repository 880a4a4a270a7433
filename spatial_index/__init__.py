"""Exact, live, in-process nearest-store index on the sphere (see `spatial_index.index`)."""

from .geometry import EARTH_RADIUS_M, chord_for_metres, haversine_m, haversine_m_array
from .index import Accept, SpatialIndex

__all__ = [
    "EARTH_RADIUS_M",
    "Accept",
    "SpatialIndex",
    "chord_for_metres",
    "haversine_m",
    "haversine_m_array",
]
