"""The Chengdu demo data set: what `tianfu seed demo` writes, on both backends."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coupons.models import Offer
from merchants.models import Category, Merchant, MerchantStatus, Store, StoreStatus
from merchants.opening_hours import WEEKDAYS, OpeningHours
from tianfu.seed import (
    DemoSeedMismatchError,
    DemoStore,
    SeedReport,
    chengdu,
    demo,
    demo_stores,
    seed_demo,
)

SEED = 20261128
PHONE = re.compile(r"028-8\d{7}|1[358]\d{9}")
REF = re.compile(r"demo-s-\d{7}")


def _in_chengdu(lat: float, lng: float) -> bool:
    return chengdu.LAT_MIN <= lat <= chengdu.LAT_MAX and chengdu.LNG_MIN <= lng <= chengdu.LNG_MAX


def _stored(session: Session) -> dict[str, tuple[Any, ...]]:
    """Everything a demo viewer sees of each demo store, keyed by its external_ref."""
    rows = session.execute(
        select(
            Store.external_ref,
            Store.name,
            Store.district,
            Store.address,
            Store.phone,
            Store.status,
            Store.opening_hours,
            Category.code,
            Merchant.external_ref,
            Merchant.name,
            Merchant.status,
            func.ST_Y(Store.location_gcj02),
            func.ST_X(Store.location_gcj02),
        )
        .join(Merchant, Merchant.id == Store.merchant_id)
        .join(Category, Category.id == Store.category_id)
        .where(Store.external_ref.like("demo-s-%"))
    ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def _expected(store: DemoStore) -> tuple[Any, ...]:
    return (
        store.name,
        store.district,
        store.address,
        store.phone,
        StoreStatus(store.status),
        store.opening_hours,
        store.category,
        store.merchant_ref,
        store.merchant_name,
        MerchantStatus(store.merchant_status),
        store.lat,
        store.lng,
    )


def test_seeding_writes_plausible_stores(db_session: Session) -> None:
    report = seed_demo(db_session, stores=300)

    demo_merchants = db_session.scalar(
        select(func.count()).where(Merchant.external_ref.like("demo-m-%"))
    )
    offers = db_session.scalar(select(func.count()).select_from(Offer))
    assert report == SeedReport(
        merchants_created=demo_merchants or 0,
        stores_created=300,
        stores_total=300,
        offers_created=offers or 0,
    )
    stored = _stored(db_session)
    assert len(stored) == 300
    assert 60 < report.merchants_created < 300  # chain brands are shared
    for ref, (name, district, address, phone, _status, hours, *_rest) in stored.items():
        assert REF.fullmatch(ref)
        assert name
        assert district.endswith("区")
        assert address.startswith(f"成都市{district}")
        assert "号" in address
        assert PHONE.fullmatch(phone), phone
        assert set(hours["weekly"]) == set(WEEKDAYS)
        assert hours["closed_dates"] == []


def test_stores_match_the_generator_and_their_merchants(db_session: Session) -> None:
    seed_demo(db_session, stores=300)

    assert _stored(db_session) == {s.ref: _expected(s) for s in demo_stores(SEED, 0, 300)}
    mismatched = db_session.scalar(
        select(func.count())
        .select_from(Store)
        .join(Merchant, Merchant.id == Store.merchant_id)
        .where(Store.category_id != Merchant.category_id)
    )
    assert mismatched == 0


def test_every_location_is_in_chengdu_and_spatially_indexed(db_session: Session) -> None:
    seed_demo(db_session, stores=300)

    points = db_session.execute(
        select(
            func.ST_Y(Store.location_gcj02),
            func.ST_X(Store.location_gcj02),
            func.ST_SRID(Store.location_gcj02),
        )
    ).all()
    assert len(points) == 300
    assert all(_in_chengdu(lat, lng) and srid == 4326 for lat, lng, srid in points)
    if db_session.get_bind().dialect.name == "sqlite":
        indexed = db_session.connection().exec_driver_sql(
            "SELECT count(*) FROM idx_stores_location_gcj02"
        )
        assert indexed.scalar() == 300


def test_some_stores_share_exact_coordinates(db_session: Session) -> None:
    seed_demo(db_session, stores=300)

    x, y = func.ST_X(Store.location_gcj02), func.ST_Y(Store.location_gcj02)
    shared = db_session.execute(
        select(x, y, func.count()).group_by(x, y).having(func.count() > 1)
    ).all()
    assert shared


def test_rerunning_is_a_no_op(db_session: Session) -> None:
    seed_demo(db_session, stores=300)
    before = _stored(db_session)
    merchants = db_session.scalar(select(func.count()).select_from(Merchant))
    calls: list[int] = []

    again = seed_demo(db_session, stores=300, progress=calls.append)

    assert again == SeedReport(merchants_created=0, stores_created=0, stores_total=300)
    assert sum(calls) == 0
    assert _stored(db_session) == before
    assert db_session.scalar(select(func.count()).select_from(Merchant)) == merchants


def test_growing_the_data_set_equals_seeding_it_at_once(db_session: Session) -> None:
    savepoint = db_session.begin_nested()
    direct = seed_demo(db_session, stores=300)
    at_once = _stored(db_session)
    savepoint.rollback()
    assert _stored(db_session) == {}

    first = seed_demo(db_session, stores=200)
    second = seed_demo(db_session, stores=300)

    assert (first.stores_created, second.stores_created, second.stores_total) == (200, 100, 300)
    assert first.merchants_created + second.merchants_created == direct.merchants_created
    assert _stored(db_session) == at_once


def test_a_missing_store_is_written_again_under_its_merchant(db_session: Session) -> None:
    seed_demo(db_session, stores=300)
    before = _stored(db_session)
    gone = db_session.scalars(select(Store).where(Store.external_ref == "demo-s-0000042")).one()
    db_session.delete(gone)
    db_session.flush()

    report = seed_demo(db_session, stores=300)

    assert report == SeedReport(merchants_created=0, stores_created=1, stores_total=300)
    assert _stored(db_session) == before


def test_progress_adds_up_to_the_stores_written(db_session: Session) -> None:
    calls: list[int] = []
    report = seed_demo(db_session, stores=300, progress=calls.append)
    assert sum(calls) == report.stores_created == 300

    more: list[int] = []
    grown = seed_demo(db_session, stores=7_000, progress=more.append)
    assert grown.stores_created == 6_700
    assert sum(more) == 6_700
    assert len(more) > 1  # chunked, so a progress bar moves


def test_another_seed_is_refused_on_a_seeded_database(db_session: Session) -> None:
    seed_demo(db_session, stores=2000)
    for other in (SEED + 1, 1, 7, 42):
        with pytest.raises(DemoSeedMismatchError):
            seed_demo(db_session, stores=2000, seed=other)


def test_nothing_to_do_and_bad_sizes(db_session: Session) -> None:
    assert seed_demo(db_session, stores=0) == SeedReport(0, 0, 0)
    with pytest.raises(ValueError, match="stores must be"):
        seed_demo(db_session, stores=-1)


# --- the generator alone (no database) --------------------------------------------------------


def test_the_same_seed_gives_the_same_stores_and_another_seed_others() -> None:
    first = list(demo_stores(SEED, 0, 500))
    assert first == list(demo_stores(SEED, 0, 500))
    assert list(demo_stores(SEED, 250, 260)) == first[250:260]
    other = list(demo_stores(SEED + 1, 0, 500))
    assert sum(a.name == b.name for a, b in zip(first, other, strict=True)) < 50
    assert {c.name for c in demo.demo_chains(SEED)} != {c.name for c in demo.demo_chains(SEED + 1)}


def test_the_mix_looks_like_a_city() -> None:
    stores = list(demo_stores(SEED, 0, 20_000))
    categories = Counter(store.category for store in stores)
    chains = {store.merchant_ref for store in stores if store.merchant_ref.startswith("demo-m-c")}
    chain_stores = sum(store.merchant_ref in chains for store in stores)
    coordinates = Counter((store.lat, store.lng) for store in stores)

    brands = [chain.name for chain in demo.demo_chains(SEED)]
    assert 55 <= len(brands) <= 65
    assert len(set(brands)) == len(brands)
    assert len(chains) >= 50
    assert 0.30 < chain_stores / len(stores) < 0.40
    assert set(categories) == {profile.code for profile in chengdu.CATEGORIES}
    eating = sum(categories[code] for code in ("sichuan", "snacks", "hotpot", "bbq", "food"))
    assert eating > len(stores) * 0.4
    assert categories["tea"] > categories["hotel"] > categories["cinema"]
    assert categories["convenience"] > categories["fitness"]
    statuses = Counter(store.status for store in stores)
    assert 0.93 < statuses["open"] / len(stores) < 0.97
    merchants = Counter({s.merchant_ref: s.merchant_status for s in stores}.values())
    assert 0.87 < merchants["approved"] / merchants.total() < 0.93
    assert set(merchants) == set(MerchantStatus)
    shared = sum(count for count in coordinates.values() if count > 1)
    assert 0.02 < shared / len(stores) < 0.10
    assert all(_in_chengdu(store.lat, store.lng) for store in stores)
    branch = re.compile(r".+\(.+店\)")
    assert all(branch.fullmatch(s.name) for s in stores if s.merchant_ref in chains)
    assert {s.district for s in stores} >= {"锦江区", "青羊区", "武侯区", "成华区", "高新区"}


def test_the_chengdu_data_lies_in_chengdu() -> None:
    assert len(chengdu.AREAS) >= 20
    for area in chengdu.AREAS:
        assert _in_chengdu(area.lat, area.lng), area.name
        assert 300 <= area.sigma_m <= 1500
        assert area.streets
        assert area.malls
    assert _in_chengdu(chengdu.SPARSE_LAT[0], chengdu.SPARSE_LNG[0])
    assert _in_chengdu(chengdu.SPARSE_LAT[1], chengdu.SPARSE_LNG[1])
    codes = {profile.code for profile in chengdu.CATEGORIES}
    assert codes == {
        "food", "hotpot", "sichuan", "snacks", "bbq", "coffee", "tea", "supermarket",
        "convenience", "cinema", "hotel", "fitness", "entertainment", "beauty",
    }  # fmt: skip


def _hours(pattern: chengdu.HoursPattern, open_shift: int, close_shift: int) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(demo._hours_json(pattern, open_shift, close_shift)))


def test_every_schedule_the_generator_can_produce_is_valid_opening_hours() -> None:
    patterns = {pattern for profile in chengdu.CATEGORIES for pattern in profile.hours}
    shifts = (-30, 0, 30)
    for pattern, opens, closes in itertools.product(patterns, shifts, shifts):
        hours = OpeningHours.from_json(_hours(pattern, opens, closes))
        assert set(hours.weekly) == set(WEEKDAYS)
        for day in WEEKDAYS:
            assert (hours.weekly[day] == ()) == (day in pattern.closed_days)


def test_overnight_and_all_day_schedules_keep_their_shape() -> None:
    by_code = {profile.code: profile for profile in chengdu.CATEGORIES}
    hotpot = by_code["hotpot"].hours[0]
    assert _hours(hotpot, 0, 0)["weekly"]["mon"] == [["11:00", "02:00"]]
    hotel = by_code["hotel"].hours[0]
    assert _hours(hotel, 0, 0)["weekly"]["sun"] == [["00:00", "24:00"]]
    restaurant = by_code["sichuan"].hours[1]
    weekly = _hours(restaurant, 0, 0)["weekly"]
    assert weekly["mon"] == []
    assert weekly["tue"] == [["10:30", "14:00"], ["17:00", "21:30"]]
