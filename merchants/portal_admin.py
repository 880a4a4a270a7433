"""The bank's portal pages: the queue of merchant applications and the review of one (approve,
or reject with a reason per field), the merchants list with suspend / reinstate, and the audit
log with its filters. Bank admins only (`BankAdmin`: 403 for any other account)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants import audit as audit_log
from merchants import onboarding
from merchants.auth import BankAdmin, PortalForm, audit, now_of, portal_router
from merchants.errors import OutOfScopeError
from merchants.models import (
    ApplicationStatus,
    Category,
    Merchant,
    MerchantApplication,
    MerchantStatus,
)
from merchants.portal_forms import FIELD_LABELS, SuspendForm, parse_form
from merchants.portal_web import SHANGHAI, message_page, render, see_other
from tianfu.deps import DbSession
from tianfu.errors import TianfuError

router = portal_router("/portal/admin")

_DONE_ZH = {
    "approved": "已通过申请",
    "rejected": "已驳回申请",
    "suspended": "已暂停商户",
    "reinstated": "已恢复商户",
}


def _done(request: Request) -> str:
    return _DONE_ZH.get(request.query_params.get("done", ""), "")


def _refused(request: Request, exc: TianfuError, back: str) -> Response:
    return message_page(
        request,
        status_code=exc.status_code,
        title="无法执行",
        message=exc.message,
        link=(back, "返回"),
    )


# -- applications ---------------------------------------------------------------------------------


@router.get("/applications", response_class=HTMLResponse)
def applications(
    request: Request, db: DbSession, admin: BankAdmin, status: str = "submitted"
) -> Response:
    wanted = ApplicationStatus(status) if status in ApplicationStatus.__members__ else None
    rows = onboarding.latest_applications(db, status=wanted)
    context = {"rows": rows, "status": wanted.value if wanted else "all", "done": _done(request)}
    return render(request, "portal/admin_applications.html", context, user=admin)


def _application(db: Session, application_id: int) -> MerchantApplication:
    application = db.get(MerchantApplication, application_id)
    if application is None:
        raise OutOfScopeError("申请不存在")
    return application


def _review_page(
    request: Request,
    db: Session,
    application: MerchantApplication,
    *,
    admin: Any,
    errors: dict[str, str] | None = None,
    reasons: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    merchant = db.get(Merchant, application.merchant_id)
    previous = onboarding.previous_version(db, application)
    names: dict[int, str] = dict(db.execute(select(Category.id, Category.name_zh)).all())
    shown = {
        "business_name": application.business_name,
        "licence_no": application.licence_no,
        "contact_name": application.contact_name,
        "contact_phone": application.contact_phone,
        "category": names.get(application.category_id, ""),
    }
    before = (
        {
            "business_name": previous.business_name,
            "licence_no": previous.licence_no,
            "contact_name": previous.contact_name,
            "contact_phone": previous.contact_phone,
            "category": names.get(previous.category_id, ""),
        }
        if previous
        else {}
    )
    context = {
        "application": application,
        "merchant": merchant,
        "shown": shown,
        "before": before,
        "previous": previous,
        "labels": FIELD_LABELS,
        "fields": onboarding.REVIEWABLE_FIELDS,
        "errors": errors or {},
        "reasons": reasons or {},
    }
    return render(request, "portal/admin_review.html", context, user=admin, status_code=status)


@router.get("/applications/{application_id}", response_class=HTMLResponse)
def review_page(request: Request, db: DbSession, admin: BankAdmin, application_id: int) -> Response:
    return _review_page(request, db, _application(db, application_id), admin=admin)


@router.post("/applications/{application_id}/approve")
def approve(request: Request, db: DbSession, admin: BankAdmin, application_id: int) -> Response:
    _application(db, application_id)
    try:
        with db.begin_nested():
            application = onboarding.approve(
                db,
                application_id=application_id,
                reviewer_id=admin.account_id,
                now=now_of(request),
            )
    except TianfuError as exc:
        return _refused(request, exc, f"/portal/admin/applications/{application_id}")
    audit(
        db,
        request,
        action="application.approved",
        target=application,
        detail={"version": application.version},
    )
    return see_other("/portal/admin/applications?done=approved")


@router.post("/applications/{application_id}/reject")
def reject(
    request: Request, db: DbSession, admin: BankAdmin, application_id: int, form: PortalForm
) -> Response:
    application = _application(db, application_id)
    reasons = {
        field: str(form.get(f"reason_{field}", "") or "") for field in onboarding.REVIEWABLE_FIELDS
    }
    try:
        with db.begin_nested():
            application = onboarding.reject(
                db,
                application_id=application_id,
                reviewer_id=admin.account_id,
                reasons=reasons,
                now=now_of(request),
            )
    except TianfuError as exc:
        if exc.status_code == 422:
            return _review_page(
                request,
                db,
                application,
                admin=admin,
                errors={"reasons": exc.message},
                reasons=reasons,
                status=422,
            )
        return _refused(request, exc, f"/portal/admin/applications/{application_id}")
    audit(
        db,
        request,
        action="application.rejected",
        target=application,
        detail={"version": application.version, "reasons": application.field_reasons},
    )
    return see_other("/portal/admin/applications?done=rejected")


# -- merchants ------------------------------------------------------------------------------------


@router.get("/merchants", response_class=HTMLResponse)
def merchants(request: Request, db: DbSession, admin: BankAdmin, status: str = "") -> Response:
    statement = select(Merchant).order_by(Merchant.id.desc()).limit(200)
    if status in MerchantStatus.__members__:
        statement = statement.where(Merchant.status == MerchantStatus(status))
    context = {
        "merchants": list(db.scalars(statement)),
        "status": status,
        "done": _done(request),
        "errors": {},
    }
    return render(request, "portal/admin_merchants.html", context, user=admin)


def _merchant(db: Session, merchant_id: int) -> Merchant:
    merchant = db.get(Merchant, merchant_id)
    if merchant is None:
        raise OutOfScopeError("商户不存在")
    return merchant


@router.post("/merchants/{merchant_id}/suspend")
def suspend(
    request: Request, db: DbSession, admin: BankAdmin, merchant_id: int, form: PortalForm
) -> Response:
    _merchant(db, merchant_id)
    parsed = parse_form(SuspendForm, form)
    if isinstance(parsed, dict):
        return message_page(
            request,
            status_code=422,
            title="无法执行",
            message=parsed["reason"],
            link=("/portal/admin/merchants", "返回"),
        )
    try:
        with db.begin_nested():
            merchant = onboarding.suspend(db, merchant_id=merchant_id)
    except TianfuError as exc:
        return _refused(request, exc, "/portal/admin/merchants")
    audit(
        db, request, action="merchant.suspended", target=merchant, detail={"reason": parsed.reason}
    )
    return see_other("/portal/admin/merchants?done=suspended")


@router.post("/merchants/{merchant_id}/reinstate")
def reinstate(request: Request, db: DbSession, admin: BankAdmin, merchant_id: int) -> Response:
    _merchant(db, merchant_id)
    try:
        with db.begin_nested():
            merchant = onboarding.reinstate(db, merchant_id=merchant_id)
    except TianfuError as exc:
        return _refused(request, exc, "/portal/admin/merchants")
    audit(db, request, action="merchant.reinstated", target=merchant)
    return see_other("/portal/admin/merchants?done=reinstated")


# -- the audit log --------------------------------------------------------------------------------


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 10 else None


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, db: DbSession, admin: BankAdmin) -> Response:
    params = request.query_params
    since, until = _day(params.get("since", "")), _day(params.get("until", ""))
    # Dates are days in Shanghai; "until" includes its whole day.
    query = audit_log.AuditQuery(
        actor=params.get("actor", "").strip().lower()[:64] or None,
        merchant_id=_int(params.get("merchant_id", "")),
        action=params.get("action") if params.get("action") in audit_log.ACTION_LABELS else None,
        since=datetime.combine(since, time(), SHANGHAI) if since else None,
        until=datetime.combine(until + timedelta(days=1), time(), SHANGHAI) if until else None,
    )
    entries = audit_log.search(db, query, before_id=_int(params.get("before", "")))
    filters = {
        key: params.get(key, "") for key in ("actor", "merchant_id", "action", "since", "until")
    }
    more = len(entries) == audit_log.PAGE_SIZE
    context: dict[str, Any] = {
        "entries": entries,
        "filters": filters,
        "actions": audit_log.ACTION_LABELS,
        "targets": audit_log.TARGET_LABELS,
        "next_before": entries[-1].id if more else None,
    }
    return render(request, "portal/audit.html", context, user=admin)
