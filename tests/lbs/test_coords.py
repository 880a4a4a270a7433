"""lbs.coords against the public vectors of spec/wechat-vectors.json (`coordinate_vectors`) and
properties that hold everywhere. Everything is (lat, lng); the JSON uses explicit keys."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lbs.coords import (
    BD_DLAT,
    BD_DLNG,
    BD_X_PI,
    CHINA_MAX_LAT,
    CHINA_MAX_LNG,
    CHINA_MIN_LAT,
    CHINA_MIN_LNG,
    KRASOVSKY_A,
    KRASOVSKY_EE,
    CoordinateError,
    CoordSystem,
    LatLng,
    bd09_to_gcj02,
    from_gcj02,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    in_china_offset_area,
    to_gcj02,
    validate_lat_lng,
    wgs84_to_gcj02,
)
from tests.lbs.vectors import MISSING, Vector, load_vectors

MEAN_EARTH_RADIUS_M = 6371008.8  # what the JSON's distance_check_m says it used

ALL_VECTORS = load_vectors()
VECTORS: Vector | None = None if ALL_VECTORS is None else ALL_VECTORS["coordinate_vectors"]


def _cases(key: str) -> list[Any]:
    if VECTORS is None:
        return [pytest.param(None, id="vectors-missing")]
    return [pytest.param(point, id=point["id"]) for point in VECTORS[key]]


def _need() -> Vector:
    """The whole `coordinate_vectors` object, failing loudly when the file is missing."""
    if VECTORS is None:
        pytest.fail(MISSING)
    return VECTORS


def _tol(name: str) -> float:
    return float(_need()["tolerances_deg"][name])


def _ll(obj: Vector) -> LatLng:
    return LatLng(float(obj["lat"]), float(obj["lng"]))


def _assert_close(actual: tuple[float, float], expected: tuple[float, float], tol: float) -> None:
    dlat, dlng = abs(actual[0] - expected[0]), abs(actual[1] - expected[1])
    message = f"{actual} vs {expected}: off by ({dlat:.3g}, {dlng:.3g})°, tolerance {tol:g}°"
    assert dlat <= tol, message
    assert dlng <= tol, message


def _haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    phi1, phi2 = math.radians(a[0]), math.radians(b[0])
    dphi, dlam = phi2 - phi1, math.radians(b[1] - a[1])
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * MEAN_EARTH_RADIUS_M * math.asin(math.sqrt(h))


def _box(text: str) -> tuple[float, float, float, float]:
    """'72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271 (…)' → the four numbers."""
    min_lng, max_lng, min_lat, max_lat = (float(n) for n in re.findall(r"\d+\.\d+", text)[:4])
    return min_lat, max_lat, min_lng, max_lng


def test_vectors_file_is_present() -> None:
    _need()


def test_coord_system_values_are_the_api_strings() -> None:
    assert [s.value for s in CoordSystem] == ["gcj02", "wgs84", "bd09"]
    assert CoordSystem("bd09") is CoordSystem.BD09


def test_constants_and_box_match_the_spec() -> None:
    constants = _need()["constants"]
    assert constants["krasovsky_a"] == KRASOVSKY_A
    assert constants["ee"] == KRASOVSKY_EE
    assert constants["bd_x_pi"] == "pi * 3000 / 180"
    assert math.pi * 3000 / 180 == BD_X_PI
    assert constants["bd_offsets"] == {"dlat": BD_DLAT, "dlng": BD_DLNG}
    ours = (CHINA_MIN_LAT, CHINA_MAX_LAT, CHINA_MIN_LNG, CHINA_MAX_LNG)
    assert _box(constants["china_box_common"]) == ours


@pytest.mark.parametrize(
    ("lat", "lng"),
    [
        pytest.param(53.56, 122.35, id="mohe-northern-tip"),
        pytest.param(48.36, 135.08, id="fuyuan-eastern-tip"),
        pytest.param(39.35, 73.55, id="pamirs-western-edge"),
    ],
)
def test_box_covers_borders_that_the_coordtransform_box_clips(lat: float, lng: float) -> None:
    min_lat, max_lat, min_lng, max_lng = _box(_need()["constants"]["china_box_coordTransform"])
    assert not (min_lat < lat < max_lat and min_lng < lng < max_lng)
    assert in_china_offset_area(lat, lng)
    assert wgs84_to_gcj02(lat, lng) != (lat, lng)


@pytest.mark.parametrize("point", _cases("china_points"))
def test_china_point_conversions(point: Vector | None) -> None:
    _need()
    assert point is not None
    assert point["input_system"] == "gcj02"
    gcj, wgs, bd = _ll(point["gcj02"]), _ll(point["wgs84"]), _ll(point["bd09"])
    for p in (gcj, wgs, bd):
        assert in_china_offset_area(*p)

    forward = wgs84_to_gcj02(*wgs)
    assert isinstance(forward, LatLng)
    _assert_close(forward, gcj, _tol("forward_wgs84_to_gcj02"))
    _assert_close(gcj02_to_wgs84(*gcj), wgs, _tol("exact_inverse_gcj02_to_wgs84"))
    _assert_close(gcj02_to_bd09(*gcj), bd, _tol("forward_gcj02_to_bd09"))
    _assert_close(bd09_to_gcj02(*bd), gcj, _tol("one_step_inverse_bd09_to_gcj02"))
    # Our BD inverse iterates, so it does better than the spec's one-step tolerance.
    _assert_close(bd09_to_gcj02(*bd), gcj, _tol("forward_gcj02_to_bd09"))

    for system, given_there in ((CoordSystem.WGS84, wgs), (CoordSystem.BD09, bd)):
        _assert_close(to_gcj02(*given_there, system), gcj, _tol("one_step_inverse_bd09_to_gcj02"))
        _assert_close(from_gcj02(*gcj, system), given_there, _tol("exact_inverse_gcj02_to_wgs84"))
    assert to_gcj02(*gcj, CoordSystem.GCJ02) == gcj == from_gcj02(*gcj, CoordSystem.GCJ02)


@pytest.mark.parametrize("point", _cases("china_points"))
def test_one_step_inverse_is_only_rough(point: Vector | None) -> None:
    """Why gcj02_to_wgs84 iterates: w ≈ g − Δ(g) misses by up to ~1e-5° (spec §7)."""
    _need()
    assert point is not None
    gcj, wgs = _ll(point["gcj02"]), _ll(point["wgs84"])
    shifted = wgs84_to_gcj02(*gcj)
    one_step = (2 * gcj.lat - shifted.lat, 2 * gcj.lng - shifted.lng)
    _assert_close(one_step, wgs, _tol("rough_one_step_inverse_gcj02_to_wgs84"))
    error = max(abs(one_step[0] - wgs.lat), abs(one_step[1] - wgs.lng))
    assert error > _tol("exact_inverse_gcj02_to_wgs84")


@pytest.mark.parametrize("point", _cases("china_points"))
def test_approximate_offsets_in_metres(point: Vector | None) -> None:
    _need()
    assert point is not None
    gcj, wgs, bd = _ll(point["gcj02"]), _ll(point["wgs84"]), _ll(point["bd09"])
    metres_per_degree = MEAN_EARTH_RADIUS_M * math.pi / 180
    cos_lat = math.cos(math.radians(gcj.lat))
    ours = {
        "gcj02_minus_wgs84_north": (gcj.lat - wgs.lat) * metres_per_degree,
        "gcj02_minus_wgs84_east": (gcj.lng - wgs.lng) * metres_per_degree * cos_lat,
        "bd09_minus_gcj02_north": (bd.lat - gcj.lat) * metres_per_degree,
        "bd09_minus_gcj02_east": (bd.lng - gcj.lng) * metres_per_degree * cos_lat,
    }
    # "approx": the JSON's metres come out ~0.11% larger than a mean-radius sphere gives (they
    # match R = 6378137 m), so compare to 0.3%.
    for key, expected in point["approx_offsets_m"].items():
        assert ours[key] == pytest.approx(expected, rel=3e-3), key


def test_distances_within_and_across_systems() -> None:
    vectors = _need()
    points = {p["id"]: p for p in vectors["china_points"]}
    tianfu, chunxi = points["tianfu_square_chengdu"], points["chunxi_road_chengdu"]
    facts = vectors["distance_check_m"]
    for system in CoordSystem:
        distance = _haversine_m(_ll(tianfu[system]), _ll(chunxi[system]))
        assert round(distance, 1) == facts[f"tianfu_to_chunxi_{system}"], system
    gcj = _ll(tianfu["gcj02"])
    for other in ("wgs84", "bd09"):
        mixed = _haversine_m(gcj, _ll(tianfu[other]))
        assert round(mixed, 1) == facts[f"same_place_gcj02_vs_{other}"], other


@pytest.mark.parametrize("point", _cases("outside_china_points"))
def test_outside_china_gcj02_is_wgs84_exactly(point: Vector | None) -> None:
    _need()
    assert point is not None
    wgs, gcj = _ll(point["wgs84"]), _ll(point["gcj02"])
    assert not in_china_offset_area(*wgs)
    assert wgs84_to_gcj02(*wgs) == gcj
    assert gcj02_to_wgs84(*gcj) == wgs
    assert to_gcj02(*wgs, CoordSystem.WGS84) == gcj
    # BD-09 abroad is library-dependent and not asserted by the vectors; ours applies the
    # formula everywhere, so at least it must round-trip.
    _assert_close(bd09_to_gcj02(*gcj02_to_bd09(*gcj)), gcj, _tol("forward_gcj02_to_bd09"))


@pytest.mark.parametrize("point", _cases("naive_box_caveats"))
def test_naive_box_caveats(point: Vector | None) -> None:
    """Seoul and Taipei sit inside every library's box, so we shift them too (documented).
    Singapore splits the libraries; we follow the common box, i.e. prcoords and eviltransform."""
    _need()
    assert point is not None
    wgs = _ll(point["wgs84"])
    ours = wgs84_to_gcj02(*wgs)
    assert in_china_offset_area(*wgs)
    for library, output in point["naive_output"].items():
        theirs = _ll(output)
        if theirs == wgs:
            # Only coordTransform leaves a point alone, and only Singapore (its box starts at 3.86).
            assert (library, point["id"]) == ("coordTransform", "singapore_marina_bay")
            assert ours != wgs
            continue
        tol_name = "forward_wgs84_to_gcj02"
        if library == "eviltransform":  # a = 6378137 (spec §7)
            tol_name = "forward_eviltransform_vs_reference"
        _assert_close(ours, theirs, _tol(tol_name))


# Well inside the box, so that the WGS-84 pre-image of a GCJ-02 point is inside it too.
mainland = st.tuples(st.floats(18.0, 53.0), st.floats(74.0, 134.0))
anywhere = st.tuples(st.floats(-90.0, 90.0), st.floats(-180.0, 180.0))
ROUND_TRIP_DEG = 1e-9


@given(mainland)
def test_gcj02_wgs84_round_trips(point: tuple[float, float]) -> None:
    _assert_close(wgs84_to_gcj02(*gcj02_to_wgs84(*point)), point, ROUND_TRIP_DEG)
    _assert_close(gcj02_to_wgs84(*wgs84_to_gcj02(*point)), point, ROUND_TRIP_DEG)


@given(mainland)
def test_gcj02_bd09_round_trips(point: tuple[float, float]) -> None:
    _assert_close(bd09_to_gcj02(*gcj02_to_bd09(*point)), point, ROUND_TRIP_DEG)
    _assert_close(gcj02_to_bd09(*bd09_to_gcj02(*point)), point, ROUND_TRIP_DEG)


@given(anywhere)
def test_outside_the_box_wgs84_and_gcj02_are_the_same(point: tuple[float, float]) -> None:
    assume(not in_china_offset_area(*point))
    assert wgs84_to_gcj02(*point) == point
    assert gcj02_to_wgs84(*point) == point


@given(mainland, st.sampled_from(CoordSystem))
def test_to_and_from_gcj02_are_inverses(point: tuple[float, float], system: CoordSystem) -> None:
    _assert_close(to_gcj02(*from_gcj02(*point, system), system), point, ROUND_TRIP_DEG)
    _assert_close(from_gcj02(*to_gcj02(*point, system), system), point, ROUND_TRIP_DEG)


CHECKED: dict[str, Callable[[float, float], object]] = {
    "validate_lat_lng": validate_lat_lng,
    "in_china_offset_area": in_china_offset_area,
    "wgs84_to_gcj02": wgs84_to_gcj02,
    "gcj02_to_wgs84": gcj02_to_wgs84,
    "gcj02_to_bd09": gcj02_to_bd09,
    "bd09_to_gcj02": bd09_to_gcj02,
    **{f"to_gcj02-{s}": partial(to_gcj02, system=s) for s in CoordSystem},
    **{f"from_gcj02-{s}": partial(from_gcj02, system=s) for s in CoordSystem},
}


@given(anywhere)
@pytest.mark.parametrize("name", CHECKED)
def test_every_valid_point_is_accepted(name: str, point: tuple[float, float]) -> None:
    result = CHECKED[name](*point)
    if isinstance(result, tuple):
        assert all(math.isfinite(v) for v in result)


def _bad(limit: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.floats(min_value=limit, exclude_min=True, allow_infinity=False),
        st.floats(max_value=-limit, exclude_max=True, allow_infinity=False),
    )


invalid = st.one_of(
    st.tuples(_bad(90.0), st.floats()),
    st.tuples(st.floats(-90.0, 90.0), _bad(180.0)),
)


@given(invalid)
@pytest.mark.parametrize("name", CHECKED)
def test_invalid_input_raises_coordinate_error(name: str, point: tuple[float, float]) -> None:
    with pytest.raises(CoordinateError, match=r"finite|outside"):
        CHECKED[name](*point)


def test_swapped_lat_lng_gets_a_hint() -> None:
    # (lng, lat) from a library in the other order: 104° is not a latitude.
    with pytest.raises(CoordinateError, match="swapped"):
        wgs84_to_gcj02(104.06584, 30.65742)
