"""What a merchant account may see and change: its own merchant, and for a staff account
limited to some stores, those stores only. Every merchant-facing query goes through a
MerchantScope (the route gets one from `merchants.auth.Scope`):

    stores = session.scalars(scope.stores()).all()
    offers = session.scalars(select(Offer).where(scope.merchant_clause(Offer.merchant_id)))
    store = scope.get_store(session, store_id)  # OutOfScopeError (404) if not this account's

Another merchant's objects are "not found", never "forbidden", so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from merchants.errors import MerchantNotApprovedError, OutOfScopeError
from merchants.models import MerchantStatus, PortalRole, Store

NOT_FOUND_ZH = "不存在或无权访问"


@dataclass(frozen=True)
class MerchantScope:
    account_id: int
    role: PortalRole
    merchant_id: int
    merchant_status: MerchantStatus
    # None: every store of the merchant (owners, and staff without a limit).
    store_ids: frozenset[int] | None

    @property
    def is_owner(self) -> bool:
        return self.role is PortalRole.merchant_owner

    @property
    def all_stores(self) -> bool:
        return self.store_ids is None

    def merchant_clause(
        self, merchant_id_column: InstrumentedAttribute[int] | ColumnElement[int]
    ) -> ColumnElement[bool]:
        return merchant_id_column == self.merchant_id

    def store_clause(
        self,
        store_id_column: InstrumentedAttribute[int] | ColumnElement[int],
        merchant_id_column: InstrumentedAttribute[int] | ColumnElement[int],
    ) -> ColumnElement[bool]:
        """For rows that belong to a store (a redemption, a sale): this merchant's, and for a
        limited staff account, of its stores."""
        clause = self.merchant_clause(merchant_id_column)
        if self.store_ids is not None:
            clause = clause & store_id_column.in_(sorted(self.store_ids))
        return clause

    def stores(self) -> Select[Store]:
        return (
            select(Store).where(self.store_clause(Store.id, Store.merchant_id)).order_by(Store.id)
        )

    def can_see_store(self, store: Store) -> bool:
        return store.merchant_id == self.merchant_id and (
            self.store_ids is None or store.id in self.store_ids
        )

    def get_store(self, session: Session, store_id: int) -> Store:
        store = session.get(Store, store_id)
        if store is None or not self.can_see_store(store):
            raise OutOfScopeError(f"门店{NOT_FOUND_ZH}")
        return store

    def check_merchant(self, merchant_id: int | None) -> None:
        """For a row fetched by id: refuse it unless it is this merchant's."""
        if merchant_id != self.merchant_id:
            raise OutOfScopeError(NOT_FOUND_ZH)

    def check_stores(self, store_ids: Iterable[int]) -> None:
        if self.store_ids is not None and not set(store_ids) <= self.store_ids:
            raise OutOfScopeError(f"门店{NOT_FOUND_ZH}")

    def require_approved(self) -> None:
        """Publishing (stores, offers) is for approved merchants only."""
        if self.merchant_status is not MerchantStatus.approved:
            raise MerchantNotApprovedError("商户审核通过后才能发布；已暂停的商户不能发布")
