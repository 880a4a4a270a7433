from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spatial_index import EARTH_RADIUS_M, chord_for_metres, haversine_m, haversine_m_array
from spatial_index.geometry import (
    box_half_width,
    check_lat_lng,
    metres_for_chord,
    unit_vector,
    unit_vectors,
    unseen_lower_bound_m,
)

lats = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)
lngs = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)
coordinates = st.tuples(lats, lngs)
FAST = settings(max_examples=200, deadline=None)


def chord(a: tuple[float, float], b: tuple[float, float]) -> float:
    ua = np.asarray(unit_vector(*a))
    ub = np.asarray(unit_vector(*b))
    return float(np.sqrt(((ua - ub) ** 2).sum()))


@FAST
@given(query=coordinates, points=st.lists(coordinates, min_size=1, max_size=40))
def test_array_haversine_is_bit_identical_to_scalar(
    query: tuple[float, float], points: list[tuple[float, float]]
) -> None:
    arr = np.asarray(points)
    vector = haversine_m_array(query[0], query[1], arr[:, 0], arr[:, 1])
    scalar = [haversine_m(query[0], query[1], p_lat, p_lng) for p_lat, p_lng in points]
    assert vector.tolist() == scalar  # ==, not approx: ties must break the same way


def test_array_haversine_matches_scalar_on_a_large_contiguous_array() -> None:
    # Long arrays go through numpy's SIMD loops; the scalar path through the 1-element case.
    rng = np.random.default_rng(7)
    p_lats = rng.uniform(-90.0, 90.0, 5000)
    p_lngs = rng.uniform(-180.0, 180.0, 5000)
    vector = haversine_m_array(30.5, 104.1, p_lats, p_lngs)
    scalar = [haversine_m(30.5, 104.1, a, b) for a, b in zip(p_lats, p_lngs, strict=True)]
    assert vector.tolist() == scalar


@FAST
@given(a=coordinates, b=coordinates)
def test_haversine_is_symmetric_and_bounded(a: tuple[float, float], b: tuple[float, float]) -> None:
    d = haversine_m(*a, *b)
    assert d == haversine_m(*b, *a)
    assert 0.0 <= d <= math.pi * EARTH_RADIUS_M
    assert haversine_m(*a, *a) == 0.0


def test_haversine_known_distances() -> None:
    one_degree = EARTH_RADIUS_M * math.pi / 180.0
    assert haversine_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(one_degree, rel=1e-12)
    assert haversine_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(one_degree, rel=1e-12)
    # Antipodes: `a` rounds to (or past) 1; must not be NaN.
    assert haversine_m(90.0, 0.0, -90.0, 0.0) == pytest.approx(math.pi * EARTH_RADIUS_M)
    assert haversine_m(0.0, 0.0, 0.0, 180.0) == pytest.approx(math.pi * EARTH_RADIUS_M)
    # Across the antimeridian the short way round, and longitude is irrelevant at a pole.
    assert haversine_m(0.0, 179.999, 0.0, -179.999) == pytest.approx(0.002 * one_degree)
    assert haversine_m(90.0, 10.0, 90.0, -150.0) == pytest.approx(0.0, abs=1e-9)
    # Tianfu Square to Chengdu East railway station: about 8 km on the map.
    assert haversine_m(30.6570, 104.0657, 30.6297, 104.1427) == pytest.approx(7_970, rel=0.01)


def test_unit_vectors_are_unit_and_agree_with_the_scalar_form() -> None:
    rng = np.random.default_rng(3)
    p_lats = rng.uniform(-90.0, 90.0, 1000)
    p_lngs = rng.uniform(-180.0, 180.0, 1000)
    vectors = unit_vectors(p_lats, p_lngs)
    assert vectors.shape == (1000, 3)
    assert vectors.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-15)
    scalar = np.asarray([unit_vector(a, b) for a, b in zip(p_lats, p_lngs, strict=True)])
    np.testing.assert_allclose(vectors, scalar, atol=1e-15)


@FAST
@given(a=coordinates, b=coordinates)
def test_chord_for_metres_matches_the_euclidean_chord(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    assert chord_for_metres(haversine_m(*a, *b)) == pytest.approx(chord(a, b), abs=1e-9)


def test_chord_and_metres_round_trip_and_saturate() -> None:
    assert chord_for_metres(0.0) == 0.0
    assert chord_for_metres(-5.0) == 0.0
    assert chord_for_metres(math.pi * EARTH_RADIUS_M) == 2.0
    assert chord_for_metres(1e9) == 2.0
    for metres in (0.01, 1.0, 3_000.0, 1e6, 1.9e7):
        assert metres_for_chord(chord_for_metres(metres)) == pytest.approx(metres, rel=1e-9)
    distances = np.linspace(0.0, math.pi * EARTH_RADIUS_M, 1000)
    chords = [chord_for_metres(float(d)) for d in distances]
    assert chords == sorted(chords)


@FAST
@given(query=coordinates, point=coordinates)
def test_box_half_width_covers_every_point_within_the_radius(
    query: tuple[float, float], point: tuple[float, float]
) -> None:
    # The within() box must contain every point whose haversine_m equals the radius.
    radius = haversine_m(*query, *point)
    gap = np.abs(np.asarray(unit_vector(*point)) - np.asarray(unit_vector(*query))).max()
    stored = np.abs(unit_vectors([point[0]], [point[1]])[0] - np.asarray(unit_vector(*query)))
    assert max(float(gap), float(stored.max())) <= box_half_width(radius)


@FAST
@given(
    query=coordinates,
    seen=coordinates,
    unseen=coordinates,
    nudge=st.integers(min_value=0, max_value=4),
)
def test_unseen_lower_bound_is_below_any_point_the_tree_ranks_later(
    query: tuple[float, float], seen: tuple[float, float], unseen: tuple[float, float], nudge: int
) -> None:
    # Near-ties are the dangerous case: put `unseen` a few ulps from `seen`.
    if nudge:
        unseen = (seen[0], float(np.clip(seen[1] + nudge * 1e-13, -180.0, 180.0)))
    if chord(query, unseen) < chord(query, seen):
        seen, unseen = unseen, seen
    farthest = haversine_m(*query, *seen)
    assert haversine_m(*query, *unseen) > unseen_lower_bound_m(farthest)
    assert unseen_lower_bound_m(farthest) < farthest


@pytest.mark.parametrize(
    ("lat", "lng", "message"),
    [
        (math.nan, 0.0, "latitude"),
        (90.0001, 0.0, "latitude"),
        (-91.0, 0.0, "latitude"),
        (math.inf, 0.0, "latitude"),
        (0.0, 180.5, "longitude"),
        (0.0, -math.inf, "longitude"),
        (0.0, math.nan, "longitude"),
    ],
)
def test_check_lat_lng_rejects_bad_coordinates(lat: float, lng: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_lat_lng(lat, lng)


def test_check_lat_lng_accepts_the_extremes() -> None:
    assert check_lat_lng(90, -180) == (90.0, -180.0)
    assert check_lat_lng(-90.0, 180.0) == (-90.0, 180.0)
