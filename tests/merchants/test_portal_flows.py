"""Portal flows through the real app (in process) on each backend: onboarding from sign-up to
approval, suspend and reinstate, an owner's staff, changing a password, the audit page, and a
route of a later page that reads its own form."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Form
from sqlalchemy import select

from merchants.auth import portal_router
from merchants.models import AuditEntry, Merchant, MerchantApplication, MerchantStatus
from tests.builders import make_merchant, make_store
from tests.merchants.conftest import Clients, Committed, portal_test_settings
from tests.merchants.portal_support import (
    PASSWORD,
    approved_application,
    csrf_of,
    licence,
    log_in,
    make_admin,
    make_owner,
    unique,
)
from tianfu.app import create_app

pytestmark = pytest.mark.anyio


async def sign_up(browser: httpx.AsyncClient, **changes: str) -> httpx.Response:
    csrf = csrf_of(await browser.get("/portal/signup"))
    form = {
        "csrf_token": csrf, "business_name": "蜀味老灶火锅", "licence_no": licence(),
        "contact_name": "王小明", "contact_phone": "028-86660000", "category": "hotpot",
        "username": unique("owner"), "password": PASSWORD, "password_confirm": PASSWORD,
    } | changes  # fmt: skip
    return await browser.post("/portal/signup", data=form)


def field_value(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" type="[a-z]+" value="([^"]*)"', page)
    assert found, name
    return found.group(1)


async def test_sign_up_reject_resubmit_approve(clients: Clients, committed: Committed) -> None:
    with committed() as session:
        admin = make_admin(session)
    merchant = clients()
    bad_licence = licence()
    signed_up = await sign_up(merchant, business_name="锦里茶馆", licence_no=bad_licence.lower())
    assert (signed_up.status_code, signed_up.headers["location"]) == (303, "/portal/application")
    mine = await merchant.get("/portal/application")
    assert 'data-testid="application-status">审核中<' in mine.text
    home = await merchant.get("/portal")
    assert 'data-testid="merchant-status">待审核<' in home.text
    with committed() as session:
        application = session.scalars(
            select(MerchantApplication).where(MerchantApplication.licence_no == bad_licence)
        ).one()  # stored upper-case
        merchant_id = application.merchant_id

    bank = clients()
    await log_in(bank, admin.username)
    queue = await bank.get("/portal/admin/applications")
    assert "锦里茶馆" in queue.text
    review = await bank.get(f"/portal/admin/applications/{application.id}")
    csrf = csrf_of(review)
    empty = await bank.post(f"/portal/admin/applications/{application.id}/reject",
                            data={"csrf_token": csrf})  # fmt: skip
    assert empty.status_code == 422
    assert "至少为一个字段填写原因" in empty.text
    rejected = await bank.post(
        f"/portal/admin/applications/{application.id}/reject",
        data={"csrf_token": csrf, "reason_licence_no": "与营业执照不一致", "reason_category": ""},
    )
    assert rejected.status_code == 303

    mine = await merchant.get("/portal/application")
    assert 'data-testid="reason-licence_no">驳回原因：与营业执照不一致<' in mine.text
    assert 'data-testid="reason-business_name"' not in mine.text
    assert field_value(mine.text, "business_name") == "锦里茶馆"  # the form comes filled in
    fixed = licence()
    resubmitted = await merchant.post(
        "/portal/application",
        data={"csrf_token": csrf_of(mine), "business_name": "锦里茶馆", "licence_no": fixed,
              "contact_name": "王小明", "contact_phone": "028-86660000", "category": "hotpot"},
    )  # fmt: skip
    assert resubmitted.headers["location"] == "/portal/application?ok=1"
    again = await merchant.get("/portal/application?ok=1")
    assert "第2版" in again.text
    assert "与营业执照不一致" in again.text  # in the history

    with committed() as session:
        second = session.scalars(
            select(MerchantApplication).where(MerchantApplication.licence_no == fixed)
        ).one()
    review = await bank.get(f"/portal/admin/applications/{second.id}")
    assert 'data-testid="changed-licence_no"' in review.text
    assert 'data-testid="changed-business_name"' not in review.text
    approved = await bank.post(f"/portal/admin/applications/{second.id}/approve",
                               data={"csrf_token": csrf_of(review)})  # fmt: skip
    assert approved.headers["location"] == "/portal/admin/applications?done=approved"
    twice = await bank.post(f"/portal/admin/applications/{second.id}/approve",
                            data={"csrf_token": csrf_of(review)})  # fmt: skip
    assert twice.status_code == 409

    home = await merchant.get("/portal")
    assert 'data-testid="merchant-status">已通过<' in home.text
    with committed() as session:
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.merchant_id == merchant_id)
            .order_by(AuditEntry.id)
        ).all()
    assert actions == ["merchant.signed_up", "application.rejected", "application.resubmitted",
                       "application.approved"]  # fmt: skip


async def test_an_admin_suspends_and_reinstates_an_approved_merchant(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
        merchant = make_merchant(session, name=unique("暂停测试"))
        approved_application(session, merchant)
    bank = clients()
    csrf = await log_in(bank, admin.username)
    path = f"/portal/admin/merchants/{merchant.id}"
    no_reason = await bank.post(f"{path}/suspend", data={"csrf_token": csrf, "reason": ""})
    assert no_reason.status_code == 422
    suspended = await bank.post(f"{path}/suspend", data={"csrf_token": csrf, "reason": "投诉核查"})
    assert suspended.headers["location"] == "/portal/admin/merchants?done=suspended"
    again = await bank.post(f"{path}/suspend", data={"csrf_token": csrf, "reason": "再次"})
    assert again.status_code == 409
    with committed() as session:
        assert session.get(Merchant, merchant.id).status is MerchantStatus.suspended  # type: ignore[union-attr]
    listed = await bank.get("/portal/admin/merchants?status=suspended")
    assert f'data-merchant-id="{merchant.id}"' in listed.text
    reinstated = await bank.post(f"{path}/reinstate", data={"csrf_token": csrf})
    assert reinstated.status_code == 303
    with committed() as session:
        assert session.get(Merchant, merchant.id).status is MerchantStatus.approved  # type: ignore[union-attr]
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.merchant_id == merchant.id, AuditEntry.action == "merchant.suspended"
            )
        ).one()
        assert (entry.actor_label, entry.detail) == (admin.username, {"reason": "投诉核查"})


async def test_an_owner_manages_staff_limited_to_a_store(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        merchant = make_merchant(session, name=unique("店员测试"))
        owner = make_owner(session, merchant)
        first = make_store(session, merchant=merchant, name="一号店")
        make_store(session, merchant=merchant, name="二号店")
    boss = clients()
    csrf = await log_in(boss, owner.username)
    staff_name = unique("cashier")
    created = await boss.post(
        "/portal/staff",
        data={"csrf_token": csrf, "username": staff_name, "password": PASSWORD,
              "password_confirm": PASSWORD, "store_id": str(first.id)},
    )  # fmt: skip
    assert created.status_code == 303, created.text
    taken = await boss.post(
        "/portal/staff",
        data={"csrf_token": csrf, "username": staff_name, "password": PASSWORD,
              "password_confirm": PASSWORD},
    )  # fmt: skip
    assert taken.status_code == 409
    assert "已被使用" in taken.text

    cashier = clients()
    await log_in(cashier, staff_name)
    stores = (await cashier.get("/api/v1/portal/stores")).json()
    assert [store["name"] for store in stores] == ["一号店"]
    assert (await cashier.get("/portal/staff")).status_code == 403
    assert (await cashier.get("/portal/application")).status_code == 403
    home = await cashier.get("/portal")
    assert "店员" not in re.findall(r'<nav class="nav".*?</nav>', home.text, re.S)[0]

    page = await boss.get("/portal/staff")
    staff_id = re.search(r'action="/portal/staff/(\d+)/disable"', page.text)
    assert staff_id
    disabled = await boss.post(
        f"/portal/staff/{staff_id.group(1)}/disable", data={"csrf_token": csrf}
    )
    assert disabled.status_code == 303
    assert (await cashier.get("/portal")).status_code == 303  # logged out at once


async def test_changing_the_password_ends_the_other_sessions(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
    laptop, phone = clients(), clients()
    csrf = await log_in(laptop, admin.username)
    await log_in(phone, admin.username)
    wrong = await laptop.post(
        "/portal/password",
        data={"csrf_token": csrf, "current_password": "not the one!",
              "password": "brand new secret", "password_confirm": "brand new secret"},
    )  # fmt: skip
    assert wrong.status_code == 422
    assert "当前密码不正确" in wrong.text
    changed = await laptop.post(
        "/portal/password",
        data={"csrf_token": csrf, "current_password": PASSWORD, "password": "brand new secret",
              "password_confirm": "brand new secret"},
    )  # fmt: skip
    assert changed.headers["location"] == "/portal/password?ok=1"
    assert (await laptop.get("/portal")).status_code == 200
    assert (await phone.get("/portal")).status_code == 303
    await log_in(clients(), admin.username, "brand new secret")


async def test_the_audit_page_filters_by_actor_action_merchant_and_date(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        admin = make_admin(session)
        merchant = make_merchant(session, name=unique("审计测试"))
        approved_application(session, merchant)
    bank = clients()
    csrf = await log_in(bank, admin.username)
    await bank.post(f"/portal/admin/merchants/{merchant.id}/suspend",
                    data={"csrf_token": csrf, "reason": "核查"})  # fmt: skip
    page = await bank.get("/portal/admin/audit", params={"actor": admin.username})
    assert page.status_code == 200
    rows = re.findall(r'data-testid="audit-row" data-action="([a-z._]+)"', page.text)
    assert rows == ["merchant.suspended", "login.succeeded"]
    wanted = {"merchant_id": str(merchant.id), "action": "merchant.suspended"}
    only = await bank.get("/portal/admin/audit", params=wanted)
    assert re.findall(r'data-action="([a-z._]+)"', only.text) == ["merchant.suspended"]
    assert "127.0.0.1" in only.text
    future = await bank.get(
        "/portal/admin/audit", params={"since": "2999-01-01", "actor": admin.username}
    )
    assert 'data-testid="empty"' in future.text
    junk = await bank.get(
        "/portal/admin/audit", params={"merchant_id": "x' OR 1=1", "since": "nope"}
    )
    assert junk.status_code == 200


async def test_a_route_with_form_parameters_of_its_own_still_gets_the_csrf_check(
    portal_db_url: str, committed: Committed
) -> None:
    # A later page may declare Form(...) parameters; FastAPI then reads the body before the
    # gate does, and the gate must still find the token in it.
    extra = portal_router("/portal/test-echo")

    @extra.post("")
    def echo(note: Annotated[str, Form()]) -> dict[str, str]:
        return {"note": note}

    with committed() as session:
        admin = make_admin(session)
    app = create_app(portal_test_settings(portal_db_url))
    app.include_router(extra)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tianfu.test") as browser:
        csrf = await log_in(browser, admin.username)
        refused = await browser.post("/portal/test-echo", data={"note": "hi"})
        assert refused.status_code == 403
        done = await browser.post("/portal/test-echo", data={"note": "hi", "csrf_token": csrf})
        assert done.json() == {"note": "hi"}

        async def chunks() -> AsyncIterator[bytes]:
            yield f"csrf_token={csrf}&note=hi".encode()

        chunked = await browser.post(
            "/portal/password", content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert chunked.status_code == 411
    app.state.engine.dispose()
