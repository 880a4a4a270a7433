from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError, InvalidRequestError, StatementError
from sqlalchemy.orm import Session

from merchants.models import Category, Merchant, MerchantStatus, Store
from tests.builders import make_merchant, make_store
from tianfu.geo import CoordinateRangeError, gcj02_point


def test_base_categories_come_with_the_schema(db_session: Session) -> None:
    codes = set(db_session.scalars(select(Category.code)))
    assert {"food", "hotpot", "coffee", "supermarket", "convenience", "cinema", "hotel"} <= codes
    hotpot = db_session.scalars(select(Category).where(Category.code == "hotpot")).one()
    food = db_session.scalars(select(Category).where(Category.code == "food")).one()
    assert hotpot.parent_id == food.id
    assert "火锅" in hotpot.keywords


def test_new_category_gets_an_id_after_the_seeded_ones(db_session: Session) -> None:
    karaoke = Category(code="karaoke", name_zh="KTV", keywords=["唱K"], sort_order=90)
    db_session.add(karaoke)
    db_session.flush()
    assert karaoke.id > 14


def test_store_point_round_trips_as_lng_lat(db_session: Session) -> None:
    store = make_store(db_session, lat=30.6574, lng=104.0661)
    lng, lat = db_session.execute(
        select(func.ST_X(Store.location_gcj02), func.ST_Y(Store.location_gcj02)).where(
            Store.id == store.id
        )
    ).one()
    assert (lat, lng) == pytest.approx((30.6574, 104.0661), abs=1e-9)
    srid = db_session.scalar(select(func.ST_SRID(Store.location_gcj02)).where(Store.id == store.id))
    assert srid == 4326


def test_spatial_predicate_finds_stores_inside_an_envelope(db_session: Session) -> None:
    inside = make_store(db_session, lat=30.6577, lng=104.0807)
    make_store(db_session, lat=30.5457, lng=104.0694)  # 天府软件园, ~12 km south
    envelope = func.ST_GeomFromText(
        "POLYGON((104.07 30.65, 104.09 30.65, 104.09 30.67, 104.07 30.67, 104.07 30.65))", 4326
    )
    found = db_session.scalars(
        select(Store.id).where(func.ST_Intersects(Store.location_gcj02, envelope))
    ).all()
    assert found == [inside.id]


def test_timestamps_come_back_aware_utc(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    beijing = timezone(timedelta(hours=8))
    merchant.created_at = datetime(2026, 11, 28, 20, 30, tzinfo=beijing)
    db_session.flush()
    db_session.expire(merchant)
    assert merchant.created_at == datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    assert merchant.created_at.tzinfo is not None
    assert merchant.updated_at.tzinfo is not None


def test_naive_timestamps_are_refused(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    merchant.created_at = datetime(2026, 11, 28, 12, 30)  # noqa: DTZ001 - the point of the test
    with pytest.raises(StatementError, match="naive datetime"):
        db_session.flush()


def test_store_for_unknown_merchant_is_refused(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    store = make_store(db_session, merchant=merchant)
    with pytest.raises(IntegrityError):
        db_session.execute(update(Store).where(Store.id == store.id).values(merchant_id=999_999))


def test_unknown_status_is_refused_by_the_database(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    with pytest.raises(IntegrityError):
        db_session.execute(
            text("UPDATE merchants SET status = 'deleted' WHERE id = :id"), {"id": merchant.id}
        )


def test_merchant_external_ref_is_unique(db_session: Session) -> None:
    make_merchant(db_session, external_ref="crm-001")
    with pytest.raises(IntegrityError):
        make_merchant(db_session, external_ref="crm-001")


def test_store_external_ref_is_unique_per_merchant(db_session: Session) -> None:
    first, second = make_merchant(db_session), make_merchant(db_session)
    make_store(db_session, merchant=first, external_ref="S-01")
    make_store(db_session, merchant=second, external_ref="S-01")
    with pytest.raises(IntegrityError):
        make_store(db_session, merchant=first, external_ref="S-01")


def test_relationships_do_not_load_lazily(db_session: Session) -> None:
    store = make_store(db_session)
    db_session.expire_all()
    loaded = db_session.get(Store, store.id)
    assert loaded is not None
    with pytest.raises(InvalidRequestError, match=r"lazy=.raise."):
        _ = loaded.merchant


def test_status_enum_round_trips(db_session: Session) -> None:
    merchant = make_merchant(db_session, status=MerchantStatus.suspended)
    db_session.expire(merchant)
    assert db_session.get(Merchant, merchant.id) is not None
    assert merchant.status is MerchantStatus.suspended


@pytest.mark.parametrize(
    ("lat", "lng"), [(91.0, 104.0), (-90.5, 104.0), (30.0, 181.0), (float("nan"), 104.0)]
)
def test_out_of_range_points_are_refused_before_the_database(lat: float, lng: float) -> None:
    with pytest.raises(CoordinateRangeError):
        gcj02_point(lat, lng)
