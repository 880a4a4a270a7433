"""Portal pages every role meets: log in and out, a merchant's sign-up, the dashboard, the
owner's application (see the reasons of a rejection, correct, resubmit) and changing one's own
password. The bank's review pages are in portal_admin.py, staff management in portal_staff.py.

Changes go through the services inside a savepoint: a domain error rolls back what the service
had written, and the page shows the error (the request's transaction still commits nothing else).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchants import accounts, onboarding, sessions
from merchants.accounts import LoginRefusal
from merchants.auth import (
    OwnerScope,
    PortalForm,
    PortalUser,
    audit,
    current_principal,
    end_session,
    login_policy,
    now_of,
    portal_router,
    public_router,
    start_session,
)
from merchants.errors import (
    InvalidAccountError,
    LicenceInUseError,
    UnknownCategoryError,
    UsernameTakenError,
)
from merchants.models import (
    ApplicationStatus,
    Category,
    Merchant,
    MerchantApplication,
    MerchantStatus,
    PortalAccount,
)
from merchants.portal_forms import (
    FIELD_LABELS,
    ApplicationForm,
    LoginForm,
    PasswordChangeForm,
    SignupForm,
    parse_form,
)
from merchants.portal_web import message_page, render, render_public, see_other
from merchants.service import category_by_code
from tianfu.deps import DbSession
from tianfu.errors import TianfuError

public = public_router()
router = portal_router()

# Where a login may send the browser on: a portal page of ours, nothing else.
_NEXT_RE = re.compile(r"^/portal(/[A-Za-z0-9_\-/]*)?$")
APPLICATION_FIELDS = onboarding.REVIEWABLE_FIELDS


def safe_next(value: str) -> str:
    return value if _NEXT_RE.fullmatch(value) and "//" not in value else "/portal"


def category_id(db: Session, code: str) -> int:
    try:
        return category_by_code(db, code).id
    except UnknownCategoryError:
        raise UnknownCategoryError("经营类目不存在") from None


def categories(db: Session) -> list[Category]:
    return list(db.scalars(select(Category).order_by(Category.sort_order, Category.id)))


# -- logging in and out ---------------------------------------------------------------------------


@public.get("/login", response_class=HTMLResponse)
def login_page(request: Request, db: DbSession, next: str = "") -> Response:
    if current_principal(request, db) is not None:
        return see_other(safe_next(next))
    return render_public(request, "portal/login.html", {"next": safe_next(next), "error": ""})


def _refused_login(
    request: Request, db: Session, result: accounts.LoginResult, next_path: str
) -> Response:
    refusal = result.refusal or LoginRefusal.bad_credentials
    if result.account is not None:  # an unknown username has no account to note it on
        action = "login.locked" if result.just_locked else "login.failed"
        audit(
            db,
            request,
            action=action,
            target=result.account,
            detail={"reason": refusal.value},
            actor=result.account,
        )
    if refusal is LoginRefusal.disabled:
        text = "账号已停用，请联系商户负责人或银行管理员"
    elif result.locked_until is not None:
        text = "连续多次密码错误，账号已临时锁定，请稍后再试"
    else:
        text = "用户名或密码错误"
    context = {"next": next_path, "error": text}
    return render_public(request, "portal/login.html", context, status_code=401)


@public.post("/login", response_class=HTMLResponse)
def login(request: Request, db: DbSession, form: PortalForm) -> Response:
    parsed = parse_form(LoginForm, form)
    if isinstance(parsed, dict):
        context = {"next": "/portal", "error": "用户名或密码错误"}
        return render_public(request, "portal/login.html", context, status_code=422)
    result = accounts.authenticate(
        db,
        username=parsed.username,
        password=parsed.password,
        now=now_of(request),
        policy=login_policy(request),
    )
    if result.account is None or not result.ok:
        return _refused_login(request, db, result, safe_next(parsed.next))
    response = see_other(safe_next(parsed.next))
    previous = current_principal(request, db)
    if previous is not None:  # a second login in this browser replaces the first session
        sessions.revoke_session(db, session_id=previous.session_id)
    start_session(db, request, response, result.account)
    agent = request.headers.get("user-agent", "")[:120]
    audit(
        db, request, action="login.succeeded", target=result.account, detail={"user_agent": agent}
    )
    return response


@router.post("/logout")
def logout(request: Request, db: DbSession, user: PortalUser) -> Response:
    account = db.get(PortalAccount, user.account_id)
    assert account is not None  # the session's account, just looked up
    response = see_other("/portal/login")
    end_session(db, request, response, user)
    audit(db, request, action="logout", target=account)
    return response


# -- signing up -----------------------------------------------------------------------------------


def _signup_page(
    request: Request, db: Session, values: dict[str, Any], errors: dict[str, str], status: int
) -> Response:
    context = {
        "values": values,
        "errors": errors,
        "categories": categories(db),
        "labels": FIELD_LABELS,
    }
    return render_public(request, "portal/signup.html", context, status_code=status)


_FIELD_OF_ERROR: dict[type[TianfuError], str] = {
    UsernameTakenError: "username",
    LicenceInUseError: "licence_no",
    UnknownCategoryError: "category",
}


def _field_of(exc: TianfuError) -> str:
    if isinstance(exc, InvalidAccountError):
        return "username" if exc.message.startswith("用户名") else "password"
    return _FIELD_OF_ERROR.get(type(exc), "form")


@public.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request, db: DbSession) -> Response:
    if current_principal(request, db) is not None:
        return see_other("/portal")
    return _signup_page(request, db, {}, {}, 200)


@public.post("/signup", response_class=HTMLResponse)
def signup(request: Request, db: DbSession, form: PortalForm) -> Response:
    values = {key: value for key, value in form.items() if "password" not in key}
    parsed = parse_form(SignupForm, form)
    if isinstance(parsed, dict):
        return _signup_page(request, db, values, parsed, 422)
    if not parsed.matching():
        return _signup_page(request, db, values, {"password_confirm": "两次输入的密码不一致"}, 422)
    try:
        with db.begin_nested():
            done = onboarding.sign_up(
                db,
                username=parsed.username,
                password=parsed.password,
                display_name=parsed.display_name,
                data=parsed.data(category_id(db, parsed.category)),
                hasher=login_policy(request).hasher,
                now=now_of(request),
            )
    except TianfuError as exc:
        status = exc.status_code if exc.status_code < 500 else 422
        return _signup_page(request, db, values, {_field_of(exc): exc.message}, status)
    response = see_other("/portal/application")
    start_session(db, request, response, done.account)
    audit(
        db,
        request,
        action="merchant.signed_up",
        target=done.merchant,
        detail={"application_version": 1, "username": done.account.username},
    )
    return response


# -- the dashboard --------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, db: DbSession, user: PortalUser) -> Response:
    if user.is_bank_admin:
        waiting = db.scalar(
            select(func.count())
            .select_from(MerchantApplication)
            .where(MerchantApplication.status == ApplicationStatus.submitted)
        )
        counts = db.execute(select(Merchant.status, func.count()).group_by(Merchant.status))
        by_status = dict(counts.all())
        context: dict[str, Any] = {"waiting": waiting or 0, "by_status": by_status}
        return render(request, "portal/dashboard_admin.html", context, user=user)
    assert user.merchant_id is not None
    merchant = db.get(Merchant, user.merchant_id)
    assert merchant is not None
    application = onboarding.latest_application(db, merchant.id)
    context = {
        "merchant": merchant,
        "application": application,
        "approved": merchant.status is MerchantStatus.approved,
    }
    return render(request, "portal/dashboard_merchant.html", context, user=user)


# -- the owner's application ----------------------------------------------------------------------


def _application_page(
    request: Request,
    db: Session,
    scope: Any,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    user = request.state.portal_principal
    history = onboarding.application_history(db, scope.merchant_id)
    if not history:
        return message_page(
            request,
            status_code=404,
            title="没有入驻申请",
            message="本商户由银行直接开通，没有入驻申请。",
            link=("/portal", "返回首页"),
        )
    current = history[0]
    category_codes = {c.id: c.code for c in categories(db)}
    shown = values or {
        "business_name": current.business_name,
        "licence_no": current.licence_no,
        "contact_name": current.contact_name,
        "contact_phone": current.contact_phone,
        "category": category_codes.get(current.category_id, ""),
    }
    context = {
        "current": current,
        "history": history,
        "values": shown,
        "errors": errors or {},
        "categories": categories(db),
        "labels": FIELD_LABELS,
        "fields": APPLICATION_FIELDS,
        "saved": request.query_params.get("ok") == "1",
    }
    return render(request, "portal/application.html", context, user=user, status_code=status)


@router.get("/application", response_class=HTMLResponse)
def application_page(request: Request, db: DbSession, scope: OwnerScope) -> Response:
    return _application_page(request, db, scope)


@router.post("/application", response_class=HTMLResponse)
def resubmit_application(
    request: Request, db: DbSession, scope: OwnerScope, form: PortalForm
) -> Response:
    values = dict(form.items())
    parsed = parse_form(ApplicationForm, form)
    if isinstance(parsed, dict):
        return _application_page(request, db, scope, values=values, errors=parsed, status=422)
    try:
        with db.begin_nested():
            application = onboarding.resubmit(
                db,
                merchant_id=scope.merchant_id,
                account_id=scope.account_id,
                data=parsed.data(category_id(db, parsed.category)),
                now=now_of(request),
            )
    except TianfuError as exc:
        errors = {_field_of(exc): exc.message}
        status = exc.status_code if exc.status_code < 500 else 422
        return _application_page(request, db, scope, values=values, errors=errors, status=status)
    audit(
        db,
        request,
        action="application.resubmitted",
        target=application,
        detail={"version": application.version},
    )
    return see_other("/portal/application?ok=1")


# -- one's own password ---------------------------------------------------------------------------


@router.get("/password", response_class=HTMLResponse)
def password_page(request: Request, user: PortalUser) -> Response:
    context = {"errors": {}, "saved": request.query_params.get("ok") == "1"}
    return render(request, "portal/password.html", context, user=user)


@router.post("/password", response_class=HTMLResponse)
def change_password(
    request: Request, db: DbSession, user: PortalUser, form: PortalForm
) -> Response:
    parsed = parse_form(PasswordChangeForm, form)
    errors = parsed if isinstance(parsed, dict) else {}
    if not errors and not isinstance(parsed, dict) and not parsed.matching():
        errors = {"password_confirm": "两次输入的密码不一致"}
    if not errors and not isinstance(parsed, dict):
        try:
            with db.begin_nested():
                account = accounts.change_password(
                    db,
                    account_id=user.account_id,
                    current=parsed.current_password,
                    new=parsed.password,
                    hasher=login_policy(request).hasher,
                )
                # Every other session of this account ends: a stolen one stops working.
                sessions.revoke_account_sessions(
                    db, account_id=user.account_id, keep_session_id=user.session_id
                )
        except TianfuError as exc:
            errors = {"current_password" if "当前" in exc.message else "password": exc.message}
        else:
            audit(db, request, action="account.password_changed", target=account)
            return see_other("/portal/password?ok=1")
    context = {"errors": errors, "saved": False}
    return render(request, "portal/password.html", context, user=user, status_code=422)
