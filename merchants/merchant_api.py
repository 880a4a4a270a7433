"""The merchants' REST API for stores, behind an API key (merchants.api_key_auth): list, read,
create, update (only the fields sent), close and reopen. Offers are coupons.merchant_api's.

Creating, editing and reopening publish, so they need an approved merchant; closing does not.
Every change is audited as "apikey:<prefix>" and reaches nearby search through the store change
log, like the portal's."""

from __future__ import annotations

from fastapi import Request

from merchants import stores
from merchants.api_key_auth import ApiKeyCaller, ApiKeyScope, audit_api, merchant_api_router
from merchants.auth import now_of
from merchants.models import Store
from merchants.schemas import StoreCreate, StoreRead, StoreUpdate
from tianfu.deps import DbSession

router = merchant_api_router()


def _read(request: Request, db: DbSession, store: Store) -> StoreRead:
    return stores.stores_read(db, [store], now=now_of(request))[0]


@router.get("/stores")
def list_stores(request: Request, db: DbSession, scope: ApiKeyScope) -> list[StoreRead]:
    return stores.stores_read(db, db.scalars(scope.stores()), now=now_of(request))


@router.get("/stores/{store_id}")
def get_store(request: Request, db: DbSession, scope: ApiKeyScope, store_id: int) -> StoreRead:
    return _read(request, db, scope.get_store(db, store_id))


@router.post("/stores", status_code=201)
def create_store(
    request: Request, db: DbSession, caller: ApiKeyCaller, body: StoreCreate
) -> StoreRead:
    caller.scope.require_approved()
    store = stores.create_store(db, merchant_id=caller.scope.merchant_id, data=body)
    position = stores.position_of(store)
    detail = {"name": store.name, "position_gcj02": list(position), "coord": body.coord.value}
    audit_api(db, request, caller, action="store.created", target=store, detail=detail)
    return _read(request, db, store)


@router.patch("/stores/{store_id}")
def update_store(
    request: Request, db: DbSession, caller: ApiKeyCaller, store_id: int, body: StoreUpdate
) -> StoreRead:
    caller.scope.require_approved()
    store = caller.scope.get_store(db, store_id)
    diff = stores.update_store(db, store, stores.StoreChanges.of_update(body))
    if diff:
        audit_api(db, request, caller, action="store.updated", target=store, detail=diff)
    return _read(request, db, store)


@router.post("/stores/{store_id}/close")
def close_store(
    request: Request, db: DbSession, caller: ApiKeyCaller, store_id: int, permanent: bool = False
) -> StoreRead:
    store = caller.scope.get_store(db, store_id)
    before = store.status.value
    stores.close_store(db, store, permanent=permanent)
    detail = {"status": [before, store.status.value]}
    audit_api(db, request, caller, action="store.closed", target=store, detail=detail)
    return _read(request, db, store)


@router.post("/stores/{store_id}/reopen")
def reopen_store(request: Request, db: DbSession, caller: ApiKeyCaller, store_id: int) -> StoreRead:
    caller.scope.require_approved()
    store = caller.scope.get_store(db, store_id)
    before = store.status.value
    stores.reopen_store(db, store)
    detail = {"status": [before, store.status.value]}
    audit_api(db, request, caller, action="store.reopened", target=store, detail=detail)
    return _read(request, db, store)
