"""Issue #6's whole story in headless Chromium, against the real app served by uvicorn on
loopback, on committed data of each backend:

a merchant signs up on a phone -> a bank admin on a laptop approves the application -> the
merchant logs in, adds a store with a map pin (typed in WGS-84, stored in GCJ-02) and split-shift
hours, and a cashier account for it -> creates a 满100减20 offer for the store and submits it ->
the admin (not its maker) approves it -> `/api/v1/nearby` for a point 300 m away lists the store
with that offer, which it did not advertise while the offer waited for review -> a WeChat user
claims a coupon over the API -> the cashier types the code as printed at the counter, confirms,
redeems, and going back and submitting the same form again redeems nothing more.

Every request the browsers make that leaves loopback is aborted (and recorded); a CSP refusal or
a script error shows as a console error and fails the test. The database is checked at the end,
down to who did each step in the audit log. Screenshots of the main pages, phone- and
laptop-size, go to tests/artifacts/portal/story-{backend}-{step}-{size}.png.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from coupons.models import Claim, ClaimStatus, Offer, OfferStatus
from coupons.rules import OfferKind
from lbs.coords import gcj02_to_wgs84, wgs84_to_gcj02
from lbs.h5_session import session_cookie_header
from merchants.models import (
    AuditEntry,
    Merchant,
    MerchantStatus,
    PortalAccount,
    PortalRole,
    Store,
)
from merchants.opening_hours import OpeningHours
from merchants.portal_counter import COUNTER_REF, mask_user
from merchants.stores import hours_of, position_of
from spatial_index.geometry import haversine_m
from tests.h5_browser import PHONE, Outside, no_horizontal_overflow
from tests.lbs.live_app import base_url_of, loopback_socket, serving_until_ready
from tests.merchants.conftest import Committed, portal_test_settings
from tests.merchants.portal_support import PASSWORD, licence, make_admin, unique
from tianfu.app import create_app
from tianfu.settings import TianfuSettings

LAPTOP: ViewportSize = {"width": 1280, "height": 800}
ARTIFACTS = Path(__file__).parents[1] / "artifacts" / "portal"

BUSINESS = "蜀味老灶火锅"
STORE = "蜀味老灶火锅(春熙路店)"
OFFER = "满100减20"
PIN_GCJ02 = (30.6574, 104.0658)  # where the store is, as Tencent and Amap maps show it
# The pin as a GPS device reads it, to six decimals as a person types it: the form converts.
PIN_TYPED_WGS84 = tuple(round(x, 6) for x in gcj02_to_wgs84(*PIN_GCJ02))
# 0.0027 degrees of latitude south of the pin: ~300 m away, well inside the 3 km default.
USER_AT = (PIN_GCJ02[0] - 0.0027, PIN_GCJ02[1])
SPLIT_SHIFT = "10:00-14:00,17:00-22:00"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The store index polls every 0.5 s and the offer catalog remembers offers for 2 s.
NEARBY_WAIT_S = 5.0


@dataclass(frozen=True)
class Live:
    base: str
    settings: TianfuSettings
    admin: str


@pytest.fixture(scope="module")
def live(portal_db_url: str, committed: Committed) -> Iterator[Live]:
    with committed() as session:
        admin = make_admin(session, username=unique("bank."))
    with loopback_socket() as sock:
        settings = portal_test_settings(portal_db_url, public_base_url=base_url_of(sock))
        with serving_until_ready(create_app(settings), sock) as base:
            yield Live(base, settings, admin.username)


@dataclass
class Person:
    page: Page
    viewport: ViewportSize
    outside: Outside
    console_errors: list[str]


Open = Callable[[ViewportSize], Person]


@pytest.fixture
def person(browser: Browser) -> Iterator[Open]:
    contexts: list[Any] = []

    def open_on(viewport: ViewportSize) -> Person:
        outside = Outside()
        context = browser.new_context(viewport=viewport, locale="zh-CN")
        contexts.append(context)
        context.route("**/*", outside)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        return Person(page, viewport, outside, errors)

    yield open_on
    for context in contexts:
        context.close()


def shots(who: Person, backend: str, step: str) -> None:
    """The page on a phone and on a laptop (the phone's without sideways scrolling), then back
    to the person's own screen."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in (("phone", PHONE), ("laptop", LAPTOP)):
        who.page.set_viewport_size(viewport)
        if size == "phone":
            assert no_horizontal_overflow(who.page), f"{who.page.url} is wider than a phone"
        path = ARTIFACTS / f"story-{backend}-{step}-{size}.png"
        who.page.screenshot(path=str(path), full_page=True)
    who.page.set_viewport_size(who.viewport)


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/portal/login")
    page.fill("#f-username", username)
    page.fill("#f-password", PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{base}/portal")


def nearby(base: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{base}/api/v1/nearby", params={"lat": USER_AT[0], "lng": USER_AT[1]}, timeout=5
    )
    assert answer.status_code == 200, answer.text
    stores: list[dict[str, Any]] = answer.json()["stores"]
    return stores


def nearby_until(base: str, found: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The store the nearby answer shows once `found` says it is as wanted (the index and the
    offer catalog pick changes up within a couple of seconds)."""
    deadline = time.monotonic() + NEARBY_WAIT_S
    while True:
        stores = [s for s in nearby(base) if s["name"] == STORE]
        if stores and found(stores[0]):
            return stores[0]
        assert time.monotonic() < deadline, f"nearby did not show it in {NEARBY_WAIT_S} s: {stores}"
        time.sleep(0.1)


def test_sign_up_to_a_coupon_redeemed_at_the_counter(
    live: Live, person: Open, backend: str, committed: Committed
) -> None:
    merchant, bank, cashier = person(PHONE), person(LAPTOP), person(PHONE)
    m, b, c = merchant.page, bank.page, cashier.page
    owner, staff = unique("owner"), unique("cashier")

    # 1. The merchant signs up on a phone, and is logged in as the new owner.
    m.goto(f"{live.base}/portal/signup")
    m.fill("#f-business_name", BUSINESS)
    m.fill("#f-licence_no", licence())
    m.fill("#f-contact_name", "王小明")
    m.fill("#f-contact_phone", "13800138000")
    m.select_option("#f-category", "hotpot")
    m.fill("#f-username", owner)
    m.fill("#f-password", PASSWORD)
    m.fill("#f-password_confirm", PASSWORD)
    shots(merchant, backend, "01-signup")
    m.get_by_role("button", name="提交申请").click()
    expect(m).to_have_url(f"{live.base}/portal/application")
    expect(m.get_by_test_id("application-status")).to_have_text("审核中")

    # 2. The bank admin logs in on a laptop and approves the application.
    b.goto(f"{live.base}/portal/admin/applications")
    expect(b).to_have_url(f"{live.base}/portal/login?next=/portal/admin/applications")
    b.fill("#f-username", live.admin)
    b.fill("#f-password", PASSWORD)
    b.get_by_role("button", name="登录").click()
    expect(b).to_have_url(f"{live.base}/portal/admin/applications")
    b.get_by_test_id("application-row").filter(has_text=BUSINESS).get_by_role(
        "link", name="审核"
    ).click()
    expect(b.get_by_test_id("review-title")).to_have_text(BUSINESS)
    shots(bank, backend, "02-admin-application-review")
    b.get_by_test_id("approve").click()
    expect(b.get_by_test_id("done")).to_have_text("已通过申请")

    # 3. The merchant logs out and in again, adds the store (pin in WGS-84, split shifts every
    # day) and a cashier account limited to it.
    m.get_by_test_id("logout").click()
    log_in(m, live.base, owner)
    expect(m.get_by_test_id("merchant-status")).to_have_text("已通过")
    m.get_by_role("navigation", name="主菜单").get_by_role("link", name="门店").click()
    m.get_by_test_id("new-store").click()
    m.fill("#f-name", STORE)
    m.fill("#f-address", "成都市锦江区春熙路88号")
    m.fill("#f-district", "锦江区")
    m.fill("#f-phone", "028-86660000")
    m.select_option("#f-category", "hotpot")
    m.fill("#f-lat", f"{PIN_TYPED_WGS84[0]:.6f}")
    m.fill("#f-lng", f"{PIN_TYPED_WGS84[1]:.6f}")
    m.select_option("#f-coord", "wgs84")
    for day in DAYS:
        m.fill(f"#f-hours_{day}", SPLIT_SHIFT)
    shots(merchant, backend, "03-store-form")
    m.get_by_role("button", name="创建门店").click()
    expect(m.get_by_test_id("done")).to_have_text("门店已创建")
    expect(m.get_by_test_id("store-title")).to_have_text(STORE)
    expect(m.get_by_test_id("store-status")).to_have_text("营业中")
    expect(m.get_by_test_id("store-hours")).to_contain_text("10:00-14:00, 17:00-22:00")
    stored_at = wgs84_to_gcj02(*PIN_TYPED_WGS84)
    expect(m.get_by_test_id("store-position")).to_have_text(
        f"{stored_at.lat:.6f}, {stored_at.lng:.6f}"
    )
    shots(merchant, backend, "04-store-created")

    m.goto(f"{live.base}/portal/staff")
    create_staff = m.locator('form[action="/portal/staff"]')
    create_staff.locator("#f-username").fill(staff)
    create_staff.locator("#f-display_name").fill("收银小李")
    create_staff.locator("#f-password").fill(PASSWORD)
    create_staff.locator("#f-password_confirm").fill(PASSWORD)
    create_staff.get_by_label(STORE).check()
    create_staff.get_by_role("button", name="创建").click()
    expect(m.get_by_test_id("done")).to_have_text("已保存")
    expect(m.get_by_test_id("staff-row").filter(has_text=staff)).to_contain_text("限1家门店")

    # 4. The merchant creates the offer for that store, and submits it for the bank's review.
    m.get_by_role("navigation", name="主菜单").get_by_role("link", name="优惠").click()
    m.get_by_test_id("new-offer").click()
    m.select_option("#f-kind", "threshold_off")
    expect(m.locator("#f-threshold")).to_be_visible()
    expect(m.locator("#f-discount_zhe")).to_be_hidden()  # another kind's amount
    m.fill("#f-title_zh", OFFER)
    m.fill("#f-description", "堂食可用，不与其他优惠同享")
    m.fill("#f-threshold", "100")
    m.fill("#f-amount_off", "20")
    m.locator('[data-field="store_id"]').get_by_label(STORE).check()
    m.fill("#f-total_stock", "100")
    m.fill("#f-budget", "2000")
    m.fill("#f-per_user_limit", "1")
    shots(merchant, backend, "05-offer-form")
    m.get_by_test_id("save").click()
    expect(m.get_by_test_id("done")).to_contain_text("已保存为草稿")
    expect(m.get_by_test_id("offer-status")).to_have_text("草稿")
    offer_id = int(m.url.split("/portal/offers/")[1].split("?")[0])
    m.get_by_test_id("submit").click()
    expect(m.get_by_test_id("done")).to_have_text("已提交银行审核")
    expect(m.get_by_test_id("offer-status")).to_have_text("待审核")

    # Nearby lists the new store 300 m away, without the offer waiting for review.
    waiting = nearby_until(live.base, lambda _store: True)
    assert waiting["best_offer"] is None

    # 5. The admin, who is not the offer's maker, approves it.
    b.get_by_role("navigation", name="主菜单").get_by_role("link", name="优惠审核").click()
    b.get_by_test_id("offer-row").filter(has_text=OFFER).get_by_role("link", name="审核").click()
    expect(b.get_by_test_id("offer-title")).to_have_text(OFFER)
    expect(b.get_by_test_id("offer-status")).to_have_text("待审核")
    expect(b.get_by_test_id("own-offer")).to_have_count(0)
    expect(b.get_by_test_id("offer-terms")).to_contain_text(STORE)
    shots(bank, backend, "06-admin-offer-review")
    b.fill("#f-note-approve", "条款清楚，同意上线")
    b.get_by_test_id("approve").click()
    expect(b.get_by_test_id("done")).to_have_text("已通过优惠")
    m.reload()
    expect(m.get_by_test_id("offer-status")).to_have_text("进行中")

    # 6. Nearby, 300 m away: the store, at its GCJ-02 pin, with the approved offer as its best.
    listed = nearby_until(live.base, lambda store: store["best_offer"] is not None)
    assert listed["best_offer"]["id"] == offer_id
    assert listed["best_offer"]["title"] == OFFER
    assert listed["merchant"]["name"] == BUSINESS
    assert listed["coord"] == "gcj02"
    assert haversine_m(listed["lat"], listed["lng"], *PIN_GCJ02) < 1
    assert 295 < listed["distance_m"] < 305, listed["distance_m"]
    assert listed["distance_text"] == f"{round(listed['distance_m'])}米"
    assert "10:00-14:00" in listed["opening_hours_text"]
    assert "17:00-22:00" in listed["opening_hours_text"]

    # 7. A WeChat user there claims a coupon over the API, with their H5 session.
    openid = f"oStory{secrets.token_hex(8)}"
    cookie = session_cookie_header(live.settings, openid, clock=time.time).split(";", 1)[0]
    claimed = httpx.post(
        f"{live.base}/api/v1/offers/{offer_id}/claims",
        json={"client_request_id": secrets.token_hex(8), "lat": USER_AT[0], "lng": USER_AT[1]},
        headers={"Cookie": cookie},
        timeout=5,
    )
    assert claimed.status_code == 201, claimed.text
    printed = claimed.json()["code"]  # "1234 5678 9012", as the coupon page shows it
    assert re.fullmatch(r"\d{4} \d{4} \d{4}", printed), printed

    # 8. The cashier, on a phone, types the code as printed, confirms and redeems it.
    log_in(c, live.base, staff)
    c.get_by_role("navigation", name="主菜单").get_by_role("link", name="核销").click()
    expect(c.get_by_test_id("counter-store")).to_have_text(STORE)
    c.fill("#c-code", printed)
    c.get_by_test_id("check").click()
    expect(c.get_by_test_id("offer-title")).to_have_text(OFFER)
    expect(c.get_by_test_id("code")).to_have_text(printed)
    expect(c.get_by_test_id("masked-user")).to_have_text(mask_user(openid))
    expect(c.get_by_test_id("coupon-status")).to_have_text("未使用")
    assert openid not in c.content()
    shots(cashier, backend, "07-counter-confirm")
    confirm_url = c.url
    form = c.locator('form[action="/portal/counter/redeem"]')
    sent = {
        name: form.locator(f'input[name="{name}"]').input_value()
        for name in ("csrf_token", "store_id", "code", "attempt")
    }
    c.get_by_test_id("redeem").click()
    done = c.get_by_test_id("done")
    expect(done).to_contain_text("已核销")
    expect(done).to_contain_text(OFFER)
    expect(done).to_contain_text(printed[-4:])
    expect(c.get_by_test_id("redemption-row")).to_have_count(1)
    shots(cashier, backend, "08-counter-done")

    # Back to the confirm page: it is asked for again (never cached) and says redeemed here.
    c.go_back()
    expect(c).to_have_url(confirm_url)
    expect(c.get_by_test_id("coupon-status")).to_have_text("已核销")
    expect(c.get_by_test_id("redeem")).to_have_count(0)
    # The same confirm form sent again (as a browser showing the old page would): the
    # redemption it made is recognised, and nothing is redeemed twice.
    c.evaluate(
        """sent => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = "/portal/counter/redeem";
            for (const [name, value] of Object.entries(sent)) {
                const input = document.createElement("input");
                input.type = "hidden";
                input.name = name;
                input.value = value;
                form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }""",
        sent,
    )
    expect(c.get_by_test_id("done")).to_contain_text("已核销")
    expect(c.get_by_test_id("redemption-row")).to_have_count(1)

    # The user's coupon list says used; the merchant's offer page counts one of each.
    mine = httpx.get(f"{live.base}/api/v1/me/coupons", headers={"Cookie": cookie}, timeout=5)
    assert [(x["offer_id"], x["status"]) for x in mine.json()] == [(offer_id, "redeemed")]
    m.reload()
    expect(m.get_by_test_id("claimed")).to_have_text("1")
    expect(m.get_by_test_id("redeemed")).to_have_text("1")
    expect(m.get_by_test_id("stock-left")).to_have_text("99")

    for who in (merchant, bank, cashier):
        assert who.outside.blocked == []
        assert who.console_errors == []

    # 9. What the database holds, and who the audit log says did each step.
    with committed() as session:
        accounts = {
            a.username: a
            for a in session.scalars(
                select(PortalAccount).where(PortalAccount.username.in_([owner, staff, live.admin]))
            )
        }
        owner_id, staff_id, admin_id = (accounts[n].id for n in (owner, staff, live.admin))
        shop = session.scalars(select(Merchant).where(Merchant.name == BUSINESS)).one()
        assert shop.status is MerchantStatus.approved
        assert accounts[owner].role is PortalRole.merchant_owner
        assert accounts[staff].role is PortalRole.merchant_staff
        assert accounts[owner].merchant_id == accounts[staff].merchant_id == shop.id

        store = session.scalars(select(Store).where(Store.merchant_id == shop.id)).one()
        assert store.name == STORE
        pin = position_of(store)
        assert (pin.lat, pin.lng) == pytest.approx(tuple(stored_at), abs=1e-9)
        assert haversine_m(pin.lat, pin.lng, *PIN_GCJ02) < 1  # WGS-84 typed, GCJ-02 kept
        split = OpeningHours.daily(("10:00", "14:00"), ("17:00", "22:00"))
        assert hours_of(store) == split

        offer = session.scalars(
            select(Offer).where(Offer.id == offer_id).options(selectinload(Offer.scope))
        ).one()
        assert offer.merchant_id == shop.id
        assert (offer.kind, offer.status, offer.title_zh) == (
            OfferKind.threshold_off,
            OfferStatus.active,
            OFFER,
        )
        assert (offer.threshold_fen, offer.amount_off_fen) == (10_000, 2_000)
        assert (offer.total_stock, offer.budget_fen, offer.claimed_count) == (100, 200_000, 1)
        assert [link.store_id for link in offer.scope] == [store.id]
        assert offer.created_by == f"portal:{owner_id}"
        assert offer.reviewed_by == f"portal:{admin_id}"
        assert offer.review_note == "条款清楚，同意上线"

        claim = session.scalars(select(Claim).where(Claim.offer_id == offer_id)).one()
        assert (claim.openid, claim.status) == (openid, ClaimStatus.redeemed)
        assert claim.redeemed_store_id == store.id
        assert claim.order_ref == f"{COUNTER_REF}{sent['attempt']}"
        assert claim.code == printed.replace(" ", "")

        entries = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.actor_account_id.in_([owner_id, staff_id, admin_id]))
            .order_by(AuditEntry.id)
        ).all()
    steps = [
        (e.action, e.actor_account_id, e.target_type, e.target_id)
        for e in entries
        if e.action not in ("login.succeeded", "logout")
    ]
    assert steps == [
        ("merchant.signed_up", owner_id, "merchants", str(shop.id)),
        ("application.approved", admin_id, "merchant_applications", steps[1][3]),
        ("store.created", owner_id, "stores", str(store.id)),
        ("staff.created", owner_id, "portal_accounts", str(staff_id)),
        ("offer.created", owner_id, "offers", str(offer_id)),
        ("offer.submitted", owner_id, "offers", str(offer_id)),
        ("offer.approved", admin_id, "offers", str(offer_id)),
        ("coupon.redeemed", staff_id, "claims", str(claim.id)),  # once, for two submits
    ]
    logins = [e.actor_account_id for e in entries if e.action == "login.succeeded"]
    assert logins == [admin_id, owner_id, staff_id]
    redeemed = next(e for e in entries if e.action == "coupon.redeemed")
    assert redeemed.merchant_id == shop.id
    assert redeemed.detail == {
        "store_id": store.id,
        "offer_id": offer_id,
        "code_tail": printed[-4:],
    }
    created = next(e for e in entries if e.action == "store.created")
    assert created.detail["given"] == {
        "coord": "wgs84",
        "lat": PIN_TYPED_WGS84[0],
        "lng": PIN_TYPED_WGS84[1],
    }
