"""Builders and HTTP helpers for the partner portal's tests.

Passwords are hashed with argon2id at the lowest cost (FAST_PORTAL): the real parameters take
about 0.2 s a hash, which the login flows would pay hundreds of times. One test checks the
defaults, and the rehash from these to them.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session

from merchants import onboarding, sessions
from merchants.accounts import LoginPolicy, create_account
from merchants.config import PortalSettings
from merchants.models import (
    ApplicationStatus,
    Merchant,
    MerchantApplication,
    MerchantStatus,
    PortalAccount,
    PortalRole,
)
from merchants.onboarding import ApplicationData
from tests.builders import category, make_merchant
from tianfu.orm import utcnow

FAST_PORTAL = PortalSettings(password_time_cost=1, password_memory_kib=1024, password_parallelism=1)
FAST_POLICY = LoginPolicy.from_settings(FAST_PORTAL)
FAST_HASHER = FAST_POLICY.hasher
PASSWORD = "correct horse battery"
# Settings overrides for load_settings(): the fast hasher for the app too.
PORTAL_OVERRIDES: dict[str, Any] = {"portal": FAST_PORTAL.model_dump()}
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def licence() -> str:
    """A well-formed 统一社会信用代码, different each call."""
    return "91510100" + "".join(
        secrets.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(10)
    )


def application_data(session: Session, **changes: Any) -> ApplicationData:
    values: dict[str, Any] = {
        "business_name": "蜀味老灶火锅",
        "licence_no": licence(),
        "contact_name": "王小明",
        "contact_phone": "13800138000",
        "category_id": category(session, "hotpot").id,
    }
    return ApplicationData(**(values | changes))


def make_account(
    session: Session,
    *,
    role: PortalRole,
    merchant: Merchant | None = None,
    username: str | None = None,
    password: str = PASSWORD,
) -> PortalAccount:
    return create_account(
        session,
        username=username or unique(role.value.split("_")[-1]),
        password=password,
        role=role,
        hasher=FAST_HASHER,
        merchant_id=merchant.id if merchant else None,
        display_name="",
    )


def make_admin(session: Session, **kwargs: Any) -> PortalAccount:
    return make_account(session, role=PortalRole.bank_admin, **kwargs)


def make_owner(session: Session, merchant: Merchant | None = None, **kwargs: Any) -> PortalAccount:
    merchant = merchant or make_merchant(session, name=unique("商户"))
    return make_account(session, role=PortalRole.merchant_owner, merchant=merchant, **kwargs)


def make_applicant(session: Session, **changes: Any) -> onboarding.SignUp:
    """A pending merchant, its owner and a submitted application (version 1)."""
    return onboarding.sign_up(
        session,
        username=unique("applicant"),
        password=PASSWORD,
        display_name="",
        data=application_data(session, **changes),
        hasher=FAST_HASHER,
        now=utcnow(),
    )


def approved_application(session: Session, merchant: Merchant) -> MerchantApplication:
    """An approved application for a merchant made by the builders (already approved)."""
    data = application_data(session, business_name=merchant.name)
    application = MerchantApplication(
        merchant_id=merchant.id, version=1, business_name=data.business_name,
        licence_no=data.licence_no, contact_name=data.contact_name,
        contact_phone=data.contact_phone, category_id=merchant.category_id,
        status=ApplicationStatus.approved, field_reasons={}, submitted_at=utcnow(),
        reviewed_at=utcnow(),
    )  # fmt: skip
    session.add(application)
    session.flush()
    assert merchant.status is MerchantStatus.approved
    return application


def session_cookie(
    session: Session, account: PortalAccount, *, age: timedelta = timedelta(0)
) -> tuple[str, str]:
    """(cookie token, CSRF token) of a session opened `age` ago, as a login would make it."""
    opened = utcnow() - age
    token, row = sessions.open_session(
        session, account_id=account.id, now=opened, lifetime=FAST_PORTAL.session_lifetime
    )
    return token, row.csrf_token


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF_META.search(page.text) or _CSRF_INPUT.search(page.text)
    assert found, f"no CSRF token on {page.request.url}"
    return found.group(1)


async def log_in(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Logs `http` in through the login page; the CSRF token of the new session."""
    page = await http.get("/portal/login")
    answer = await http.post(
        "/portal/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page)},
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(await http.get("/portal"))


def at(moment: datetime) -> Any:
    """A clock for app.state.portal_clock stopped at `moment`."""
    return lambda: moment
