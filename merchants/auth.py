"""The partner portal's gate: who is this request (a server-side session behind the
`tianfu_portal` cookie), may it do this (role, merchant scope), is this form really from our page
(CSRF), and the audit helper that records a change with who, when and from where.

Routers that need a login come from `portal_router()` / `portal_api_router()`: every route on
them is behind the session and, for unsafe methods, the CSRF check, whether or not the route
asks for the user. A route then takes what it needs:

    def page(user: PortalUser) ...            # any logged-in account
    def page(admin: BankAdmin) ...            # bank admins only (403 for anyone else)
    def page(scope: Scope) ...                # a merchant account and its MerchantScope
    def page(scope: OwnerScope) ...           # the merchant's owner only
    def page(scope: PublishingScope) ...      # a merchant account of an approved merchant

Pages for visitors without a session (login, sign-up) live on `public_router()`, whose unsafe
requests carry a pre-session CSRF token: a signed random value in the `tianfu_portal_csrf` cookie
that the form repeats.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from itsdangerous import BadSignature, Signer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from merchants import accounts, sessions
from merchants import audit as audit_log
from merchants.accounts import LoginPolicy
from merchants.config import PortalSettings
from merchants.errors import (
    CsrfRejectedError,
    LoginRequiredError,
    PortalForbiddenError,
)
from merchants.forms_io import read_form
from merchants.models import (
    AuditEntry,
    Merchant,
    MerchantStatus,
    PortalAccount,
    PortalRole,
    PortalSession,
)
from merchants.scope import MerchantScope
from tianfu.deps import DbSession
from tianfu.orm import Base, utcnow
from tianfu.settings import ConfigurationError, TianfuSettings

SESSION_COOKIE = "tianfu_portal"
CSRF_COOKIE = "tianfu_portal_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PATH = "/portal/login"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_SALT = "tianfu.portal.csrf"

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Principal:
    """The logged-in account of this request, as its session found it."""

    account_id: int
    username: str
    display_name: str
    role: PortalRole
    merchant_id: int | None
    session_id: str
    csrf_token: str

    @property
    def is_bank_admin(self) -> bool:
        return self.role is PortalRole.bank_admin

    @property
    def is_owner(self) -> bool:
        return self.role is PortalRole.merchant_owner

    @classmethod
    def of(cls, account: PortalAccount, session: PortalSession) -> Principal:
        return cls(
            account_id=account.id,
            username=account.username,
            display_name=account.display_name,
            role=account.role,
            merchant_id=account.merchant_id,
            session_id=session.id,
            csrf_token=session.csrf_token,
        )


# -- request context ------------------------------------------------------------------------------


def app_settings(request: Request) -> TianfuSettings:
    settings: TianfuSettings = request.app.state.settings
    return settings


def portal_settings(request: Request) -> PortalSettings:
    return app_settings(request).portal


def now_of(request: Request) -> datetime:
    """The portal's clock: `app.state.portal_clock` if a test set one, else the real time."""
    clock: Clock = getattr(request.app.state, "portal_clock", utcnow)
    return clock()


def client_ip(request: Request) -> str:
    # uvicorn's proxy_headers (tianfu serve) puts the X-Forwarded-For client here.
    return request.client.host if request.client else ""


def login_policy(request: Request) -> LoginPolicy:
    return LoginPolicy.from_settings(portal_settings(request))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or app_settings(request).public_base_url.startswith(
        "https://"
    )


def _secret(request: Request) -> str:
    secret = app_settings(request).secret_key
    if secret is None:
        raise ConfigurationError("TIANFU_SECRET_KEY is needed for the partner portal (dev-env)")
    return secret.get_secret_value()


PortalForm = Annotated[FormData, Depends(read_form)]


def supplied_csrf(request: Request, form: FormData) -> str:
    value = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD) or ""
    return value if isinstance(value, str) else ""


def _same(expected: str, supplied: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), supplied.encode())


# -- the session ----------------------------------------------------------------------------------


def current_principal(request: Request, db: Session) -> Principal | None:
    """The live session of this request's cookie, or None (looked up once per request)."""
    if hasattr(request.state, "portal_principal"):
        cached: Principal | None = request.state.portal_principal
        return cached
    token = request.cookies.get(SESSION_COOKIE, "")
    found = (
        sessions.resolve_session(
            db,
            token=token,
            now=now_of(request),
            idle_timeout=portal_settings(request).idle_timeout,
        )
        if token
        else None
    )
    principal = Principal.of(found[1], found[0]) if found is not None else None
    request.state.portal_principal = principal
    return principal


def portal_guard(request: Request, db: DbSession, form: PortalForm) -> Principal:
    """A logged-in account (401 otherwise); for unsafe methods, the session's CSRF token too
    (403 otherwise). Refusals change nothing: they raise, and the transaction rolls back."""
    principal = current_principal(request, db)
    if principal is None:
        expired = bool(request.cookies.get(SESSION_COOKIE))
        raise LoginRequiredError("登录已过期，请重新登录" if expired else "请先登录")
    if request.method not in SAFE_METHODS and not _same(
        principal.csrf_token, supplied_csrf(request, form)
    ):
        raise CsrfRejectedError("安全校验失败（CSRF 令牌缺失或不符），请刷新页面后重试")
    return principal


