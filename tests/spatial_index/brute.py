"""The reference the index must match exactly: a full haversine scan, ranked by (distance, id).

Also the data generators shared by the property-based, stateful and thread tests: besides
uniform points, the cases where an approximate index goes wrong: tight clusters, piles of
exact duplicates, points near the edges of China, the poles and the antimeridian.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from spatial_index import haversine_m

Points = dict[int, tuple[float, float]]
Result = list[tuple[int, float]]
Accept = Callable[[int], bool]

# Edges of China: Mohe (north), Sanya (south), Kashgar / Pamirs (west), Fuyuan (east); then
# Chengdu, the home market; then places where degree-space geometry breaks down.
CHINA_EDGES: tuple[tuple[float, float], ...] = (
    (53.48, 122.37),
    (18.25, 109.51),
    (39.47, 73.55),
    (48.36, 134.99),
    (30.66, 104.06),
)
HARD_PLACES: tuple[tuple[float, float], ...] = (
    (89.9995, 12.0),
    (-89.9999, -170.0),
    (0.0, 179.9999),
    (65.0, -179.9995),
    (0.0, 0.0),
)
CENTRES = CHINA_EDGES + HARD_PLACES


def ranked(points: Points, lat: float, lng: float) -> Result:
    scored = [(sid, haversine_m(lat, lng, p_lat, p_lng)) for sid, (p_lat, p_lng) in points.items()]
    return sorted(scored, key=lambda pair: (pair[1], pair[0]))


def pick_nearest(
    ranking: Result, k: int, max_distance_m: float | None = None, accept: Accept | None = None
) -> Result:
    if k <= 0:
        return []
    hits = [
        (sid, d)
        for sid, d in ranking
        if (max_distance_m is None or d <= max_distance_m) and (accept is None or accept(sid))
    ]
    return hits[:k]


def pick_within(
    ranking: Result, radius_m: float, limit: int | None = None, accept: Accept | None = None
) -> Result:
    hits = [(sid, d) for sid, d in ranking if d <= radius_m and (accept is None or accept(sid))]
    return hits if limit is None else hits[: max(limit, 0)]


def brute_nearest(
    points: Points,
    lat: float,
    lng: float,
    k: int,
    max_distance_m: float | None = None,
    accept: Accept | None = None,
) -> Result:
    return pick_nearest(ranked(points, lat, lng), k, max_distance_m, accept)


def brute_within(
    points: Points,
    lat: float,
    lng: float,
    radius_m: float,
    limit: int | None = None,
    accept: Accept | None = None,
) -> Result:
    return pick_within(ranked(points, lat, lng), radius_m, limit, accept)


def clamp(lat: float, lng: float) -> tuple[float, float]:
    # Keep generated points valid; longitudes past ±180 wrap, as they would on the globe.
    lat = min(90.0, max(-90.0, lat))
    if lng > 180.0:
        lng -= 360.0
    elif lng < -180.0:
        lng += 360.0
    return lat, lng


def make_points(kind: str, n: int, seed: int) -> Points:
    rng = np.random.default_rng(seed)
    ids = rng.choice(2**62, size=n, replace=False) + 1
    if kind == "china":
        lats = rng.uniform(0.0, 55.0, n)
        lngs = rng.uniform(73.0, 136.0, n)
    elif kind in ("cluster", "duplicates"):
        centre = CENTRES[int(rng.integers(len(CENTRES)))]
        spread = 10.0 ** rng.uniform(-6.0, -2.0)  # 0.1 m .. 1 km
        distinct = max(1, n // 40) if kind == "duplicates" else n
        base_lat = centre[0] + rng.normal(0.0, spread, distinct)
        base_lng = centre[1] + rng.normal(0.0, spread, distinct)
        pick = rng.integers(0, distinct, n)
        lats, lngs = base_lat[pick], base_lng[pick]
    elif kind == "sparse":
        lats = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
        lngs = rng.uniform(-180.0, 180.0, n)
    else:
        raise ValueError(kind)
    return {int(sid): clamp(float(a), float(b)) for sid, a, b in zip(ids, lats, lngs, strict=True)}


def query_near(points: Points, rng: np.random.Generator) -> tuple[float, float]:
    # A query on a store, near one, at a hard place, or anywhere.
    roll = rng.random()
    if points and roll < 0.6:
        p_lat, p_lng = list(points.values())[int(rng.integers(len(points)))]
        if roll < 0.2:
            return p_lat, p_lng
        scale = 10.0 ** rng.uniform(-6.0, -1.0)
        return clamp(p_lat + rng.normal(0.0, scale), p_lng + rng.normal(0.0, scale))
    if roll < 0.8:
        c_lat, c_lng = CENTRES[int(rng.integers(len(CENTRES)))]
        return clamp(c_lat + rng.normal(0.0, 0.01), c_lng + rng.normal(0.0, 0.01))
    return float(rng.uniform(-90.0, 90.0)), float(rng.uniform(-180.0, 180.0))


point_sets = st.builds(
    make_points,
    kind=st.sampled_from(["china", "cluster", "duplicates", "sparse"]),
    n=st.integers(min_value=0, max_value=300),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
