"""The demo data set: merchants and stores around Chengdu, generated from a seed
(`tianfu.seed.write` puts them in the database).

Store ``i`` is generated from ``(seed, i)`` alone, so a database seeded with 1,000 stores and then
with 2,000 holds the same stores as one seeded with 2,000 at once. Stores are drawn in blocks of
``BLOCK_SIZE`` from one generator per block (seeding a generator per store would cost about a
fifth of the generation time), so growing a data set regenerates at most one partial block.

Demo merchants are ``demo-m-c007`` (chain brand 7) or ``demo-m-0000123`` (the single-store
merchant of store 123), demo stores ``demo-s-0000123``: the writer uses these refs to add only
what is missing.
"""

from __future__ import annotations

import json
import math
import random
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Any, Generic, TypeVar, cast

from tianfu.seed import chengdu
from tianfu.seed.chengdu import AREAS, CATEGORIES, Area, CategoryProfile, HoursPattern, Street

DEFAULT_STORES = 5000
DEFAULT_SEED = 20261128
MERCHANT_REF_PREFIX = "demo-m-"
STORE_REF_PREFIX = "demo-s-"
MAX_STORES = 9_999_999  # seven digits in the store refs

BLOCK_SIZE = 1000
# A few mall sites per block that several of the block's stores share: exact duplicate
# coordinates at every scale, and certainly among the first few hundred stores.
MALL_SITES_PER_BLOCK = 8

CHAIN_SHARE = 0.35
SPARSE_SHARE = 0.10
MALL_SHARE = 0.05
HOURS_VARIATION = 0.3
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_METRES_PER_DEGREE = 111_320.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DemoChain:
    ref: str
    name: str
    profile: CategoryProfile
    weight: float
    status: str
    hours: HoursPattern


@dataclass(frozen=True, slots=True)
class DemoStore:
    index: int
    ref: str
    merchant_ref: str
    merchant_name: str
    merchant_status: str
    category: str
    name: str
    district: str
    address: str
    phone: str
    lat: float
    lng: float
    # Serialised once per distinct schedule (a few hundred) rather than once per store.
    opening_hours_json: str
    status: str

    @property
    def opening_hours(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(self.opening_hours_json))


@dataclass(frozen=True, slots=True)
class _Site:
    area: Area
    street: Street
    number: int
    lat: float
    lng: float
    mall: str | None = None
    sparse: bool = False


class _Table(Generic[T]):
    """Weighted choice by bisection: `random.choices` costs a microsecond more per draw."""

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        self.items = [item for item, _ in pairs]
        self.cumulative = list(accumulate(weight for _, weight in pairs))

    def pick(self, rng: random.Random) -> T:
        position = rng.random() * self.cumulative[-1]
        return self.items[bisect_right(self.cumulative, position, 0, len(self.items) - 1)]


def _one(rng: random.Random, items: Sequence[T]) -> T:
    return items[int(rng.random() * len(items))]


_AREAS = _Table([(area, area.weight) for area in AREAS])
_CATEGORIES = _Table([(profile, profile.weight) for profile in CATEGORIES])
_HOURS = {p.code: _Table([(hours, hours.weight) for hours in p.hours]) for p in CATEGORIES}
_MERCHANT_STATUS = _Table(chengdu.MERCHANT_STATUSES)
_STORE_STATUS = _Table(chengdu.STORE_STATUSES)
_FLOOR = _Table(chengdu.MALL_FLOORS)


# --- where ------------------------------------------------------------------------------------


def _in_city(lat: float, lng: float) -> tuple[float, float]:
    # Six decimals (about 0.1 m) is what a map pin carries.
    lat = round(max(chengdu.LAT_MIN, min(chengdu.LAT_MAX, lat)), 6)
    return lat, round(max(chengdu.LNG_MIN, min(chengdu.LNG_MAX, lng)), 6)


