"""The portal's gate through the real app (in process), on committed data of each backend:
logging in and out, cookies and headers, lock-out, CSRF, expired sessions, and hostile input
(oversized fields and bodies, markup in names) answered with a clear 4xx that changes nothing."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from merchants.models import (
    ApplicationStatus,
    AuditEntry,
    Merchant,
    MerchantApplication,
    PortalSession,
)
from tests.merchants.conftest import Clients, Committed, portal_test_settings
from tests.merchants.portal_support import (
    PASSWORD,
    csrf_of,
    licence,
    log_in,
    make_admin,
    make_applicant,
    session_cookie,
    unique,
)
from tianfu.app import create_app

pytestmark = pytest.mark.anyio


def signup_form(csrf: str, **changes: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "business_name": "蜀味老灶火锅",
        "licence_no": licence(),
        "contact_name": "王小明",
        "contact_phone": "13800138000",
        "category": "hotpot",
        "username": unique("owner"),
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    } | changes


def counts(committed: Committed) -> tuple[int, int, int]:
    with committed() as session:
        return (
            session.scalar(select(func.count()).select_from(Merchant)) or 0,
            session.scalar(select(func.count()).select_from(MerchantApplication)) or 0,
            session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


def set_cookie(response: httpx.Response, name: str) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    return header


# -- logging in and out ---------------------------------------------------------------------------


async def test_the_login_page_is_strict_about_caching_framing_and_scripts(clients: Clients) -> None:
    page = await clients().get("/portal/login")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    (nonce,) = set(re.findall(r"'nonce-([\w-]+)'", csp))
    assert f'<style nonce="{nonce}">' in page.text
    assert "http://" not in page.text.replace("http://tianfu.test", "")  # nothing external
    cookie = set_cookie(page, "tianfu_portal_csrf").lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/portal" in cookie


async def test_a_page_without_a_session_sends_the_browser_to_log_in(clients: Clients) -> None:
    answer = await clients().get("/portal/admin/audit")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/login?next=/portal/admin/audit"
    api = await clients().get("/api/v1/portal/me")
    assert api.status_code == 401
    assert api.json() == {"error": "portal_login_required", "detail": "请先登录"}


async def test_login_sets_an_httponly_lax_cookie_and_logout_ends_the_session(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
    browser = clients()
    page = await browser.get("/portal/login?next=/portal/admin/applications")
    answer = await browser.post(
        "/portal/login",
        data={"username": admin.username.upper(), "password": PASSWORD,
              "csrf_token": csrf_of(page), "next": "/portal/admin/applications"},
    )  # fmt: skip
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/admin/applications"
    cookie = set_cookie(answer, "tianfu_portal").lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # served over http here
    token = browser.cookies["tianfu_portal"]

    home = await browser.get("/portal")
    assert home.status_code == 200
    assert "商户审核" in home.text
    bye = await browser.post("/portal/logout", data={"csrf_token": csrf_of(home)})
    assert (bye.status_code, bye.headers["location"]) == (303, "/portal/login")
    # The old cookie, replayed, is no session: it was revoked on the server.
    stranger = clients()
    stranger.cookies.set("tianfu_portal", token)
    replay = await stranger.get("/portal")
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/portal/login")


async def test_the_cookie_is_secure_when_the_portal_is_served_over_https(
    portal_db_url: str, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
    app = create_app(portal_test_settings(portal_db_url, public_base_url="https://bank.example"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://bank.example") as browser:
        page = await browser.get("/portal/login")
        assert "secure" in set_cookie(page, "tianfu_portal_csrf").lower()
        answer = await browser.post(
            "/portal/login",
            data={"username": admin.username, "password": PASSWORD, "csrf_token": csrf_of(page)},
        )
        assert "secure" in set_cookie(answer, "tianfu_portal").lower()
    app.state.engine.dispose()


@pytest.mark.parametrize(
    "next_path", ["//evil.example/x", "https://evil.example", "/h5/me", "/portal/../x"]
)
async def test_login_never_redirects_off_the_portal(
    clients: Clients, committed: Committed, next_path: str
) -> None:
    with committed() as session:
        admin = make_admin(session)
    browser = clients()
    page = await browser.get("/portal/login")
    answer = await browser.post(
        "/portal/login",
        data={"username": admin.username, "password": PASSWORD, "csrf_token": csrf_of(page),
              "next": next_path},
    )  # fmt: skip
    assert answer.headers["location"] == "/portal"


async def test_five_wrong_passwords_lock_the_account_and_are_audited(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
    browser = clients()
    csrf = csrf_of(await browser.get("/portal/login"))

    async def attempt(password: str) -> httpx.Response:
        form = {"username": admin.username, "password": password, "csrf_token": csrf}
        return await browser.post("/portal/login", data=form)

    for _ in range(4):
        wrong = await attempt("wrong password!")
        assert wrong.status_code == 401
        assert "用户名或密码错误" in wrong.text
    locked = await attempt("wrong password!")
    assert locked.status_code == 401
    assert "账号已临时锁定" in locked.text
    right = await attempt(PASSWORD)
    assert right.status_code == 401
    assert "tianfu_portal" not in browser.cookies
    with committed() as session:
        entries = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.actor_account_id == admin.id)
            .order_by(AuditEntry.id)
        ).all()
    assert [(e.action, e.detail["reason"]) for e in entries] == [
        *[("login.failed", "bad_credentials")] * 4,
        ("login.locked", "bad_credentials"),
        ("login.failed", "locked"),  # the right password, while locked
    ]
    assert {e.ip for e in entries} == {"127.0.0.1"}


async def test_an_unknown_username_gets_the_same_answer(clients: Clients) -> None:
    browser = clients()
    csrf = csrf_of(await browser.get("/portal/login"))
    answer = await browser.post(
        "/portal/login", data={"username": "nobody", "password": PASSWORD, "csrf_token": csrf}
    )
    assert answer.status_code == 401
    assert "用户名或密码错误" in answer.text


# -- CSRF ----------------------------------------------------------------------------------------


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
        applicant = make_applicant(session)
    browser = clients()
    await log_in(browser, admin.username)
    path = f"/portal/admin/applications/{applicant.application.id}/approve"
    before = counts(committed)
    for form in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
        answer = await browser.post(path, data=form)
        assert answer.status_code == 403
        assert "安全校验失败" in answer.text
    api = await browser.delete("/api/v1/portal/session", headers={"X-CSRF-Token": "forged"})
    assert (api.status_code, api.json()["error"]) == (403, "csrf_rejected")
    assert counts(committed) == before
    with committed() as session:
        application = session.get(MerchantApplication, applicant.application.id)
        assert application is not None
        assert application.status is ApplicationStatus.submitted
    assert (await browser.get("/portal")).status_code == 200  # still logged in


async def test_login_and_sign_up_need_the_pre_session_token(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
    browser = clients()
    await browser.get("/portal/login")  # the cookie is set, but the form does not repeat it
    form = {"username": admin.username, "password": PASSWORD}
    assert (await browser.post("/portal/login", data=form)).status_code == 403
    # A token minted for another browser does not fit this one's cookie.
    stranger = csrf_of(await clients().get("/portal/login"))
    refused = await browser.post("/portal/login", data=form | {"csrf_token": stranger})
    assert refused.status_code == 403
    before = counts(committed)
    signup = await clients().post("/portal/signup", data=signup_form(""))
    assert signup.status_code == 403
    assert counts(committed) == before


# -- expired sessions ------------------------------------------------------------------------------


async def test_an_idle_session_is_sent_to_log_in_and_its_posts_get_401(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
        applicant = make_applicant(session)
        token, csrf = session_cookie(session, admin, age=timedelta(minutes=31))
    browser = clients()
    browser.cookies.set("tianfu_portal", token)
    page = await browser.get("/portal/admin/applications")
    assert page.status_code == 303
    assert page.headers["location"] == "/portal/login?next=/portal/admin/applications"
    assert 'tianfu_portal=""' in set_cookie(page, "tianfu_portal")  # the stale cookie is dropped
    browser.cookies.set("tianfu_portal", token)
    before = counts(committed)
    path = f"/portal/admin/applications/{applicant.application.id}/approve"
    post = await browser.post(path, data={"csrf_token": csrf})
    assert post.status_code == 401
    assert "登录已过期" in post.text
    browser.cookies.set("tianfu_portal", token)
    api = await browser.get("/api/v1/portal/me")
    assert (api.status_code, api.json()["detail"]) == (401, "登录已过期，请重新登录")
    assert counts(committed) == before


async def test_a_live_session_is_kept_alive_by_requests(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
        token, _csrf = session_cookie(session, admin, age=timedelta(minutes=29))
    browser = clients()
    browser.cookies.set("tianfu_portal", token)
    assert (await browser.get("/api/v1/portal/me")).status_code == 200
    with committed() as session:
        row = session.scalars(
            select(PortalSession).where(PortalSession.account_id == admin.id)
        ).one()
        assert row.last_seen_at > row.created_at + timedelta(minutes=28)


# -- hostile input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("business_name", "火" * 5000, "商户名称不能超过60个字符"),
        ("contact_name", "王" * 33, "联系人不能超过32个字符"),
        ("licence_no", "<script>", "统一社会信用代码应为18位数字或大写字母"),
        ("contact_phone", "12345", "请填写11位手机号或带区号的固定电话"),
        ("business_name", "名字\x00隐藏", "不能包含控制字符"),
        ("category", "no-such-category", "经营类目不存在"),
    ],
)
async def test_bad_sign_up_fields_get_a_422_naming_the_field_and_change_nothing(
    clients: Clients, committed: Committed, field: str, value: str, message: str
) -> None:
    browser = clients()
    csrf = csrf_of(await browser.get("/portal/signup"))
    before = counts(committed)
    answer = await browser.post("/portal/signup", data=signup_form(csrf, **{field: value}))
    assert answer.status_code == 422
    assert message in answer.text
    assert f'data-testid="error-{field}"' in answer.text
    assert counts(committed) == before
    assert "tianfu_portal" not in browser.cookies


async def test_a_body_over_the_limit_gets_413_and_a_mangled_one_400(clients: Clients) -> None:
    browser = clients()
    csrf = csrf_of(await browser.get("/portal/signup"))
    huge = await browser.post("/portal/signup", data=signup_form(csrf, business_name="x" * 70_000))
    assert huge.status_code == 413
    assert "提交的内容过大" in huge.text
    mangled = await browser.post(
        "/portal/signup",
        content=b"csrf_token=" + csrf.encode() + b"&business_name=%FF%FE",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert mangled.status_code == 400


async def test_markup_in_a_business_name_is_shown_as_text_to_the_reviewer(
    clients: Clients, committed: Committed
) -> None:
    name = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    merchant_browser = clients()
    csrf = csrf_of(await merchant_browser.get("/portal/signup"))
    form = signup_form(csrf, business_name=name)
    signed_up = await merchant_browser.post("/portal/signup", data=form)
    assert signed_up.status_code == 303
    with committed() as session:
        admin = make_admin(session)
        application = session.scalars(
            select(MerchantApplication).where(MerchantApplication.business_name == name)
        ).one()
    admin_browser = clients()
    await log_in(admin_browser, admin.username)
    for path in (f"/portal/admin/applications/{application.id}", "/portal/admin/applications",
                 "/portal/admin/merchants"):  # fmt: skip
        page = await admin_browser.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


async def test_a_json_body_on_a_portal_post_needs_the_header_token(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
    browser = clients()
    csrf = await log_in(browser, admin.username)
    # The token in a JSON body is not read: only the header counts for non-form bodies.
    body: dict[str, Any] = {"csrf_token": csrf}
    refused = await browser.request("DELETE", "/api/v1/portal/session", json=body)
    assert refused.status_code == 403
    done = await browser.delete("/api/v1/portal/session", headers={"X-CSRF-Token": csrf})
    assert done.status_code == 204
    assert (await browser.get("/api/v1/portal/me")).status_code == 401
