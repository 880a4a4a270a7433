from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from merchants.models import MerchantStatus, StoreStatus
from merchants.opening_hours import OpeningHours
from merchants.service import (
    create_store,
    move_store,
    set_merchant_status,
    set_opening_hours,
    set_store_status,
)
from merchants.store_index import LiveStoreIndex, StoreFilter
from tests.builders import category, make_merchant, make_store
from tianfu.seed import seed_demo

CHUNXI_ROAD = (30.6577, 104.0807)
TIANFU_SQUARE = (30.6574, 104.0661)  # about 1.4 km west of Chunxi Road


@pytest.fixture
def live_index(db_session: Session) -> LiveStoreIndex:
    # The index reads through its own sessions; bound to the test's connection, they see the
    # test's uncommitted rows and are rolled back with it.
    factory = sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    index = LiveStoreIndex(factory)
    index.build()
    return index


def _ids(index: LiveStoreIndex, point: tuple[float, float], **kwargs: object) -> list[int]:
    found = index.within(point[0], point[1], radius_m=500, limit=50, **kwargs)  # type: ignore[arg-type]
    return [store_id for store_id, _ in found]


def test_build_indexes_listed_stores(db_session: Session) -> None:
    store = make_store(db_session, lat=CHUNXI_ROAD[0], lng=CHUNXI_ROAD[1])
    factory = sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    index = LiveStoreIndex(factory)
    assert not index.ready
    assert index.readiness() is not None
    index.build()
    assert index.ready
    assert index.readiness() is None
    assert _ids(index, CHUNXI_ROAD) == [store.id]


def test_new_store_is_found_after_a_poll(db_session: Session, live_index: LiveStoreIndex) -> None:
    merchant = make_merchant(db_session)
    store = create_store(
        db_session,
        merchant_id=merchant.id,
        name="巷子咖啡(春熙路店)",
        address="成都市锦江区春熙路1号",
        lat_gcj02=CHUNXI_ROAD[0],
        lng_gcj02=CHUNXI_ROAD[1],
        opening_hours=OpeningHours.always_open(),
    )
    assert store.id not in _ids(live_index, CHUNXI_ROAD)
    assert live_index.poll_once() == 1
    assert _ids(live_index, CHUNXI_ROAD) == [store.id]
    assert live_index.poll_once() == 0


def test_moved_store_is_found_at_its_new_place(
    db_session: Session, live_index: LiveStoreIndex
) -> None:
    store = make_store(db_session, lat=CHUNXI_ROAD[0], lng=CHUNXI_ROAD[1])
    live_index.poll_once()
    live_index.build()
    move_store(db_session, store.id, lat_gcj02=TIANFU_SQUARE[0], lng_gcj02=TIANFU_SQUARE[1])
    live_index.poll_once()
    assert store.id not in _ids(live_index, CHUNXI_ROAD)
    assert store.id in _ids(live_index, TIANFU_SQUARE)


def test_closed_store_leaves_the_index(db_session: Session, live_index: LiveStoreIndex) -> None:
    store = make_store(db_session)
    live_index.build()
    set_store_status(db_session, store.id, status=StoreStatus.closed)
    live_index.poll_once()
    assert live_index.facts(store.id) is None
    assert store.id not in _ids(
        live_index, CHUNXI_ROAD, store_filter=StoreFilter(include_unlisted=True)
    )


def test_suspending_a_merchant_unlists_all_its_stores(
    db_session: Session, live_index: LiveStoreIndex
) -> None:
    merchant = make_merchant(db_session)
    first = make_store(db_session, merchant=merchant)
    second = make_store(db_session, merchant=merchant, lat=30.6578)
    live_index.build()
    assert set(_ids(live_index, CHUNXI_ROAD)) >= {first.id, second.id}
    set_merchant_status(db_session, merchant.id, status=MerchantStatus.suspended)
    live_index.poll_once()
    assert not {first.id, second.id} & set(_ids(live_index, CHUNXI_ROAD))
    set_merchant_status(db_session, merchant.id, status=MerchantStatus.approved)
    live_index.poll_once()
    assert set(_ids(live_index, CHUNXI_ROAD)) >= {first.id, second.id}


def test_category_filter(db_session: Session, live_index: LiveStoreIndex) -> None:
    hotpot = make_store(db_session, merchant=make_merchant(db_session, category_code="hotpot"))
    coffee = make_store(db_session, merchant=make_merchant(db_session, category_code="coffee"))
    live_index.build()
    only_coffee = StoreFilter(category_ids=frozenset({category(db_session, "coffee").id}))
    assert _ids(live_index, CHUNXI_ROAD, store_filter=only_coffee) == [coffee.id]
    assert hotpot.id in _ids(live_index, CHUNXI_ROAD)


def test_open_now_filter_follows_opening_hours(
    db_session: Session, live_index: LiveStoreIndex
) -> None:
    store = make_store(db_session)
    set_opening_hours(db_session, store.id, opening_hours=OpeningHours.daily(("10:00", "22:00")))
    live_index.poll_once()
    at_noon = StoreFilter(open_at=datetime(2026, 11, 30, 4, 0, tzinfo=UTC))  # 12:00 in Chengdu
    at_midnight = StoreFilter(open_at=datetime(2026, 11, 30, 16, 0, tzinfo=UTC))  # 00:00
    assert _ids(live_index, CHUNXI_ROAD, store_filter=at_noon) == [store.id]
    assert _ids(live_index, CHUNXI_ROAD, store_filter=at_midnight) == []


def test_bulk_seed_makes_running_indexes_rebuild(
    db_session: Session, live_index: LiveStoreIndex
) -> None:
    before = len(live_index)
    seed_demo(db_session, stores=300)
    live_index.poll_once()
    assert len(live_index) > before + 250  # permanently closed demo stores are not indexed


def test_many_live_updates_are_compacted(db_session: Session, live_index: LiveStoreIndex) -> None:
    store = make_store(db_session)
    live_index.build()
    assert not live_index.compact_if_worthwhile()  # one update is not worth a rebuild
    for step in range(1100):
        lat = CHUNXI_ROAD[0] + (step % 50) * 1e-5
        live_index._index.upsert(10_000_000 + step, lat, CHUNXI_ROAD[1])
    assert live_index.compact_if_worthwhile()
    assert live_index._index.pending_compaction == 0
    assert store.id in _ids(live_index, CHUNXI_ROAD)
