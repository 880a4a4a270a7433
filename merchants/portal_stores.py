"""The portal's store pages: the list (a staff account sees its own stores only), a store's page
(read-only for staff), and for the owner of an approved merchant, creating and editing stores and
reopening them; owners may close a store whatever the merchant's state. Every change is audited
and reaches nearby search through the store change log (merchants.stores)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from lbs.coords import CoordSystem, in_china_offset_area
from merchants import stores
from merchants.auth import (
    OwnerScope,
    PortalForm,
    Scope,
    audit,
    now_of,
    portal_api_router,
    portal_router,
)
from merchants.errors import UnknownCategoryError
from merchants.models import Category, MerchantStatus, Store, StoreStatus
from merchants.portal_web import message_page, render, see_other
from merchants.schemas import StoreCreate, StoreRead
from merchants.scope import MerchantScope
from merchants.store_forms import COORD_ZH, DAY_ZH, LABELS, form_values, parse_store_form
from tianfu.deps import DbSession
from tianfu.errors import TianfuError

router = portal_router("/portal/stores")
# The same on the portal session, as JSON (the list is portal_api's GET /api/v1/portal/stores).
api = portal_api_router()

DONE_ZH = {
    "created": "门店已创建",
    "saved": "已保存",
    "unchanged": "没有修改",
    "closed": "门店已停业",
    "reopened": "门店已恢复营业",
}


def require_owner_publishing(scope: OwnerScope) -> MerchantScope:
    """The owner of an approved merchant: what publishing a store (or its changes) needs."""
    scope.require_approved()
    return scope


OwnerPublishing = Annotated[MerchantScope, Depends(require_owner_publishing)]


def _categories(db: Session) -> list[Category]:
    return list(db.scalars(select(Category).order_by(Category.sort_order, Category.id)))


def _form_context(db: Session, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    return {
        "values": values,
        "errors": errors,
        "categories": _categories(db),
        "labels": LABELS,
        "days": DAY_ZH,
        "coords": COORD_ZH,
    }


def _new_page(
    request: Request, db: Session, *, values: dict[str, Any], errors: dict[str, str], status: int
) -> Response:
    context = _form_context(db, values, errors)
    user = request.state.portal_principal
    return render(request, "portal/stores_new.html", context, user=user, status_code=status)


def _store_page(
    request: Request,
    db: Session,
    scope: MerchantScope,
    store: Store,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    now = now_of(request)
    read = stores.stores_read(db, [store], now=now)[0]
    context = _form_context(db, values or form_values(store, read.category), errors or {})
    context |= {
        "store": read,
        "status_zh": stores.STATUS_ZH,
        "category_zh": {c.code: c.name_zh for c in context["categories"]},
        "abroad": not in_china_offset_area(read.lat_gcj02, read.lng_gcj02),
        "can_edit": scope.is_owner and scope.merchant_status is MerchantStatus.approved,
        "can_close": scope.is_owner,
        "done": DONE_ZH.get(request.query_params.get("done", ""), ""),
    }
    user = request.state.portal_principal
    return render(request, "portal/stores_detail.html", context, user=user, status_code=status)


def _refused(exc: TianfuError) -> tuple[dict[str, str], int]:
    field = "category" if isinstance(exc, UnknownCategoryError) else "form"
    return {field: exc.message}, exc.status_code if exc.status_code < 500 else 422


def _created_detail(data: StoreCreate, store: Store) -> dict[str, Any]:
    position = stores.position_of(store)
    detail: dict[str, Any] = {"name": store.name, "position_gcj02": list(position)}
    if data.coord is not CoordSystem.GCJ02:
        detail["given"] = {"coord": data.coord.value, "lat": data.lat, "lng": data.lng}
    return detail


@router.get("", response_class=HTMLResponse)
def store_list(request: Request, db: DbSession, scope: Scope) -> Response:
    context = {
        "stores": stores.stores_read(db, db.scalars(scope.stores()), now=now_of(request)),
        "status_zh": stores.STATUS_ZH,
        "can_create": scope.is_owner and scope.merchant_status is MerchantStatus.approved,
        "limited": not scope.all_stores,
    }
    user = request.state.portal_principal
    return render(request, "portal/stores.html", context, user=user)


@router.get("/new", response_class=HTMLResponse)
def new_store_page(request: Request, db: DbSession, scope: OwnerPublishing) -> Response:
    values = {"coord": CoordSystem.GCJ02.value} | {f"hours_{day}": "10:00-22:00" for day in DAY_ZH}
    return _new_page(request, db, values=values, errors={}, status=200)


@router.post("", response_class=HTMLResponse)
def create_store(
    request: Request, db: DbSession, scope: OwnerPublishing, form: PortalForm
) -> Response:
    values = {key: value for key, value in form.items() if key != "csrf_token"}
    parsed = parse_store_form(form)
    if isinstance(parsed, dict):
        return _new_page(request, db, values=values, errors=parsed, status=422)
    try:
        with db.begin_nested():
            store = stores.create_store(db, merchant_id=scope.merchant_id, data=parsed)
    except TianfuError as exc:
        errors, status = _refused(exc)
        return _new_page(request, db, values=values, errors=errors, status=status)
    audit(db, request, action="store.created", target=store, detail=_created_detail(parsed, store))
    return see_other(f"/portal/stores/{store.id}?done=created")


@router.get("/{store_id}", response_class=HTMLResponse)
def store_page(request: Request, db: DbSession, scope: Scope, store_id: int) -> Response:
    return _store_page(request, db, scope, scope.get_store(db, store_id))


@router.post("/{store_id}", response_class=HTMLResponse)
def update_store(
    request: Request, db: DbSession, scope: OwnerPublishing, store_id: int, form: PortalForm
) -> Response:
    store = scope.get_store(db, store_id)
    values = {key: value for key, value in form.items() if key != "csrf_token"}
    parsed = parse_store_form(form)
    if isinstance(parsed, dict):
        return _store_page(request, db, scope, store, values=values, errors=parsed, status=422)
    try:
        with db.begin_nested():
            diff = stores.update_store(db, store, stores.StoreChanges.of_create(parsed))
    except TianfuError as exc:
        db.refresh(store)  # the savepoint is gone; show the store as it still is
        errors, status = _refused(exc)
        return _store_page(request, db, scope, store, values=values, errors=errors, status=status)
    if not diff:
        return see_other(f"/portal/stores/{store.id}?done=unchanged")
    audit(db, request, action="store.updated", target=store, detail=diff)
    return see_other(f"/portal/stores/{store.id}?done=saved")


def _status_change(request: Request, exc: TianfuError, store_id: int) -> Response:
    return message_page(
        request,
        status_code=exc.status_code,
        title="无法执行",
        message=exc.message,
        link=(f"/portal/stores/{store_id}", "返回门店"),
    )


@router.post("/{store_id}/close")
def close_store(
    request: Request, db: DbSession, scope: OwnerScope, store_id: int, form: PortalForm
) -> Response:
    store = scope.get_store(db, store_id)
    before = store.status
    permanent = form.get("permanent") == "1"
    try:
        with db.begin_nested():
            stores.close_store(db, store, permanent=permanent)
    except TianfuError as exc:
        return _status_change(request, exc, store.id)
    detail = {"status": [before.value, store.status.value]}
    audit(db, request, action="store.closed", target=store, detail=detail)
    return see_other(f"/portal/stores/{store.id}?done=closed")


@router.post("/{store_id}/reopen")
def reopen_store(
    request: Request, db: DbSession, scope: OwnerPublishing, store_id: int
) -> Response:
    store = scope.get_store(db, store_id)
    before = store.status
    try:
        with db.begin_nested():
            stores.reopen_store(db, store)
    except TianfuError as exc:
        return _status_change(request, exc, store.id)
    detail = {"status": [before.value, StoreStatus.open.value]}
    audit(db, request, action="store.reopened", target=store, detail=detail)
    return see_other(f"/portal/stores/{store.id}?done=reopened")


@api.get("/stores/{store_id}")
def store_json(request: Request, db: DbSession, scope: Scope, store_id: int) -> StoreRead:
    return stores.stores_read(db, [scope.get_store(db, store_id)], now=now_of(request))[0]