def _around(rng: random.Random, area: Area, sigma_m: float) -> tuple[float, float]:
    # Gaussian in metres, cut at three sigma so no outlier lands in the next district over.
    north = max(-3.0, min(3.0, rng.gauss(0.0, 1.0))) * sigma_m / _METRES_PER_DEGREE
    east = max(-3.0, min(3.0, rng.gauss(0.0, 1.0))) * sigma_m / _METRES_PER_DEGREE
    return _in_city(area.lat + north, area.lng + east / math.cos(math.radians(area.lat)))


def _nearest_area(lat: float, lng: float) -> Area:
    scale = math.cos(math.radians(lat))
    return min(AREAS, key=lambda a: (a.lat - lat) ** 2 + ((a.lng - lng) * scale) ** 2)


def _site(rng: random.Random, *, mall: bool) -> _Site:
    number = 1 + int(rng.random() * (99 if rng.random() < 0.6 else 399))
    if not mall and rng.random() < SPARSE_SHARE:
        lat, lng = _in_city(rng.uniform(*chengdu.SPARSE_LAT), rng.uniform(*chengdu.SPARSE_LNG))
        area = _nearest_area(lat, lng)
        return _Site(area, _one(rng, area.streets), number, lat, lng, sparse=True)
    area = _AREAS.pick(rng)
    # Malls sit nearer the heart of their area than the average shop.
    lat, lng = _around(rng, area, area.sigma_m * (0.6 if mall else 1.0))
    return _Site(
        area, _one(rng, area.streets), number, lat, lng, _one(rng, area.malls) if mall else None
    )


def _address(rng: random.Random, site: _Site) -> str:
    street = f"成都市{site.street.district}{site.street.name}{site.number}号"
    if site.mall is not None:
        return f"{street}{site.mall}{_FLOOR.pick(rng)}"
    if rng.random() < 0.08:
        return f"{street}附{1 + int(rng.random() * 12)}号"
    return street


def _branch(rng: random.Random, site: _Site) -> str:
    if site.mall is not None and rng.random() < 0.6:
        return site.mall
    if site.sparse or rng.random() < 0.4:
        return site.street.name
    return _one(rng, site.area.names)


# --- who --------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def demo_chains(seed: int) -> tuple[DemoChain, ...]:
    """The chain brands of a seed: about sixty, each a merchant with many stores."""
    # Reproducible demo data, not secrets: a seeded PRNG is the point.
    rng = random.Random(f"{seed}:chains")  # noqa: S311
    chains: list[DemoChain] = []
    used: set[str] = set()
    for profile in CATEGORIES:
        # A head of its own per brand: "蓉e便利" beside "蓉e便利店" would look like one brand.
        heads = rng.sample(
            [head for head in profile.brand_heads if head not in used], profile.chains
        )
        used.update(heads)
        for head in heads:
            tail, core = (_one(rng, words) for words in (profile.brand_tails, profile.brand_cores))
            name = (head + tail + core).replace(chengdu.EMPTY_PART, "")
            ref = f"{MERCHANT_REF_PREFIX}c{len(chains):03d}"
            # Some brands are everywhere, others have a handful of shops.
            weight = profile.chain_size * rng.uniform(0.3, 1.7)
            status, hours = _MERCHANT_STATUS.pick(rng), _HOURS[profile.code].pick(rng)
            chains.append(DemoChain(ref, name, profile, weight, status, hours))
    return tuple(chains)


@lru_cache(maxsize=8)
def _chain_table(seed: int) -> _Table[DemoChain]:
    return _Table([(chain, chain.weight) for chain in demo_chains(seed)])


def _shop_name(rng: random.Random, profile: CategoryProfile, site: _Site) -> str:
    # "玉林老妈兔头": sometimes the neighbourhood, then who or what, then what they sell.
    place = _one(rng, site.area.names) if rng.random() < 0.3 and not site.sparse else ""
    if profile.family and rng.random() < 0.4:
        head = _one(rng, chengdu.FAMILY_FORMS).format(_one(rng, chengdu.SURNAMES))
    else:
        head = _one(rng, profile.heads)
    return f"{place}{head}{_one(rng, profile.cores)}"


