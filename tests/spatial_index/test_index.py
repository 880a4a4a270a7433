from __future__ import annotations

import itertools
import math
import threading
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spatial_index import SpatialIndex, haversine_m

from .brute import (
    CHINA_EDGES,
    HARD_PLACES,
    Points,
    brute_nearest,
    brute_within,
    make_points,
    pick_nearest,
    pick_within,
    point_sets,
    query_near,
    ranked,
)

SETTINGS = settings(max_examples=150, deadline=None)


def load(points: Points) -> SpatialIndex:
    ids = list(points)
    return SpatialIndex.bulk_load(ids, [points[i][0] for i in ids], [points[i][1] for i in ids])


def every_third(store_id: int) -> bool:
    return store_id % 3 == 0


@SETTINGS
@given(points=point_sets, seed=st.integers(0, 2**32 - 1))
def test_nearest_and_within_match_brute_force(points: Points, seed: int) -> None:
    index = load(points)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        lat, lng = query_near(points, rng)
        k = int(rng.choice([1, 2, 10, 37, len(points) + 5]))
        accept = every_third if rng.random() < 0.5 else None
        assert index.nearest(lat, lng, k, accept=accept) == brute_nearest(
            points, lat, lng, k, accept=accept
        )
        max_m = float(10.0 ** rng.uniform(-1.0, 7.0))
        assert index.nearest(lat, lng, k, max_m, accept) == brute_nearest(
            points, lat, lng, k, max_m, accept
        )
        radius = float(10.0 ** rng.uniform(-1.0, 7.3))
        assert index.within(lat, lng, radius, accept=accept) == brute_within(
            points, lat, lng, radius, accept=accept
        )
        limit = int(rng.integers(1, 30))
        assert index.within(lat, lng, radius, limit, accept) == brute_within(
            points, lat, lng, radius, limit, accept
        )


@pytest.mark.parametrize("kind", ["china", "cluster", "duplicates", "sparse"])
def test_larger_sets_match_brute_force(kind: str) -> None:
    points = make_points(kind, 2_500, seed=len(kind))
    index = load(points)
    rng = np.random.default_rng(len(kind))
    for _ in range(12):
        lat, lng = query_near(points, rng)
        ranking = ranked(points, lat, lng)
        for k in (1, 10, 100):
            assert index.nearest(lat, lng, k) == pick_nearest(ranking, k)
            assert index.nearest(lat, lng, k, accept=every_third) == pick_nearest(
                ranking, k, accept=every_third
            )
        assert index.nearest(lat, lng, 10, 200.0) == pick_nearest(ranking, 10, 200.0)
        for radius in (50.0, 3_000.0, 1e6):
            assert index.within(lat, lng, radius) == pick_within(ranking, radius)
            assert index.within(lat, lng, radius, 20, every_third) == pick_within(
                ranking, radius, 20, every_third
            )


def test_long_random_walk_of_updates_matches_brute_force() -> None:
    # A bigger bulk load than the stateful test affords, then many writes: most stores end up
    # in the dynamic tree or dead in the static one, with queries in between.
    points = make_points("cluster", 1_500, seed=99)
    index = load(points)
    rng = np.random.default_rng(99)
    ids = list(points)
    for step in range(1_500):
        sid = (
            ids[int(rng.integers(len(ids)))] if rng.random() < 0.8 else int(rng.integers(1, 10**6))
        )
        if rng.random() < 0.25:
            assert index.remove(sid) == (sid in points)
            points.pop(sid, None)
        else:
            points[sid] = query_near(points, rng)
            index.upsert(sid, *points[sid])
        if step % 30 == 0:
            lat, lng = query_near(points, rng)
            ranking = ranked(points, lat, lng)
            assert index.nearest(lat, lng, 25) == pick_nearest(ranking, 25)
            assert index.nearest(lat, lng, 5, accept=every_third) == pick_nearest(
                ranking, 5, accept=every_third
            )
            assert index.within(lat, lng, 400.0) == pick_within(ranking, 400.0)
        if step == 900:
            index.compact()
    assert len(index) == len(points)


