"""The owner's API keys page: create a key (its whole value shown on the answer to that post,
once, and never again), list keys by prefix with their access and last use, revoke one. Owners
only; another merchant's key is "not found"."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from merchants import api_keys
from merchants.api_key_auth import API_PREFIX
from merchants.auth import OwnerScope, PortalForm, app_settings, audit, now_of, portal_router
from merchants.models import ApiKeyAccess, PortalAccount
from merchants.portal_web import message_page, render, see_other
from merchants.scope import MerchantScope
from tianfu.deps import DbSession
from tianfu.errors import TianfuError

router = portal_router("/portal/api-keys")

ACCESS_ZH = {ApiKeyAccess.read: "只读", ApiKeyAccess.write: "读写"}
NAME_MAX = 60


def _page(
    request: Request,
    db: Session,
    scope: MerchantScope,
    *,
    issued: api_keys.IssuedKey | None = None,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    keys = api_keys.list_keys(db, scope.merchant_id)
    accounts = select(PortalAccount.id, PortalAccount.username).where(
        PortalAccount.id.in_({key.created_by for key in keys})
    )
    creators = dict(db.execute(accounts).all())
    context = {
        "keys": keys,
        "creators": creators,
        "issued": issued,
        "values": values or {"access": ApiKeyAccess.read.value},
        "errors": errors or {},
        "access_zh": ACCESS_ZH,
        "api_base": f"{app_settings(request).public_base_url.rstrip('/')}{API_PREFIX}",
        "done": request.query_params.get("done", ""),
        "max_keys": api_keys.MAX_ACTIVE_KEYS,
    }
    user = request.state.portal_principal
    return render(request, "portal/api_keys.html", context, user=user, status_code=status)


def _parse(form: FormData) -> tuple[str, ApiKeyAccess] | dict[str, str]:
    name = str(form.get("name") or "").strip()
    access = str(form.get("access") or "")
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "请填写密钥名称（例如用途：收银系统同步）"
    elif len(name) > NAME_MAX:
        errors["name"] = f"密钥名称不能超过{NAME_MAX}个字符"
    elif not name.isprintable():
        errors["name"] = "密钥名称不能包含控制字符"
    if access not in ApiKeyAccess.__members__:
        errors["access"] = "请选择权限：只读或读写"
    return errors or (name, ApiKeyAccess(access))


@router.get("", response_class=HTMLResponse)
def api_keys_page(request: Request, db: DbSession, scope: OwnerScope) -> Response:
    return _page(request, db, scope)


@router.post("", response_class=HTMLResponse)
def create_api_key(
    request: Request, db: DbSession, scope: OwnerScope, form: PortalForm
) -> Response:
    values = {"name": str(form.get("name") or ""), "access": str(form.get("access") or "")}
    parsed = _parse(form)
    if isinstance(parsed, dict):
        return _page(request, db, scope, values=values, errors=parsed, status=422)
    name, access = parsed
    try:
        with db.begin_nested():
            issued = api_keys.issue_key(
                db,
                merchant_id=scope.merchant_id,
                name=name,
                access=access,
                created_by=scope.account_id,
                now=now_of(request),
            )
    except TianfuError as exc:
        errors = {"form": exc.message}
        return _page(request, db, scope, values=values, errors=errors, status=exc.status_code)
    detail = {"prefix": issued.key.prefix, "name": name, "access": access.value}
    audit(db, request, action="api_key.created", target=issued.key, detail=detail)
    # The key is on this answer only (no redirect that would have to carry it); the page is
    # never cached (portal_web's headers).
    return _page(request, db, scope, issued=issued)


@router.post("/{key_id}/revoke")
def revoke_api_key(request: Request, db: DbSession, scope: OwnerScope, key_id: int) -> Response:
    key = api_keys.merchant_key(db, merchant_id=scope.merchant_id, key_id=key_id)
    if not api_keys.revoke_key(db, key, now=now_of(request)):
        return message_page(
            request,
            status_code=409,
            title="无法执行",
            message="该密钥已经吊销",
            link=("/portal/api-keys", "返回"),
        )
    audit(db, request, action="api_key.revoked", target=key, detail={"prefix": key.prefix})
    return see_other("/portal/api-keys?done=revoked")
