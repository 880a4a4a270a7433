"""Great-circle geometry on a spherical Earth, and the float error bounds the index relies on.

Coordinates are GCJ-02 latitude/longitude in degrees, treated as points on a sphere of the mean
Earth radius; the sphere is off the ellipsoid by up to ~0.5 %, far more than any float noise.
What this module guarantees is consistency, not geodesy: the scalar and the vectorised
haversine return the same float64 for the same inputs, so an index that ranks by
`haversine_m_array` and a brute-force scan with `haversine_m` agree bit-for-bit.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

EARTH_RADIUS_M: Final[float] = 6_371_008.8
_RAD: Final[float] = math.pi / 180.0
_HALF_RAD: Final[float] = math.pi / 360.0
_DIAMETER_M: Final[float] = 2.0 * EARTH_RADIUS_M
_HALF_CIRCUMFERENCE_M: Final[float] = math.pi * EARTH_RADIUS_M

FloatArray = npt.NDArray[np.float64]

# Error budget. A point's unit vector and the R-tree's Euclidean distances are each off by a
# few 1e-16 (unit-sphere units); CHORD_SLACK is ~1000x that. The computed haversine is within
# ~1e-8 m of the exact great-circle distance between the same float inputs, except near the
# antipode (angle > ~2.9 rad) where asin(sqrt(a)) is ill-conditioned (a -> 1) and the error
# can reach a few decimetres; `distance_slack_m` is ~100x those bounds. The switch to the
# large slack happens at 2.8 rad, below 2.9, so that a point whose true angle is past 2.9 rad
# (large error) can never have a computed distance below the switch.
CHORD_SLACK: Final[float] = 1e-12
_SMALL_SLACK_M: Final[float] = 1e-6
_RELATIVE_SLACK: Final[float] = 1e-12
_ANTIPODAL_SLACK_M: Final[float] = 10.0
_ANTIPODAL_FROM_M: Final[float] = 2.8 * EARTH_RADIUS_M


def _haversine(lat1: Any, lng1: Any, lat2: Any, lng2: Any) -> Any:
    # One body for scalars and arrays: numpy's float64 loops (not `math`) for every
    # transcendental, so both entry points run the same kernels in the same order. math.asin
    # and np.arcsin differ in the last bit on AVX-512 machines (numpy uses SVML there).
    # No `out=`: numpy falls back to another arcsin loop when input and output overlap.
    # Differences are taken in degrees: exact when close (Sterbenz), one rounding otherwise.
    s_lat = np.sin((lat2 - lat1) * _HALF_RAD)
    s_lng = np.sin((lng2 - lng1) * _HALF_RAD)
    a = s_lat * s_lat + np.cos(lat1 * _RAD) * np.cos(lat2 * _RAD) * (s_lng * s_lng)
    # Rounding can push `a` a hair above 1 for antipodal points; arcsin would return NaN.
    return _DIAMETER_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    return float(_haversine(float(lat1), float(lng1), float(lat2), float(lng2)))


def haversine_m_array(
    lat: float, lng: float, lats: npt.ArrayLike, lngs: npt.ArrayLike
) -> FloatArray:
    # Element i equals haversine_m(lat, lng, lats[i], lngs[i]) exactly.
    lats_a = np.asarray(lats, dtype=np.float64)
    lngs_a = np.asarray(lngs, dtype=np.float64)
    result: FloatArray = np.asarray(
        _haversine(float(lat), float(lng), lats_a, lngs_a), dtype=np.float64
    )
    return result


def unit_vectors(lats: npt.ArrayLike, lngs: npt.ArrayLike) -> FloatArray:
    phi = np.asarray(lats, dtype=np.float64) * _RAD
    lam = np.asarray(lngs, dtype=np.float64) * _RAD
    cos_phi = np.cos(phi)
    out = np.empty((phi.shape[0], 3), dtype=np.float64)
    out[:, 0] = cos_phi * np.cos(lam)
    out[:, 1] = cos_phi * np.sin(lam)
    out[:, 2] = np.sin(phi)
    return out


def unit_vector(lat: float, lng: float) -> tuple[float, float, float]:
    # Query points only: its few-ulp difference from `unit_vectors` is inside CHORD_SLACK.
    phi = lat * _RAD
    lam = lng * _RAD
    cos_phi = math.cos(phi)
    return (cos_phi * math.cos(lam), cos_phi * math.sin(lam), math.sin(phi))


def chord_for_metres(distance_m: float) -> float:
    if distance_m <= 0.0:
        return 0.0
    if distance_m >= _HALF_CIRCUMFERENCE_M:
        return 2.0
    return 2.0 * math.sin(distance_m / (2.0 * EARTH_RADIUS_M))


def metres_for_chord(chord: float) -> float:
    if chord <= 0.0:
        return 0.0
    return 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, chord * 0.5))


def distance_slack_m(distance_m: float) -> float:
    # Upper bound on |haversine_m - exact distance| for points whose computed distance is
    # around `distance_m` (see the error budget above).
    if distance_m >= _ANTIPODAL_FROM_M:
        return _ANTIPODAL_SLACK_M
    return _SMALL_SLACK_M + _RELATIVE_SLACK * distance_m


def box_half_width(radius_m: float) -> float:
    # Every point with haversine_m <= radius_m lies within this Chebyshev distance of the
    # query's unit vector, as both vectors are computed: exact angle <= radius + slack, so
    # exact chord <= chord_for_metres(radius + slack), and each stored/query coordinate is
    # within a few ulps of exact.
    return chord_for_metres(radius_m + distance_slack_m(radius_m)) + CHORD_SLACK


def unseen_lower_bound_m(farthest_seen_m: float) -> float:
    # A value that every point the R-tree did NOT return has a haversine_m strictly above.
    # The tree returned the m points of smallest computed chord, so every other point's
    # computed chord is >= that of the returned point whose haversine_m is `farthest_seen_m`.
    # Chain the bounds: that point's exact distance >= farthest - slack; the tree's chords are
    # within CHORD_SLACK of exact ones, so an unseen point's exact distance is
    # >= metres_for_chord(chord - CHORD_SLACK), and its haversine_m at most a slack below that
    # (doubled to absorb the rounding of this very computation).
    seen = farthest_seen_m - distance_slack_m(farthest_seen_m)
    if seen <= 0.0:
        return -math.inf
    exact = metres_for_chord(chord_for_metres(seen) - CHORD_SLACK)
    return exact - 2.0 * distance_slack_m(exact)


def check_lat_lng(lat: float, lng: float) -> tuple[float, float]:
    lat_f = float(lat)
    lng_f = float(lng)
    if not (math.isfinite(lat_f) and -90.0 <= lat_f <= 90.0):
        raise ValueError(f"latitude must be a finite number in [-90, 90], got {lat!r}")
    if not (math.isfinite(lng_f) and -180.0 <= lng_f <= 180.0):
        raise ValueError(f"longitude must be a finite number in [-180, 180], got {lng!r}")
    return lat_f, lng_f