@SETTINGS
@given(points=point_sets.filter(bool), seed=st.integers(0, 2**32 - 1))
def test_points_exactly_on_the_radius_are_included(points: Points, seed: int) -> None:
    index = load(points)
    rng = np.random.default_rng(seed)
    lat, lng = query_near(points, rng)
    target = list(points)[int(rng.integers(len(points)))]
    radius = haversine_m(lat, lng, *points[target])
    inside = index.within(lat, lng, radius)
    assert target in {sid for sid, _ in inside}
    assert inside == brute_within(points, lat, lng, radius)
    assert target in {sid for sid, _ in index.nearest(lat, lng, len(points), radius)}
    below = math.nextafter(radius, -math.inf)
    if below >= 0.0:
        assert target not in {sid for sid, _ in index.within(lat, lng, below)}
        assert index.within(lat, lng, below) == brute_within(points, lat, lng, below)
        assert index.nearest(lat, lng, 50, below) == brute_nearest(points, lat, lng, 50, below)


@pytest.mark.parametrize("centre", CHINA_EDGES + HARD_PLACES)
def test_clusters_and_duplicates_at_hard_places(centre: tuple[float, float]) -> None:
    rng = np.random.default_rng(int(abs(centre[0] * 1000 + centre[1])))
    points: Points = {}
    for sid in range(1, 601):
        if sid % 4 == 0:  # a pile of stores in one building
            points[sid] = centre
        else:
            scale = float(10.0 ** rng.uniform(-6.0, -2.0))
            points[sid] = (
                min(90.0, max(-90.0, centre[0] + float(rng.normal(0.0, scale)))),
                max(-180.0, min(180.0, centre[1] + float(rng.normal(0.0, scale)))),
            )
    index = load(points)
    for lat, lng in [
        centre,
        (centre[0], centre[1] * 0.9999999),
        *(query_near(points, rng) for _ in range(6)),
    ]:
        for k in (1, 10, 151, 700):
            assert index.nearest(lat, lng, k) == brute_nearest(points, lat, lng, k)
            assert index.nearest(lat, lng, k, accept=every_third) == brute_nearest(
                points, lat, lng, k, accept=every_third
            )
        for radius in (0.0, 0.5, 30.0, 2_000.0):
            assert index.within(lat, lng, radius) == brute_within(points, lat, lng, radius)
            assert index.within(lat, lng, radius, 20, every_third) == brute_within(
                points, lat, lng, radius, 20, every_third
            )


def test_ties_on_one_point_are_broken_by_id() -> None:
    ids = [9, 3, 7, 1, 5, 2**62, 4, 8]
    index = SpatialIndex.bulk_load(ids, [30.0] * len(ids), [104.0] * len(ids))
    assert index.nearest(30.0, 104.0, 3) == [(1, 0.0), (3, 0.0), (4, 0.0)]
    far = haversine_m(30.001, 104.0, 30.0, 104.0)
    assert index.nearest(30.001, 104.0, 2) == [(1, far), (3, far)]
    assert [sid for sid, _ in index.within(30.0, 104.0, 0.0)] == sorted(ids)
    assert index.within(30.0, 104.0, 0.0, limit=2, accept=lambda i: i > 4) == [(5, 0.0), (7, 0.0)]


@pytest.mark.parametrize("delta", [2.0**-24, 2.0**-12, 0.25, 1.5, 40.0])
def test_equidistant_compass_points_in_every_id_order(delta: float) -> None:
    # On the equator, the points delta degrees N, S, E and W of the query have bit-identical
    # haversine distances (dyadic deltas keep the coordinate differences exact), while their
    # chords differ by rounding. The R-tree therefore ranks them in an arbitrary order, and
    # any id among them may be the one it leaves out; an index that trusted the tree's order
    # at the k-th place would get some permutation wrong.
    lng0 = 104.0
    compass = [(delta, lng0), (-delta, lng0), (0.0, lng0 + delta), (0.0, lng0 - delta)]
    assert len({haversine_m(0.0, lng0, *pos) for pos in compass}) == 1
    for order in itertools.permutations([10, 20, 30, 40]):
        points = dict(zip(order, compass, strict=True))
        points[50] = (0.0, lng0 + 1.5 * delta)
        index = load(points)
        for k in (1, 2, 3, 4):
            assert index.nearest(0.0, lng0, k) == brute_nearest(points, 0.0, lng0, k)
        radius = haversine_m(0.0, lng0, delta, lng0)
        assert index.within(0.0, lng0, radius, limit=2) == brute_within(
            points, 0.0, lng0, radius, 2
        )


