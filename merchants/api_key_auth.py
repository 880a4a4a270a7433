"""The door of the merchants' REST API (/api/v1/merchant): an API key in the
`Authorization: Bearer tfk_…` header. Nothing is taken from cookies, so a browser cannot be
made to call it on a merchant's behalf, and there is no CSRF token to check.

Routers come from `merchant_api_router()`: every route on them is behind the key, and unsafe
methods (POST, PATCH, …) need a key with write access, whether or not the route asks for the
caller. A route then takes what it needs:

    def route(scope: ApiKeyScope) ...     # the key's merchant, as a MerchantScope
    def route(caller: ApiKeyCaller) ...   # the same, with the key (for created_by, the audit)

No key, a malformed, unknown or revoked one: 401. A read key on a write route: 403. Another
merchant's object: 404, as everywhere (MerchantScope).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants import api_keys
from merchants import audit as audit_log
from merchants.auth import SAFE_METHODS, client_ip, now_of
from merchants.errors import ApiKeyReadOnlyError, ApiKeyRejectedError
from merchants.models import ApiKeyAccess, AuditEntry, Merchant, MerchantStatus, PortalRole
from merchants.scope import MerchantScope
from tianfu.deps import DbSession
from tianfu.orm import Base

API_PREFIX = "/api/v1/merchant"


@dataclass(frozen=True)
class ApiCaller:
    key_id: int
    prefix: str
    access: ApiKeyAccess
    scope: MerchantScope

    @property
    def label(self) -> str:
        """Who did it, in the audit log and in an offer's created_by."""
        return f"apikey:{self.prefix}"


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def api_key_guard(request: Request, db: DbSession) -> ApiCaller:
    key = api_keys.authenticate(db, _bearer(request))
    if key is None:
        raise ApiKeyRejectedError("API 密钥无效或已吊销")
    if request.method not in SAFE_METHODS and key.access is not ApiKeyAccess.write:
        raise ApiKeyReadOnlyError("只读密钥不能修改数据")
    api_keys.touch(db, key, now=now_of(request))
    status = db.scalar(select(Merchant.status).where(Merchant.id == key.merchant_id))
    # A key acts for the whole merchant, as its owner would; what it may do is its access
    # (checked above) and, for publishing, the merchant's approval (the routes check that).
    scope = MerchantScope(
        account_id=key.created_by,
        role=PortalRole.merchant_owner,
        merchant_id=key.merchant_id,
        merchant_status=status or MerchantStatus.pending,
        store_ids=None,
    )
    return ApiCaller(key_id=key.id, prefix=key.prefix, access=key.access, scope=scope)


ApiKeyCaller = Annotated[ApiCaller, Depends(api_key_guard)]


def api_key_scope(caller: ApiKeyCaller) -> MerchantScope:
    return caller.scope


ApiKeyScope = Annotated[MerchantScope, Depends(api_key_scope)]


def merchant_api_router(prefix: str = API_PREFIX, **kwargs: Any) -> APIRouter:
    """A router of the REST API: every route behind an API key (see the module docstring)."""
    return APIRouter(
        prefix=prefix, dependencies=[Depends(api_key_guard)], tags=["merchant-api"], **kwargs
    )


def audit_api(
    db: Session,
    request: Request,
    caller: ApiCaller,
    *,
    action: str,
    target: Base,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Records a change made with an API key: by "apikey:<prefix>", now, from the client's
    address."""
    return audit_log.record(
        db,
        actor=audit_log.Actor(None, caller.label, client_ip(request)),
        action=action,
        target=target,
        detail=detail,
        merchant_id=caller.scope.merchant_id,
        now=now_of(request),
    )
