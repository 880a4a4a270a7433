"""Helpers shared by the benches: seeded store point sets, latency timing and memory readings."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from tianfu.seed import chengdu

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Answer = list[tuple[int, float]]  # (store id, metres), nearest first

POSTGRES_ADMIN_URL = os.environ.get(
    "TIANFU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
METRES_PER_DEGREE = 111_320.0
SPARSE_SHARE = 0.10  # stores outside any cluster, as in the demo seed
DUPLICATE_SHARE = 0.02  # stores sharing another store's exact point (malls, re-registered shops)

# (name, lat, lng, weight, sigma_m): approximate GCJ-02 city centres (good to a kilometre, which
# is all a synthetic set needs), weights roughly by how much retail each city has, spreads by
# the size of its built-up area.
CITIES: tuple[tuple[str, float, float, float, float], ...] = (
    ("Beijing", 39.9087, 116.3975, 10.0, 12_000),
    ("Shanghai", 31.2304, 121.4737, 10.0, 12_000),
    ("Guangzhou", 23.1291, 113.2644, 8.0, 10_000),
    ("Shenzhen", 22.5431, 114.0579, 8.0, 9_000),
    ("Chengdu", 30.6574, 104.0661, 7.0, 9_000),
    ("Chongqing", 29.5630, 106.5516, 7.0, 10_000),
    ("Wuhan", 30.5928, 114.3055, 6.0, 9_000),
    ("Xi'an", 34.3416, 108.9398, 5.0, 8_000),
    ("Hangzhou", 30.2741, 120.1551, 6.0, 8_000),
    ("Nanjing", 32.0603, 118.7969, 5.0, 8_000),
    ("Tianjin", 39.1256, 117.1902, 5.0, 9_000),
    ("Suzhou", 31.2990, 120.5853, 4.0, 8_000),
    ("Changsha", 28.2282, 112.9388, 4.0, 7_000),
    ("Zhengzhou", 34.7466, 113.6254, 4.0, 7_000),
    ("Shenyang", 41.8057, 123.4315, 3.0, 7_000),
    ("Qingdao", 36.0671, 120.3826, 3.0, 7_000),
    ("Dalian", 38.9140, 121.6147, 2.5, 6_000),
    ("Xiamen", 24.4798, 118.0894, 2.5, 5_000),
    ("Jinan", 36.6512, 117.1201, 3.0, 6_000),
    ("Harbin", 45.8038, 126.5350, 3.0, 7_000),
    ("Kunming", 25.0389, 102.7183, 3.0, 6_000),
    ("Fuzhou", 26.0745, 119.2965, 2.5, 6_000),
    ("Hefei", 31.8206, 117.2272, 3.0, 6_000),
    ("Nanning", 22.8170, 108.3665, 2.0, 5_000),
    ("Guiyang", 26.6470, 106.6302, 2.0, 5_000),
    ("Lanzhou", 36.0611, 103.8343, 1.5, 5_000),
    ("Urumqi", 43.8256, 87.6168, 1.5, 5_000),
    ("Haikou", 20.0440, 110.1999, 1.0, 4_000),
    ("Sanya", 18.2528, 109.5119, 0.7, 3_000),
    ("Lhasa", 29.6500, 91.1000, 0.5, 3_000),
)


@dataclass(frozen=True, slots=True)
class Centres:
    lat: FloatArray
    lng: FloatArray
    sigma_m: FloatArray
    weight: FloatArray


def chengdu_centres() -> Centres:
    areas = chengdu.AREAS
    return Centres(
        lat=np.array([a.lat for a in areas]),
        lng=np.array([a.lng for a in areas]),
        sigma_m=np.array([a.sigma_m for a in areas]),
        weight=np.array([a.weight for a in areas]),
    )


def china_centres() -> Centres:
    _, lat, lng, weight, sigma_m = (np.array(column) for column in zip(*CITIES, strict=True))
    return Centres(lat=lat, lng=lng, sigma_m=sigma_m, weight=weight)


def _gaussian_around(
    rng: np.random.Generator, centres: Centres, n: int, spread: float
) -> tuple[FloatArray, FloatArray]:
    which = rng.choice(len(centres.lat), size=n, p=centres.weight / centres.weight.sum())
    # Cut at three sigma, as the demo seed does, so no outlier lands in the next district.
    north, east = np.clip(rng.standard_normal((2, n)), -3.0, 3.0) * centres.sigma_m[which] * spread
    lat = centres.lat[which] + north / METRES_PER_DEGREE
    lng = centres.lng[which] + east / (METRES_PER_DEGREE * np.cos(np.radians(lat)))
    return lat, lng


def clustered_points(
    rng: np.random.Generator, n: int, region: str, *, duplicates: bool = True
) -> tuple[FloatArray, FloatArray]:
    """``n`` points of ``region`` ("chengdu" or "china"), shuffled, exact duplicates included."""
    n_sparse = int(n * SPARSE_SHARE)
    n_dup = int(n * DUPLICATE_SHARE) if duplicates else 0
    if region == "chengdu":
        centres = chengdu_centres()
        lat, lng = _gaussian_around(rng, centres, n - n_sparse - n_dup, 1.0)
        sparse_lat = rng.uniform(*chengdu.SPARSE_LAT, n_sparse)
        sparse_lng = rng.uniform(*chengdu.SPARSE_LNG, n_sparse)
    elif region == "china":
        # Suburbs and satellite towns: the same cities, four times the spread.
        centres = china_centres()
        lat, lng = _gaussian_around(rng, centres, n - n_sparse - n_dup, 1.0)
        sparse_lat, sparse_lng = _gaussian_around(rng, centres, n_sparse, 4.0)
    else:
        raise ValueError(f"unknown region {region!r}")
    lat, lng = np.concatenate([lat, sparse_lat]), np.concatenate([lng, sparse_lng])
    copied = rng.integers(0, len(lat), n_dup)
    lat, lng = np.concatenate([lat, lat[copied]]), np.concatenate([lng, lng[copied]])
    if region == "chengdu":
        lat = np.clip(lat, chengdu.LAT_MIN, chengdu.LAT_MAX)
        lng = np.clip(lng, chengdu.LNG_MIN, chengdu.LNG_MAX)
    # Shuffled so duplicates and sparse points get ids spread over the whole range.
    order = rng.permutation(n)
    return lat[order], lng[order]


def exact(d: FloatArray, ids: IntArray, k: int, radius: float | None = None) -> Answer:
    """The k smallest of d by (distance, id), within radius if given: the answer to match."""
    candidates = np.flatnonzero(d <= radius) if radius is not None else None
    pool = d if candidates is None else d[candidates]
    if len(pool) > k:  # keep every tie of the k-th distance so ids can break them
        kth = np.partition(pool, k - 1)[k - 1]
        kept = np.flatnonzero(pool <= kth)
        candidates = kept if candidates is None else candidates[kept]
    elif candidates is None:
        candidates = np.arange(len(d))
    rows = candidates[np.lexsort((ids[candidates], d[candidates]))][:k]
    return list(zip(ids[rows].tolist(), d[rows].tolist(), strict=True))


def unit_vectors(lat: FloatArray, lng: FloatArray) -> FloatArray:
    """Points on the unit sphere: chord order is great-circle order, so a 3-D tree is exact."""
    la, ln = np.radians(lat), np.radians(lng)
    return np.column_stack([np.cos(la) * np.cos(ln), np.cos(la) * np.sin(ln), np.sin(la)])


def gapped_ids(rng: np.random.Generator, n: int) -> IntArray:
    """Increasing ids with gaps, like a table after deletes: an index may not assume ids == rows."""
    return np.cumsum(rng.integers(1, 4, n), dtype=np.int64)


Timed = tuple[Callable[..., object], Sequence[tuple[Any, ...]]]  # a call and its arguments


def time_interleaved(
    timed: Sequence[Timed], block: int = 250, warmup: int = 200, rewarm: int = 20
) -> list[list[int]]:
    """Per-call latencies in ns of each call over its arguments, the calls taking turns.

    Each call runs over ``block`` arguments, then the next call over the same ones, and so on:
    a burst of load from another process (seconds, on a shared 2-core machine) then slows
    every call alike and their ratios hold up. Turns are blocks rather than single calls
    because alternating call by call hands each call the other's cache misses and garbage
    collections (measured: cKDTree's p50 rose by 40 % and its p99 doubled). The first
    ``warmup`` arguments run untimed first (caches, lazy setup, prepared statements), so
    calls must be repeatable: some arguments are passed more than once.
    """
    clock = time.perf_counter_ns
    latencies: list[list[int]] = [[] for _ in timed]
    for call, arguments in timed:
        for args in arguments[:warmup]:
            call(*args)
    for start in range(0, max(len(arguments) for _, arguments in timed), block):
        for (call, arguments), out in zip(timed, latencies, strict=True):
            # The previous block's last calls again, untimed: a turn's first calls start cold,
            # and a few cold calls a turn are over 1 % of all calls, i.e. they would set the
            # p99 (cKDTree at 1M: 78 µs that way, 39 µs run alone, 38-48 µs re-warmed).
            for args in arguments[max(0, start - rewarm) : start]:
                call(*args)
            for args in arguments[start : start + block]:
                t0 = clock()
                call(*args)
                out.append(clock() - t0)
    return latencies


def p50_p99_us(latencies_ns: Sequence[int]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(latencies_ns, dtype=np.float64), [50, 99]) / 1000
    return float(p50), float(p99)


def per_second(latencies_ns: Sequence[int]) -> float:
    """Calls per second back to back on one thread: one over the mean latency."""
    return len(latencies_ns) * 1e9 / sum(latencies_ns)


def rss_bytes() -> int:
    """Resident set size now (Linux), unlike ru_maxrss which only ever grows.

    Freed heap pages are handed back first (glibc's malloc_trim): otherwise memory a previous
    data set freed is reused without showing, and the next set's delta reads far too low.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def print_table(title: str, rows: Sequence[Sequence[str]]) -> None:
    """Plain aligned columns: the output is read in CI logs and pasted into issues."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    print(f"\n{title}")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(flush=True)


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A fresh database with a random name on the test server; dropped after, error or not."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield psycopg.conninfo.make_conninfo(POSTGRES_ADMIN_URL, dbname=name)
        finally:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))
