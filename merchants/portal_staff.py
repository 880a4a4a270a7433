"""An owner's staff accounts: create one (optionally limited to some stores), change its
stores, disable or enable it. Owners only (`OwnerScope`); another merchant's staff account is
"not found"."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from merchants import accounts
from merchants.auth import OwnerScope, PortalForm, audit, login_policy, portal_router
from merchants.errors import AccountNotFoundError, OutOfScopeError
from merchants.models import PortalAccount
from merchants.portal_forms import FIELD_LABELS, StaffForm, parse_form
from merchants.portal_web import message_page, render, see_other
from merchants.scope import MerchantScope
from tianfu.deps import DbSession
from tianfu.errors import TianfuError

router = portal_router("/portal/staff")


def _store_ids(form: FormData) -> list[int] | None:
    """The ticked stores, or None if any value is not a store id."""
    values = [str(value) for value in form.getlist("store_id")]
    if not all(value.isdigit() and len(value) < 10 for value in values):
        return None
    return [int(value) for value in values]


def _page(
    request: Request,
    db: Session,
    scope: MerchantScope,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    stores = list(db.scalars(scope.stores()))
    context = {
        "staff": accounts.list_staff(db, scope.merchant_id),
        "stores": stores,
        "values": values or {},
        "errors": errors or {},
        "labels": FIELD_LABELS,
        "done": request.query_params.get("done", ""),
    }
    user = request.state.portal_principal
    return render(request, "portal/staff.html", context, user=user, status_code=status)


def _staff(db: Session, scope: MerchantScope, account_id: int) -> PortalAccount:
    try:
        return accounts.staff_account(db, merchant_id=scope.merchant_id, account_id=account_id)
    except AccountNotFoundError:
        raise OutOfScopeError("店员账号不存在或无权访问") from None


@router.get("", response_class=HTMLResponse)
def staff_page(request: Request, db: DbSession, scope: OwnerScope) -> Response:
    return _page(request, db, scope)


@router.post("", response_class=HTMLResponse)
def create_staff(request: Request, db: DbSession, scope: OwnerScope, form: PortalForm) -> Response:
    values = {key: value for key, value in form.items() if "password" not in key}
    parsed = parse_form(StaffForm, form)
    store_ids = _store_ids(form)
    if isinstance(parsed, dict) or store_ids is None:
        errors = parsed if isinstance(parsed, dict) else {"store_id": "门店选择有误"}
        return _page(request, db, scope, values=values, errors=errors, status=422)
    if not parsed.matching():
        errors = {"password_confirm": "两次输入的密码不一致"}
        return _page(request, db, scope, values=values, errors=errors, status=422)
    try:
        with db.begin_nested():
            account = accounts.create_staff(
                db,
                merchant_id=scope.merchant_id,
                username=parsed.username,
                password=parsed.password,
                hasher=login_policy(request).hasher,
                display_name=parsed.display_name,
                store_ids=store_ids,
            )
    except TianfuError as exc:
        field = "username" if exc.message.startswith(("用户名", "该用户名")) else "form"
        if exc.message.startswith("密码"):
            field = "password"
        errors = {field: exc.message}
        status = exc.status_code if exc.status_code < 500 else 422
        return _page(request, db, scope, values=values, errors=errors, status=status)
    audit(
        db,
        request,
        action="staff.created",
        target=account,
        detail={"username": account.username, "store_ids": sorted(store_ids)},
    )
    return see_other("/portal/staff?done=created")


@router.post("/{account_id}/stores")
def set_stores(
    request: Request, db: DbSession, scope: OwnerScope, account_id: int, form: PortalForm
) -> Response:
    account = _staff(db, scope, account_id)
    store_ids = _store_ids(form)
    try:
        if store_ids is None:
            raise OutOfScopeError("门店不存在或无权访问")
        with db.begin_nested():
            chosen = accounts.set_staff_stores(
                db, merchant_id=scope.merchant_id, account_id=account.id, store_ids=store_ids
            )
    except TianfuError as exc:
        return message_page(
            request,
            status_code=exc.status_code,
            title="无法执行",
            message=exc.message,
            link=("/portal/staff", "返回"),
        )
    audit(
        db,
        request,
        action="staff.stores_changed",
        target=account,
        detail={"store_ids": sorted(chosen)},
    )
    return see_other("/portal/staff?done=stores")


def _set_disabled(
    request: Request, db: Session, scope: MerchantScope, account_id: int, *, disabled: bool
) -> Response:
    account = _staff(db, scope, account_id)
    accounts.set_staff_disabled(
        db, merchant_id=scope.merchant_id, account_id=account.id, disabled=disabled
    )
    action = "staff.disabled" if disabled else "staff.enabled"
    audit(db, request, action=action, target=account)
    return see_other(f"/portal/staff?done={'disabled' if disabled else 'enabled'}")


@router.post("/{account_id}/disable")
def disable(request: Request, db: DbSession, scope: OwnerScope, account_id: int) -> Response:
    return _set_disabled(request, db, scope, account_id, disabled=True)


@router.post("/{account_id}/enable")
def enable(request: Request, db: DbSession, scope: OwnerScope, account_id: int) -> Response:
    return _set_disabled(request, db, scope, account_id, disabled=False)