def test_result_types_are_plain_python() -> None:
    index = SpatialIndex.bulk_load(np.array([5, 6], dtype=np.uint32), [30.0, 30.1], [104.0, 104.0])
    (sid, dist), _ = index.nearest(30.0, 104.0, 2)
    assert type(sid) is int
    assert type(dist) is float
    assert index.position(6) == (30.1, 104.0)
    assert all(type(v) is float for v in index.position(6) or ())


def test_accept_filter_still_returns_k_and_is_asked_once_per_store() -> None:
    points = make_points("cluster", 300, seed=11)
    index = load(points)
    wanted = sorted(points)[::50]  # 6 accepted stores out of 300
    asked: Counter[int] = Counter()

    def accept(store_id: int) -> bool:
        asked[store_id] += 1
        return store_id in wanted

    lat, lng = next(iter(points.values()))
    result = index.nearest(lat, lng, 5, accept=accept)
    assert result == brute_nearest(points, lat, lng, 5, accept=lambda i: i in wanted)
    assert len(result) == 5
    assert max(asked.values()) == 1
    assert index.nearest(lat, lng, 10, accept=accept) == brute_nearest(
        points, lat, lng, 10, accept=lambda i: i in wanted
    )
    assert index.nearest(lat, lng, 3, accept=lambda _: False) == []


def test_accept_runs_without_the_lock_held() -> None:
    # A callback that calls back into the index, or waits on a writer, must not deadlock.
    index = SpatialIndex.bulk_load([1, 2, 3], [30.0, 30.01, 30.02], [104.0] * 3)
    errors: list[BaseException] = []

    def accept(store_id: int) -> bool:
        writer = threading.Thread(target=index.upsert, args=(99, 31.0, 105.0))
        writer.start()
        writer.join(timeout=5)
        return not writer.is_alive() and index.position(store_id) is not None

    def query() -> None:
        try:
            assert [sid for sid, _ in index.nearest(30.0, 104.0, 2, accept=accept)] == [1, 2]
            assert [sid for sid, _ in index.within(30.0, 104.0, 5_000.0, accept=accept)] == [
                1,
                2,
                3,
            ]
        except BaseException as exc:  # re-raised below, in the test's own thread
            errors.append(exc)

    thread = threading.Thread(target=query)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "deadlock: accept ran with the index lock held"
    assert errors == []


def test_empty_index_and_non_positive_counts() -> None:
    empty = SpatialIndex()
    assert len(empty) == 0
    assert empty.nearest(30.0, 104.0, 10) == []
    assert empty.within(30.0, 104.0, 1e7) == []
    assert empty.within(30.0, 104.0, 1e7, limit=3) == []
    assert empty.position(1) is None
    assert not empty.remove(1)
    index = SpatialIndex.bulk_load([1], [30.0], [104.0])
    assert index.nearest(30.0, 104.0, 0) == []
    assert index.nearest(30.0, 104.0, -3) == []
    assert index.within(30.0, 104.0, 10.0, limit=0) == []
    assert index.within(30.0, 104.0, 10.0, limit=-1) == []
    assert SpatialIndex.bulk_load([], [], []).nearest(0.0, 0.0, 1) == []