PortalUser = Annotated[Principal, Depends(portal_guard)]


def require_bank_admin(user: PortalUser) -> Principal:
    if not user.is_bank_admin:
        raise PortalForbiddenError("仅银行管理员可以访问")
    return user


BankAdmin = Annotated[Principal, Depends(require_bank_admin)]


def merchant_scope(user: PortalUser, db: DbSession) -> MerchantScope:
    if user.merchant_id is None:
        raise PortalForbiddenError("仅商户账号可以访问")
    status = db.scalar(select(Merchant.status).where(Merchant.id == user.merchant_id))
    store_ids = (
        accounts.staff_store_ids(db, user.account_id)
        if user.role is PortalRole.merchant_staff
        else frozenset()
    )
    return MerchantScope(
        account_id=user.account_id,
        role=user.role,
        merchant_id=user.merchant_id,
        merchant_status=status or MerchantStatus.pending,
        store_ids=store_ids or None,
    )


Scope = Annotated[MerchantScope, Depends(merchant_scope)]


def require_owner(scope: Scope) -> MerchantScope:
    if not scope.is_owner:
        raise PortalForbiddenError("仅商户负责人可以执行此操作")
    return scope


OwnerScope = Annotated[MerchantScope, Depends(require_owner)]


def require_publishing(scope: Scope) -> MerchantScope:
    scope.require_approved()
    return scope


PublishingScope = Annotated[MerchantScope, Depends(require_publishing)]


def start_session(
    db: Session, request: Request, response: Response, account: PortalAccount
) -> Principal:
    """Opens a session for a login that succeeded and sets its cookie on `response`."""
    settings = portal_settings(request)
    token, row = sessions.open_session(
        db,
        account_id=account.id,
        now=now_of(request),
        lifetime=settings.session_lifetime,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_lifetime_s,
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    principal = Principal.of(account, row)
    request.state.portal_principal = principal
    return principal


def end_session(db: Session, request: Request, response: Response, user: Principal) -> None:
    sessions.revoke_session(db, session_id=user.session_id)
    forget_session(request, response)


def forget_session(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=_secure(request), httponly=True)


# -- CSRF before a session exists -----------------------------------------------------------------


def _pre_session_signer(request: Request) -> Signer:
    return Signer(_secret(request), salt=_CSRF_SALT)


def pre_session_token(request: Request) -> tuple[str, bool]:
    """(the token for this visitor's forms, whether the cookie must be set)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if value and len(value) < 200:
        try:
            _pre_session_signer(request).unsign(value)
            return value, False
        except BadSignature:
            pass
    token = _pre_session_signer(request).sign(secrets.token_urlsafe(24)).decode("ascii")
    return token, True


def set_pre_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, path="/portal", secure=_secure(request), httponly=True, samesite="lax"
    )


def public_csrf_guard(request: Request, form: PortalForm) -> None:
    if request.method in SAFE_METHODS:
        return
    cookie = request.cookies.get(CSRF_COOKIE, "")
    try:
        _pre_session_signer(request).unsign(cookie)
    except BadSignature:
        cookie = ""
    if not _same(cookie, supplied_csrf(request, form)):
        raise CsrfRejectedError("安全校验失败（CSRF 令牌缺失或不符），请刷新页面后重试")


# -- routers --------------------------------------------------------------------------------------


def portal_router(prefix: str = "/portal", **kwargs: Any) -> APIRouter:
    """A router of pages behind the login and CSRF check (see the module docstring)."""
    return APIRouter(
        prefix=prefix,
        dependencies=[Depends(portal_guard)],
        include_in_schema=False,
        tags=["portal"],
        **kwargs,
    )


def portal_api_router(prefix: str = "/api/v1/portal", **kwargs: Any) -> APIRouter:
    """A router of JSON endpoints behind the same session; unsafe methods need the session's
    CSRF token in the X-CSRF-Token header (pages put it in <meta name="csrf-token">)."""
    return APIRouter(prefix=prefix, dependencies=[Depends(portal_guard)], tags=["portal"], **kwargs)


def public_router(prefix: str = "/portal", **kwargs: Any) -> APIRouter:
    return APIRouter(
        prefix=prefix,
        dependencies=[Depends(public_csrf_guard)],
        include_in_schema=False,
        tags=["portal"],
        **kwargs,
    )


# -- audit ----------------------------------------------------------------------------------------


def audit(
    db: Session,
    request: Request,
    *,
    action: str,
    target: Base,
    detail: Mapping[str, Any] | None = None,
    merchant_id: int | None = None,
    actor: Principal | PortalAccount | None = None,
) -> AuditEntry:
    """Records a change made by this request: by its logged-in account (or `actor`, for
    requests that have none yet, such as a sign-up), now, from its client address."""
    who = actor or getattr(request.state, "portal_principal", None)
    if isinstance(who, Principal):
        audit_actor = audit_log.Actor(who.account_id, who.username, client_ip(request))
    elif isinstance(who, PortalAccount):
        audit_actor = audit_log.Actor.of(who, ip=client_ip(request))
    else:
        audit_actor = audit_log.Actor(None, "anonymous", client_ip(request))
    return audit_log.record(
        db,
        actor=audit_actor,
        action=action,
        target=target,
        detail=detail,
        merchant_id=merchant_id,
        now=now_of(request),
    )
