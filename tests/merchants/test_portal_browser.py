"""The partner portal in headless Chromium, against the real app served by uvicorn on loopback,
on committed data of each backend: a merchant signs up on a phone, a bank admin on a laptop
rejects the licence number with a reason, the merchant corrects and resubmits, the admin
approves, and the merchant's dashboard says so. Every request that leaves loopback is aborted
(and recorded); a CSP refusal or script error shows as a console error and fails the test.
Screenshots of the main pages go to tests/artifacts/portal/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from sqlalchemy import select

from merchants.models import Merchant
from tests.builders import make_store
from tests.h5_browser import PHONE, Outside, no_horizontal_overflow
from tests.lbs.live_app import base_url_of, loopback_socket, serving_until_ready
from tests.merchants.conftest import Committed, portal_test_settings
from tests.merchants.portal_support import PASSWORD, licence, make_admin, unique
from tianfu.app import create_app

LAPTOP: ViewportSize = {"width": 1280, "height": 800}
ARTIFACTS = Path(__file__).parents[1] / "artifacts" / "portal"
BUSINESS = "锦里<b>茶馆</b>"  # markup a merchant typed: shown as text everywhere


@dataclass(frozen=True)
class Live:
    base: str
    admin: str


@pytest.fixture(scope="module")
def live(portal_db_url: str, committed: Committed) -> Iterator[Live]:
    with committed() as session:
        admin = make_admin(session, username=unique("bank."))
    with loopback_socket() as sock:
        settings = portal_test_settings(portal_db_url, public_base_url=base_url_of(sock))
        with serving_until_ready(create_app(settings), sock) as base:
            yield Live(base, admin.username)


@dataclass
class Person:
    page: Page
    outside: Outside
    console_errors: list[str]


@pytest.fixture
def person(browser: Browser) -> Iterator[Any]:
    contexts: list[Any] = []

    def open_on(viewport: ViewportSize) -> Person:
        outside = Outside()
        context = browser.new_context(viewport=viewport, locale="zh-CN")
        contexts.append(context)
        context.route("**/*", outside)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        return Person(page, outside, errors)

    yield open_on
    for context in contexts:
        context.close()


def shot(page: Page, backend: str, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{backend}-{name}.png"), full_page=True)


def fits(page: Page) -> None:
    assert no_horizontal_overflow(page), f"{page.url} is wider than the screen"


def test_sign_up_reject_correct_resubmit_approve(
    live: Live, person: Any, backend: str, committed: Committed
) -> None:
    merchant: Person = person(PHONE)
    bank: Person = person(LAPTOP)
    m, b = merchant.page, bank.page
    owner = unique("owner")

    # The merchant signs up on a phone.
    m.goto(f"{live.base}/portal/signup")
    fits(m)
    shot(m, backend, "signup-phone")
    m.fill("#f-business_name", BUSINESS)
    m.fill("#f-licence_no", "91510100MA00000000")
    m.fill("#f-contact_name", "王小明")
    m.fill("#f-contact_phone", "13800138000")
    m.select_option("#f-category", "hotpot")
    m.fill("#f-username", owner)
    m.fill("#f-password", PASSWORD)
    m.fill("#f-password_confirm", PASSWORD)
    m.get_by_role("button", name="提交申请").click()
    expect(m).to_have_url(f"{live.base}/portal/application")
    expect(m.get_by_test_id("application-status")).to_have_text("审核中")
    assert "tianfu_portal" not in m.evaluate("document.cookie")  # HttpOnly
    fits(m)

    # The bank admin logs in on a laptop and rejects the licence number.
    b.goto(f"{live.base}/portal/admin/applications")
    expect(b).to_have_url(f"{live.base}/portal/login?next=/portal/admin/applications")
    shot(b, backend, "login")
    b.fill("#f-username", live.admin)
    b.fill("#f-password", PASSWORD)
    b.get_by_role("button", name="登录").click()
    expect(b).to_have_url(f"{live.base}/portal/admin/applications")
    row = b.get_by_test_id("application-row").filter(has_text=BUSINESS)
    row.get_by_role("link", name="审核").click()
    expect(b.get_by_test_id("review-title")).to_have_text(BUSINESS)
    shot(b, backend, "admin-review")
    b.fill("#r-licence_no", "与营业执照上的代码不一致")
    b.get_by_test_id("reject").click()
    expect(b.get_by_test_id("done")).to_have_text("已驳回申请")

    # The merchant sees the reason on the licence field, corrects it and resubmits.
    m.goto(f"{live.base}/portal")
    expect(m.get_by_test_id("application-hint")).to_contain_text("驳回")
    m.get_by_role("link", name="查看并修改").click()
    expect(m.get_by_test_id("reason-licence_no")).to_have_text("驳回原因：与营业执照上的代码不一致")
    expect(m.get_by_test_id("reason-business_name")).to_have_count(0)
    expect(m.locator("#f-business_name")).to_have_value(BUSINESS)
    fits(m)
    shot(m, backend, "application-rejected-phone")
    m.fill("#f-licence_no", licence())
    m.get_by_test_id("resubmit").click()
    expect(m.get_by_test_id("saved")).to_be_visible()
    expect(m.get_by_test_id("application-status")).to_have_text("审核中")

    # The admin sees what changed and approves.
    b.goto(f"{live.base}/portal/admin/applications")
    b.get_by_test_id("application-row").filter(has_text=BUSINESS).get_by_role(
        "link", name="审核"
    ).click()
    expect(b.get_by_test_id("changed-licence_no")).to_be_visible()
    b.get_by_test_id("approve").click()
    expect(b.get_by_test_id("done")).to_have_text("已通过申请")

    # The merchant's dashboard says approved.
    m.goto(f"{live.base}/portal")
    expect(m.get_by_test_id("merchant-status")).to_have_text("已通过")
    expect(m.get_by_test_id("merchant-name")).to_have_text(BUSINESS)
    fits(m)
    shot(m, backend, "dashboard-merchant-phone")

    # The other main pages, for the record and for their layout.
    with committed() as session:
        approved = session.scalars(select(Merchant).where(Merchant.name == BUSINESS)).one()
        make_store(session, merchant=approved, name="锦里茶馆(宽窄巷子店)")
    m.goto(f"{live.base}/portal/staff")
    fits(m)
    shot(m, backend, "staff-phone")
    for path, name in (("/portal", "dashboard-admin"), ("/portal/admin/merchants", "merchants"),
                       ("/portal/admin/audit", "audit")):  # fmt: skip
        b.goto(f"{live.base}{path}")
        fits(b)
        shot(b, backend, name)
    actions = b.locator('[data-testid="audit-row"]').evaluate_all(
        "rows => rows.map(r => r.dataset.action)"
    )
    assert actions[:4] == ["application.approved", "application.resubmitted",
                           "application.rejected", "login.succeeded"]  # fmt: skip
    b.set_viewport_size(PHONE)
    b.goto(f"{live.base}/portal/admin/audit")
    fits(b)
    shot(b, backend, "audit-phone")

    for who in (merchant, bank):
        assert who.outside.blocked == []
        assert who.console_errors == []