def test_live_updates_move_insert_and_remove() -> None:
    index = SpatialIndex.bulk_load([1, 2, 3], [30.0, 30.1, 30.2], [104.0] * 3)
    assert 2 in index
    assert 4 not in index
    assert "2" not in index
    assert True not in index
    index.upsert(2, 31.0, 105.0)
    index.upsert(2, 31.0, 105.0)  # same place: nothing to do
    index.upsert(4, 30.0, 104.0)
    assert index.position(2) == (31.0, 105.0)
    assert len(index) == 4
    assert [sid for sid, _ in index.nearest(30.0, 104.0, 4)] == [1, 4, 3, 2]
    assert index.remove(1)
    assert not index.remove(1)
    assert index.position(1) is None
    index.upsert(1, 30.2, 104.0)  # back, reusing a freed slot
    assert [sid for sid, _ in index.nearest(30.0, 104.0, 4)] == [4, 1, 3, 2]
    assert index.within(30.2, 104.0, 0.0) == [(1, 0.0), (3, 0.0)]


def test_compact_keeps_answers_and_folds_pending_updates() -> None:
    points = make_points("cluster", 400, seed=5)
    index = load(points)
    rng = np.random.default_rng(5)
    for sid in list(points)[:150]:
        points[sid] = query_near(points, rng)
        index.upsert(sid, *points[sid])
    for sid in list(points)[150:200]:
        del points[sid]
        assert index.remove(sid)
    for sid in range(1, 40):
        points[sid] = query_near(points, rng)
        index.upsert(sid, *points[sid])
    assert index.pending_compaction > 0
    queries = [query_near(points, rng) for _ in range(10)]
    before = [index.nearest(lat, lng, 25) for lat, lng in queries]
    index.compact()
    assert index.pending_compaction == 0
    assert len(index) == len(points)
    for (lat, lng), answer in zip(queries, before, strict=True):
        assert index.nearest(lat, lng, 25) == answer == brute_nearest(points, lat, lng, 25)
        assert index.within(lat, lng, 500.0) == brute_within(points, lat, lng, 500.0)


@pytest.mark.parametrize(
    ("ids", "lats", "lngs", "message"),
    [
        ([1, 1], [30.0, 31.0], [104.0, 104.0], "duplicate store id 1"),
        ([1, 2], [30.0], [104.0, 104.0], "lats"),
        ([1, 2], [30.0, math.nan], [104.0, 104.0], r"lats\[1\]"),
        ([1, 2], [30.0, 30.0], [104.0, 181.0], r"lngs\[1\]"),
        ([1, -2], [30.0, 30.0], [104.0, 104.0], "store ids"),
        ([1.5, 2.0], [30.0, 30.0], [104.0, 104.0], "ints"),
        (np.array([2**64 - 1], dtype=np.uint64), [30.0], [104.0], "store ids"),
    ],
)
def test_bulk_load_rejects_bad_input(
    ids: object, lats: list[float], lngs: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SpatialIndex.bulk_load(ids, lats, lngs)  # type: ignore[arg-type]


def test_queries_and_writes_reject_bad_input() -> None:
    index = SpatialIndex.bulk_load([1], [30.0], [104.0])
    with pytest.raises(ValueError, match="latitude"):
        index.nearest(91.0, 104.0, 1)
    with pytest.raises(ValueError, match="longitude"):
        index.within(30.0, math.nan, 10.0)
    with pytest.raises(ValueError, match="radius_m"):
        index.within(30.0, 104.0, -1.0)
    with pytest.raises(ValueError, match="radius_m"):
        index.within(30.0, 104.0, math.inf)
    with pytest.raises(ValueError, match="max_distance_m"):
        index.nearest(30.0, 104.0, 1, max_distance_m=-0.5)
    with pytest.raises(ValueError, match="latitude"):
        index.upsert(2, math.inf, 104.0)
    with pytest.raises(ValueError, match="store id"):
        index.upsert(-5, 30.0, 104.0)
    with pytest.raises(ValueError, match="store id"):
        index.upsert(2**63, 30.0, 104.0)
    with pytest.raises(TypeError):
        index.upsert(True, 30.0, 104.0)
    with pytest.raises(TypeError):
        index.nearest(30.0, 104.0, 2.5)  # type: ignore[arg-type]
    assert len(index) == 1
    assert index.position(1) == (30.0, 104.0)
