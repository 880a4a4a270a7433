"""The portal's JSON API for its own pages' scripts and for the pages later issues add: the same
session as the pages, answers as JSON, unsafe methods with the X-CSRF-Token header. (The
merchants' REST API with API keys is a different door, not this one.)"""

from __future__ import annotations

from fastapi import Request, Response
from pydantic import BaseModel

from merchants.auth import PortalUser, Scope, audit, end_session, portal_api_router
from merchants.errors import OutOfScopeError
from merchants.models import Merchant, MerchantStatus, PortalAccount, PortalRole, StoreStatus
from tianfu.deps import DbSession

router = portal_api_router()


class MeRead(BaseModel):
    account_id: int
    username: str
    display_name: str
    role: PortalRole
    merchant_id: int | None
    csrf_token: str


class MerchantRead(BaseModel):
    id: int
    name: str
    status: MerchantStatus
    category_id: int


class StoreBrief(BaseModel):
    id: int
    name: str
    address: str
    status: StoreStatus


@router.get("/me")
def me(user: PortalUser) -> MeRead:
    return MeRead(
        account_id=user.account_id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        merchant_id=user.merchant_id,
        csrf_token=user.csrf_token,
    )


@router.get("/merchants/{merchant_id}")
def merchant(db: DbSession, user: PortalUser, merchant_id: int) -> MerchantRead:
    # Bank admins see any merchant; a merchant account only its own (another's is "not found").
    if not user.is_bank_admin and user.merchant_id != merchant_id:
        raise OutOfScopeError("商户不存在或无权访问")
    found = db.get(Merchant, merchant_id)
    if found is None:
        raise OutOfScopeError("商户不存在或无权访问")
    return MerchantRead(
        id=found.id, name=found.name, status=found.status, category_id=found.category_id
    )


@router.get("/stores")
def stores(db: DbSession, scope: Scope) -> list[StoreBrief]:
    return [
        StoreBrief(id=store.id, name=store.name, address=store.address, status=store.status)
        for store in db.scalars(scope.stores())
    ]


@router.delete("/session", status_code=204)
def log_out(request: Request, db: DbSession, user: PortalUser) -> Response:
    response = Response(status_code=204)
    end_session(db, request, response, user)
    account = db.get(PortalAccount, user.account_id)
    assert account is not None
    audit(db, request, action="logout", target=account)
    return response