def _phone(rng: random.Random, landline_share: float) -> str:
    if rng.random() < landline_share:
        return f"028-8{int(rng.random() * 10**7):07d}"
    return f"1{_one(rng, '358')}{int(rng.random() * 10**9):09d}"


# --- when -------------------------------------------------------------------------------------


def _hhmm(text: str, shift: int, *, closing: bool) -> str:
    if text == "24:00" or shift == 0:
        return text
    minutes = (int(text[:2]) * 60 + int(text[3:]) + shift) % 1440
    if closing and minutes == 0:
        return "24:00"  # a shift may not close at 00:00; 24:00 says midnight
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@lru_cache(maxsize=1024)
def _hours_json(pattern: HoursPattern, open_shift: int, close_shift: int) -> str:
    def day(late: int) -> list[list[str]]:
        return [
            [_hhmm(start, open_shift, closing=False), _hhmm(end, close_shift + late, closing=True)]
            for start, end in pattern.shifts
        ]

    usual, late = day(0), day(60 if pattern.late_weekend else 0)
    weekly = {
        name: [] if name in pattern.closed_days else late if name in ("fri", "sat") else usual
        for name in WEEKDAYS
    }
    return json.dumps({"weekly": weekly, "closed_dates": []})


def _opening_hours(rng: random.Random, pattern: HoursPattern) -> str:
    if pattern.shifts == chengdu.ALL_DAY or rng.random() >= HOURS_VARIATION:
        return _hours_json(pattern, 0, 0)
    # Half an hour either way keeps split shifts apart and overnight shifts short of the next
    # morning: every pattern leaves at least two hours between them.
    return _hours_json(pattern, _one(rng, (-30, 0, 30)), _one(rng, (-30, 0, 30)))


# --- stores -----------------------------------------------------------------------------------


def _draw_store(rng: random.Random, index: int, seed: int, malls: list[_Site]) -> DemoStore:
    site = _one(rng, malls) if rng.random() < MALL_SHARE else _site(rng, mall=False)
    if rng.random() < CHAIN_SHARE:
        chain = _chain_table(seed).pick(rng)
        profile = chain.profile
        name = f"{chain.name}({_branch(rng, site)}店)"
        merchant = (chain.ref, chain.name, chain.status)
        hours = chain.hours if rng.random() < 0.85 else _HOURS[profile.code].pick(rng)
        landline_share = 0.85
    else:
        profile = _CATEGORIES.pick(rng)
        name = _shop_name(rng, profile, site)
        merchant = (f"{MERCHANT_REF_PREFIX}{index:07d}", name, _MERCHANT_STATUS.pick(rng))
        hours = _HOURS[profile.code].pick(rng)
        landline_share = 0.4
    return DemoStore(
        index=index,
        ref=f"{STORE_REF_PREFIX}{index:07d}",
        merchant_ref=merchant[0],
        merchant_name=merchant[1],
        merchant_status=merchant[2],
        category=profile.code,
        name=name,
        district=site.street.district,
        address=_address(rng, site),
        phone=_phone(rng, landline_share),
        lat=site.lat,
        lng=site.lng,
        opening_hours_json=_opening_hours(rng, hours),
        status=_STORE_STATUS.pick(rng),
    )


def generate_block(seed: int, block: int) -> list[DemoStore]:
    rng = random.Random(f"{seed}:block:{block}")  # noqa: S311
    malls = [_site(rng, mall=True) for _ in range(MALL_SITES_PER_BLOCK)]
    first = block * BLOCK_SIZE
    return [_draw_store(rng, index, seed, malls) for index in range(first, first + BLOCK_SIZE)]


def demo_stores(seed: int, start: int, stop: int) -> Iterator[DemoStore]:
    """Stores ``start`` to ``stop - 1`` of ``seed``'s data set, as ``seed_demo`` writes them."""
    for block in range(start // BLOCK_SIZE, (stop + BLOCK_SIZE - 1) // BLOCK_SIZE):
        for store in generate_block(seed, block):
            if start <= store.index < stop:
                yield store
