from __future__ import annotations

from sqlalchemy.orm import Session

from merchants import changes
from merchants.models import MerchantStatus, StoreStatus
from merchants.service import move_store, set_merchant_status, set_store_status
from tests.builders import make_merchant, make_store


def test_versions_increase_by_one_per_change(db_session: Session) -> None:
    start = changes.latest_version(db_session)
    store = make_store(db_session)
    first = changes.record_store_change(db_session, store.id)
    second = changes.record_store_change(db_session, store.id)
    assert (first, second) == (start + 1, start + 2)
    assert changes.latest_version(db_session) == second


def test_changes_since_returns_only_newer_changes(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    store = make_store(db_session, merchant=merchant)
    seen = changes.latest_version(db_session)
    move_store(db_session, store.id, lat_gcj02=30.66, lng_gcj02=104.07)
    set_merchant_status(db_session, merchant.id, status=MerchantStatus.suspended)
    batch = changes.changes_since(db_session, seen)
    assert batch.store_ids == {store.id}
    assert batch.merchant_ids == {merchant.id}
    assert batch.up_to_version == seen + 2
    assert not batch.reload_everything
    nothing = changes.changes_since(db_session, batch.up_to_version)
    assert nothing.up_to_version == batch.up_to_version
    assert nothing.store_ids == frozenset()


def test_bulk_change_asks_readers_to_reload(db_session: Session) -> None:
    seen = changes.latest_version(db_session)
    changes.record_bulk_change(db_session)
    assert changes.changes_since(db_session, seen).reload_everything


def test_every_store_edit_is_logged(db_session: Session) -> None:
    store = make_store(db_session)
    seen = changes.latest_version(db_session)
    set_store_status(db_session, store.id, status=StoreStatus.temporarily_closed)
    assert changes.changes_since(db_session, seen).store_ids == {store.id}
