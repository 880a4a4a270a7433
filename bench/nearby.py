"""Nearest stores from `spatial_index`, against the in-process limit and against PostGIS.

    .venv/bin/python bench/nearby.py                  # chengdu-100k, chengdu-1m, china-1m (minutes)
    .venv/bin/python bench/nearby.py --quick          # chengdu-100k, 2,000 queries, under 60 s
    .venv/bin/python bench/nearby.py --sets chengdu-1m,china-1m --queries 5000

The last line is ``RESULT nearby stores=… build_s=… knn10_p99_us=… … ratio=… target=5 PASS|FAIL``;
its figures are the worst over the data sets run.

Data: stores clustered around Chengdu's business areas (`tianfu.seed.chengdu.AREAS`, their weights
and spreads, 10 % spread thinly over the city, 2 % exact duplicates) at 100k and 1M, and 1M
clustered around 30 Chinese cities (`bench._common.CITIES`, 10 % at four times a city's spread).
Query points are drawn from the same distribution. Everything comes from a seeded numpy Generator.

Measured on the index, single thread, each call timed with perf_counter_ns after 200 untimed
warm-up calls, garbage collector on as in a server, its kNN10, its within-3 km and cKDTree's kNN10
taking turns every 250 queries (a burst of load from another process then hits all three alike;
queries per second is one over the mean latency): `bulk_load` time; memory per store, both as
what tracemalloc sees a second build keep (numpy arrays and Python objects; C++ allocations such
as libspatialindex's nodes are invisible to it) and as the RSS delta around the timed build
(everything; freed heap is handed back with malloc_trim before each reading, or memory freed by
an earlier data set would be reused unseen); `nearest(k=10)` and `within(3000 m, limit=20)`
p50/p99 and queries per second; `upsert` of new ids, `upsert` moving existing ids and `remove`,
p99 over 10,000 operations each.

References, in the same run:

* numpy brute force (`haversine_m_array` over every store) on a sample of the queries: recall is
  the share of queries whose answer equals the scan's exactly (ids in order, ties by id), for
  kNN10 and for within-3 km, and again on the updated index after the upserts and removes.
* scipy `cKDTree` on 3D unit vectors (chord order is great-circle order, so its answers are
  exact), queried one point at a time with the vectors precomputed: the in-process limit, what
  compiled code with no per-query Python work but the call itself does.
* PostGIS over loopback, one connection, prepared
  ``SELECT id FROM t ORDER BY geom <-> point LIMIT 10`` on a GiST index, table and index
  prewarmed into shared buffers (a server in use has them there): what a user would do
  without the index. ``<->`` on geometry(Point, 4326) is a distance in degrees, so its order is
  not the order in metres (a degree of longitude is 0.86 of a degree of latitude in Chengdu):
  it is a latency reference only, and the table shows how often its ten equal the exact ten.

Targets (the issue's, at 1M stores, checked on every set run): recall 1.0; kNN10 p99 at most 5x
cKDTree's p99 (ratio=) and at least 10x better than PostGIS's; build under 5 s; insert and delete
p99 under 100 µs. Moves are reported, not gated: the issue sets no target for them. Another
process on the machine moves p99s by tens of per cent; run it twice before believing a FAIL.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from psycopg.rows import TupleRow
from scipy.spatial import cKDTree  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._common import (
    Answer,
    FloatArray,
    IntArray,
    clustered_points,
    exact,
    gapped_ids,
    p50_p99_us,
    per_second,
    print_table,
    rss_bytes,
    throwaway_database,
    time_interleaved,
    unit_vectors,
)
from spatial_index import SpatialIndex, haversine_m_array

SETS = {"chengdu-100k": ("chengdu", 100_000), "chengdu-1m": ("chengdu", 1_000_000),
        "china-1m": ("china", 1_000_000)}  # fmt: skip
K, RADIUS_M, WITHIN_LIMIT = 10, 3000.0, 20
TARGET_KDTREE_RATIO, TARGET_POSTGIS_SPEEDUP, TARGET_BUILD_S, TARGET_UPDATE_P99_US = 5, 10, 5, 100
KNN_SQL = "SELECT id FROM t ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 10"


@dataclass
class Plan:
    queries: int
    checked: int  # queries compared with the brute-force scan
    checked_after_updates: int
    postgis: int
    updates: int


@dataclass
class Figures:
    name: str
    stores: int
    build_s: float = 0.0
    rss_per_store: float = 0.0
    traced_per_store: float = 0.0
    knn: tuple[float, float] = (0.0, 0.0)
    knn_qps: float = 0.0
    within: tuple[float, float] = (0.0, 0.0)
    within_qps: float = 0.0
    insert_p99: float = 0.0
    move_p99: float = 0.0
    delete_p99: float = 0.0
    recall: dict[str, tuple[int, int]] = field(default_factory=dict)  # check -> (equal, of)
    max_distance_error_m: float = 0.0
    kd_build_s: float = 0.0
    kd_knn: tuple[float, float] = (0.0, 0.0)
    pg_load_s: float = 0.0
    pg_index_s: float = 0.0
    pg_knn: tuple[float, float] = (0.0, 0.0)
    pg_agreement: tuple[int, int] = (0, 0)

    @property
    def kdtree_ratio(self) -> float:
        return self.knn[1] / self.kd_knn[1]

    @property
    def postgis_speedup(self) -> float:
        return self.pg_knn[1] / self.knn[1]

    @property
    def worst_recall(self) -> float:
        return min(equal / total for equal, total in self.recall.values())


def compare(got: Answer, want: Answer, figures: Figures, check: str) -> None:
    equal = [i for i, _ in got] == [i for i, _ in want]
    if equal and want:
        error = max(abs(g - w) for (_, g), (_, w) in zip(got, want, strict=True))
        figures.max_distance_error_m = max(figures.max_distance_error_m, error)
    hits, total = figures.recall.get(check, (0, 0))
    figures.recall[check] = (hits + equal, total + 1)
    if not equal and hits == total:  # the first miss of a check, enough to start looking
        print(f"MISMATCH {figures.name} {check}: index {got[:4]}… exact {want[:4]}…")


def brute_force_check(
    index: SpatialIndex,
    points: tuple[IntArray, FloatArray, FloatArray],
    queries: tuple[list[float], list[float]],
    figures: Figures,
    suffix: str = "",
) -> list[Answer]:
    ids, lats, lngs = points
    answers = []
    for lat, lng in zip(*queries, strict=True):
        d = haversine_m_array(lat, lng, lats, lngs)
        answers.append(exact(d, ids, K))
        compare(index.nearest(lat, lng, K), answers[-1], figures, "knn10" + suffix)
        want = exact(d, ids, WITHIN_LIMIT, RADIUS_M)
        got = index.within(lat, lng, RADIUS_M, limit=WITHIN_LIMIT)
        compare(got, want, figures, "within3km" + suffix)
    return answers


def build_index(ids: IntArray, lats: FloatArray, lngs: FloatArray, f: Figures) -> SpatialIndex:
    gc.collect()
    rss_before, started = rss_bytes(), time.perf_counter()
    index = SpatialIndex.bulk_load(ids, lats, lngs)
    f.build_s = time.perf_counter() - started
    f.rss_per_store = (rss_bytes() - rss_before) / len(ids)
    # A second build under tracemalloc (which slows allocation, so it is not the timed one), from
    # copies whose only owner is then the index: what the index keeps, its inputs included.
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    copied_ids, copied_lats, copied_lngs = ids.copy(), lats.copy(), lngs.copy()
    traced = SpatialIndex.bulk_load(copied_ids, copied_lats, copied_lngs)
    del copied_ids, copied_lats, copied_lngs
    gc.collect()
    f.traced_per_store = (tracemalloc.get_traced_memory()[0] - baseline) / len(ids)
    tracemalloc.stop()
    del traced
    return index


def time_in_process(
    index: SpatialIndex, lats: FloatArray, lngs: FloatArray, q_lats: FloatArray,
    q_lngs: FloatArray, f: Figures,
) -> None:  # fmt: skip
    """kNN10 and within-3 km on the index and kNN10 on cKDTree, taking turns (block by block)."""
    started = time.perf_counter()
    tree = cKDTree(unit_vectors(lats, lngs))
    f.kd_build_s = time.perf_counter() - started
    points = list(zip(q_lats.tolist(), q_lngs.tolist(), strict=True))  # floats, as callers pass
    # cKDTree gets its vectors precomputed: the limit is the query alone.
    vectors = [(row,) for row in unit_vectors(q_lats, q_lngs)]
    knn, kd_knn, within = time_interleaved([
        (lambda la, ln: index.nearest(la, ln, K), points),
        (lambda xyz: tree.query(xyz, k=K), vectors),
        (lambda la, ln: index.within(la, ln, RADIUS_M, limit=WITHIN_LIMIT), points),
    ])  # fmt: skip
    f.knn, f.kd_knn, f.within = p50_p99_us(knn), p50_p99_us(kd_knn), p50_p99_us(within)
    f.knn_qps, f.within_qps = per_second(knn), per_second(within)


def postgis_reference(
    points: tuple[IntArray, FloatArray, FloatArray], q_lats: list[float], q_lngs: list[float],
    f: Figures,
) -> list[list[int]]:  # fmt: skip
    with throwaway_database("bench_nearby") as url, psycopg.connect(url, autocommit=True) as conn:
        return _postgis_in(conn, points, q_lats, q_lngs, f)


def _postgis_in(
    conn: psycopg.Connection[TupleRow],
    points: tuple[IntArray, FloatArray, FloatArray],
    q_lats: list[float],
    q_lngs: list[float],
    f: Figures,
) -> list[list[int]]:
    ids, lats, lngs = (a.tolist() for a in points)
    conn.execute("CREATE EXTENSION postgis")
    conn.execute("CREATE TABLE t (id bigint NOT NULL, geom geometry(Point, 4326) NOT NULL)")
    started = time.perf_counter()
    with conn.cursor() as cur, cur.copy("COPY t (id, geom) FROM STDIN") as copy:
        for at in range(0, len(ids), 50_000):  # repr: the shortest text that parses back exactly
            rows = zip(*(a[at : at + 50_000] for a in (ids, lngs, lats)), strict=True)
            copy.write("".join(f"{i}\tSRID=4326;POINT({x!r} {y!r})\n" for i, x, y in rows))
    f.pg_load_s = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute("CREATE INDEX t_geom ON t USING gist (geom)")
    conn.execute("VACUUM ANALYZE t")
    f.pg_index_s = time.perf_counter() - started
    try:  # a server in use has its table and index in shared buffers: compare with that
        conn.execute("CREATE EXTENSION pg_prewarm")
        conn.execute("SELECT pg_prewarm('t'), pg_prewarm('t_geom')")
    except psycopg.Error as error:
        print(f"NOTE {f.name}: no pg_prewarm ({error}); PostGIS warms up on 200 queries only")
    plan = conn.execute("EXPLAIN " + KNN_SQL, (104.07, 30.66)).fetchall()
    if "Index Scan using t_geom" not in str(plan):
        print(f"WARNING {f.name}: PostGIS plan does not use the GiST index: {plan}")
    answers: dict[tuple[float, float], list[int]] = {}  # warm-ups repeat some queries
    with conn.cursor() as cur:

        def query(lat: float, lng: float) -> None:
            cur.execute(KNN_SQL, (lng, lat), prepare=True)
            answers[lat, lng] = [row[0] for row in cur.fetchall()]

        [latencies] = time_interleaved([(query, list(zip(q_lats, q_lngs, strict=True)))])
    f.pg_knn = p50_p99_us(latencies)
    return [answers[point] for point in zip(q_lats, q_lngs, strict=True)]


def measure_updates(
    index: SpatialIndex,
    region: str,
    points: tuple[IntArray, FloatArray, FloatArray],
    ops: int,
    rng: np.random.Generator,
    f: Figures,
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Inserts, moves and removes ``ops`` stores each; returns the live stores afterwards."""
    ids, lats, lngs = (a.copy() for a in points)
    new_ids = ids.max() + 1 + np.arange(ops, dtype=np.int64)
    new_lats, new_lngs = clustered_points(rng, ops, region, duplicates=False)
    moved = rng.choice(len(ids), ops, replace=False)
    lats[moved], lngs[moved] = clustered_points(rng, ops, region, duplicates=False)
    removed = np.concatenate([new_ids[: ops // 2], rng.choice(ids, ops - ops // 2, replace=False)])
    clock, timings = time.perf_counter_ns, []
    inserts = zip(new_ids.tolist(), new_lats.tolist(), new_lngs.tolist(), strict=True)
    moves = zip(ids[moved].tolist(), lats[moved].tolist(), lngs[moved].tolist(), strict=True)
    for batch in (inserts, moves):
        latencies = []
        for store_id, lat, lng in batch:
            t0 = clock()
            index.upsert(store_id, lat, lng)
            latencies.append(clock() - t0)
        timings.append(p50_p99_us(latencies)[1])
    f.insert_p99, f.move_p99 = timings
    latencies, refused = [], 0
    for store_id in removed.tolist():
        t0 = clock()
        found = index.remove(store_id)
        latencies.append(clock() - t0)
        refused += not found
    f.delete_p99 = p50_p99_us(latencies)[1]
    all_ids = np.concatenate([ids, new_ids])
    alive = ~np.isin(all_ids, removed)
    problems = [f"{refused} removes returned False"] if refused else []
    if index.remove(int(removed[0])):
        problems.append("removing a removed id returned True")
    if len(index) != int(alive.sum()):
        problems.append(f"len(index) == {len(index)}, expected {int(alive.sum())}")
    for problem in problems:
        print(f"MISMATCH {f.name} updates: {problem}")
    f.recall["len() and remove() results"] = (0 if problems else 1, 1)
    return (
        all_ids[alive],
        np.concatenate([lats, new_lats])[alive],
        np.concatenate([lngs, new_lngs])[alive],
    )


def run_set(name: str, plan: Plan, seed: int) -> Figures:
    region, stores = SETS[name]
    number = list(SETS).index(name)
    rng = np.random.default_rng([seed, number])
    lats, lngs = clustered_points(rng, stores, region)
    points = (gapped_ids(rng, stores), lats, lngs)
    q_lats_a, q_lngs_a = clustered_points(
        np.random.default_rng([seed, number, 1]), plan.queries, region, duplicates=False
    )
    q_lats, q_lngs = q_lats_a.tolist(), q_lngs_a.tolist()  # Python floats, as a caller passes
    f = Figures(name, stores)
    print(f"{name}: {stores:,} stores, {plan.queries:,} queries", flush=True)
    index = build_index(*points, f)
    time_in_process(index, lats, lngs, q_lats_a, q_lngs_a, f)
    n = plan.checked
    exact_answers = brute_force_check(index, points, (q_lats[:n], q_lngs[:n]), f)
    pg_answers = postgis_reference(points, q_lats[: plan.postgis], q_lngs[: plan.postgis], f)
    both = min(len(exact_answers), len(pg_answers))
    agree = sum(
        sorted(pg) == sorted(i for i, _ in want)
        for pg, want in zip(pg_answers[:both], exact_answers[:both], strict=True)
    )
    f.pg_agreement = (agree, both)
    updates_rng = np.random.default_rng([seed, number, 2])
    live = measure_updates(index, region, points, plan.updates, updates_rng, f)
    n = plan.checked_after_updates
    brute_force_check(index, live, (q_lats[:n], q_lngs[:n]), f, " after updates")
    report(f)
    return f


def report(f: Figures) -> None:
    def us(pair: tuple[float, float]) -> str:
        return f"{pair[0]:8.1f} / {pair[1]:8.1f}"

    rows = [
        ("build (s)", f"{f.build_s:.2f}", f"{f.kd_build_s:.2f}",
         f"{f.pg_load_s:.1f} COPY + {f.pg_index_s:.1f} GiST"),
        ("memory (B/store)", f"{f.traced_per_store:.0f} traced, {f.rss_per_store:.0f} RSS", "", ""),
        ("kNN10 p50 / p99 (µs)", us(f.knn), us(f.kd_knn), us(f.pg_knn)),
        ("kNN10 queries/s", f"{f.knn_qps:,.0f}", "", ""),
        ("within 3 km, 20: p50 / p99 (µs)", us(f.within), "", ""),
        ("within 3 km queries/s", f"{f.within_qps:,.0f}", "", ""),
        ("upsert new / move p99 (µs)", f"{f.insert_p99:.1f} / {f.move_p99:.1f}", "", ""),
        ("remove p99 (µs)", f"{f.delete_p99:.1f}", "", ""),
        *((f"equal to the scan: {check}", f"{hits}/{total}", "", "")
          for check, (hits, total) in f.recall.items()),
        ("largest distance difference (m)", f"{f.max_distance_error_m:.2g}", "", ""),
        ("ten ids as exact kNN10", "", "", "{}/{}".format(*f.pg_agreement)),
    ]  # fmt: skip
    print_table(f"{f.name} ({f.stores:,} stores)", [("", "index", "cKDTree", "PostGIS"), *rows])


def checks(f: Figures) -> list[bool]:
    results = [
        (f"recall {f.worst_recall:.4f} == 1", f.worst_recall == 1.0),
        (f"kNN10 p99 / cKDTree p99 {f.kdtree_ratio:.2f} <= {TARGET_KDTREE_RATIO}",
         f.kdtree_ratio <= TARGET_KDTREE_RATIO),
        (f"PostGIS p99 / kNN10 p99 {f.postgis_speedup:.1f} >= {TARGET_POSTGIS_SPEEDUP}",
         f.postgis_speedup >= TARGET_POSTGIS_SPEEDUP),
        (f"build {f.build_s:.2f} s < {TARGET_BUILD_S} s", f.build_s < TARGET_BUILD_S),
        (f"insert p99 {f.insert_p99:.1f} µs < {TARGET_UPDATE_P99_US} µs",
         f.insert_p99 < TARGET_UPDATE_P99_US),
        (f"delete p99 {f.delete_p99:.1f} µs < {TARGET_UPDATE_P99_US} µs",
         f.delete_p99 < TARGET_UPDATE_P99_US),
    ]  # fmt: skip
    for text, ok in results:
        print(f"CHECK {f.name} {text}: {'ok' if ok else 'MISSED'}")
    return [ok for _, ok in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="chengdu-100k, 2,000 queries")
    parser.add_argument("--sets", help=f"comma-separated, of {', '.join(SETS)} (default all)")
    parser.add_argument("--queries", type=int, help="query points per set (default 10,000)")
    parser.add_argument("--seed", type=int, default=20261128)
    args = parser.parse_args()
    names = args.sets.split(",") if args.sets else ["chengdu-100k"] if args.quick else list(SETS)
    if unknown := set(names) - set(SETS):
        parser.error(f"unknown sets {sorted(unknown)}; known: {', '.join(SETS)}")
    queries = args.queries or (2000 if args.quick else 10_000)
    # Quick compares every query with the scan (2,000 x 3 ms at 100k); the full run 1,000 a set,
    # as a scan of 1M stores takes about 30 ms.
    plan = Plan(
        queries,
        min(queries, 2000 if args.quick else 1000),
        min(queries, 200),
        min(queries, 1000 if args.quick else 2000),
        10_000,
    )
    figures = [run_set(name, plan, args.seed) for name in names]
    outcomes = [ok for f in figures for ok in checks(f)]  # every CHECK line, then the verdict
    verdict = "PASS" if all(outcomes) else "FAIL"
    largest = max(f.stores for f in figures)
    print(
        f"RESULT nearby stores={largest} build_s={max(f.build_s for f in figures):.2f} "
        f"knn10_p99_us={max(f.knn[1] for f in figures):.1f} "
        f"within3km_p99_us={max(f.within[1] for f in figures):.1f} "
        f"qps={min(f.knn_qps for f in figures):.0f} "
        f"insert_p99_us={max(f.insert_p99 for f in figures):.1f} "
        f"delete_p99_us={max(f.delete_p99 for f in figures):.1f} "
        f"recall={min(f.worst_recall for f in figures):.4f} "
        f"kdtree_ratio={max(f.kdtree_ratio for f in figures):.2f} "
        f"postgis_speedup={min(f.postgis_speedup for f in figures):.1f} "
        f"ratio={max(f.kdtree_ratio for f in figures):.2f} target={TARGET_KDTREE_RATIO} {verdict}"
    )


if __name__ == "__main__":
    main()
