"""MerchantScope: what a merchant account's queries may reach."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from merchants.errors import MerchantNotApprovedError, OutOfScopeError
from merchants.models import MerchantStatus, PortalRole
from merchants.scope import MerchantScope
from tests.builders import make_merchant, make_store


def scope_of(merchant_id: int, **changes: object) -> MerchantScope:
    values: dict[str, object] = {
        "account_id": 1, "role": PortalRole.merchant_owner, "merchant_id": merchant_id,
        "merchant_status": MerchantStatus.approved, "store_ids": None,
    }  # fmt: skip
    return MerchantScope(**(values | changes))  # type: ignore[arg-type]


def test_an_owner_sees_every_store_of_its_merchant_and_no_other(db_session: Session) -> None:
    mine = make_merchant(db_session)
    first = make_store(db_session, merchant=mine)
    second = make_store(db_session, merchant=mine, name="二店")
    other = make_store(db_session)
    scope = scope_of(mine.id)
    assert db_session.scalars(scope.stores()).all() == [first, second]
    assert scope.get_store(db_session, second.id) is second
    for store_id in (other.id, 999_999):
        with pytest.raises(OutOfScopeError):
            scope.get_store(db_session, store_id)


def test_limited_staff_see_their_stores_only(db_session: Session) -> None:
    mine = make_merchant(db_session)
    first = make_store(db_session, merchant=mine)
    second = make_store(db_session, merchant=mine, name="二店")
    scope = scope_of(mine.id, role=PortalRole.merchant_staff, store_ids=frozenset({first.id}))
    assert db_session.scalars(scope.stores()).all() == [first]
    with pytest.raises(OutOfScopeError):
        scope.get_store(db_session, second.id)
    with pytest.raises(OutOfScopeError):
        scope.check_stores([first.id, second.id])
    scope.check_stores([first.id])
    assert not scope.is_owner


def test_another_merchants_rows_are_not_found_and_publishing_needs_approval() -> None:
    scope = scope_of(7, merchant_status=MerchantStatus.suspended)
    scope.check_merchant(7)
    with pytest.raises(OutOfScopeError):
        scope.check_merchant(8)
    with pytest.raises(MerchantNotApprovedError):
        scope.require_approved()
    scope_of(7).require_approved()
