"""The store and API key pages in headless Chromium, against the real app served by uvicorn on
loopback, on committed data of each backend: an owner on a phone creates a store through the
form (a Baidu pin, split shifts, a holiday), fixes a refused field, closes and reopens it; on a
laptop makes an API key and sees it once. Nothing leaves loopback, no CSP refusal or script
error, no page wider than the phone. Screenshots go to tests/artifacts/portal/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.h5_browser import PHONE, Outside, no_horizontal_overflow
from tests.lbs.live_app import base_url_of, loopback_socket, serving_until_ready
from tests.merchants.conftest import Committed, portal_test_settings
from tests.merchants.portal_support import PASSWORD
from tests.merchants.store_support import Shop, build_shop
from tianfu.app import create_app

LAPTOP: ViewportSize = {"width": 1280, "height": 800}
ARTIFACTS = Path(__file__).parents[1] / "artifacts" / "portal"


@dataclass(frozen=True)
class Live:
    base: str
    shop: Shop


@pytest.fixture(scope="module")
def live(portal_db_url: str, committed: Committed) -> Iterator[Live]:
    shop = build_shop(committed)
    with loopback_socket() as sock:
        settings = portal_test_settings(portal_db_url, public_base_url=base_url_of(sock))
        with serving_until_ready(create_app(settings), sock) as base:
            yield Live(base, shop)


@pytest.fixture
def context(browser: Browser) -> Iterator[tuple[BrowserContext, Outside, list[str]]]:
    outside, errors = Outside(), []
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    context.route("**/*", outside)
    context.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield context, outside, errors
    context.close()


def shot(page: Page, backend: str, name: str) -> None:
    assert no_horizontal_overflow(page), f"{page.url} is wider than the screen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{backend}-{name}.png"), full_page=True)


def test_an_owner_manages_a_store_and_an_api_key(
    live: Live, context: tuple[BrowserContext, Outside, list[str]], backend: str
) -> None:
    browser_context, outside, errors = context
    page = browser_context.new_page()
    page.goto(f"{live.base}/portal/login")
    page.fill("#f-username", live.shop.owner)
    page.fill("#f-password", PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.get_by_role("link", name="门店").first.click()
    expect(page.get_by_test_id("store-row")).to_have_count(2)
    shot(page, backend, "stores-phone")

    page.get_by_test_id("new-store").click()
    page.fill("#f-name", "蜀味<b>老灶</b>(太古里店)")
    page.fill("#f-address", "成都市锦江区中纱帽街8号")
    page.select_option("#f-category", "hotpot")
    page.fill("#f-lat", "91")
    page.fill("#f-lng", "104.0898")
    page.select_option("#f-coord", "bd09")
    page.fill("#f-hours_mon", "")
    page.fill("#f-hours_tue", "11:00-14:00,17:00-22:00")
    page.fill("#f-closed_dates", "2026-10-01")
    page.get_by_role("button", name="创建门店").click()
    expect(page.get_by_test_id("error-lat")).to_contain_text("纬度：应在 -90 到 90 之间")
    expect(page.locator("#f-hours_tue")).to_have_value("11:00-14:00,17:00-22:00")  # kept
    shot(page, backend, "store-new-refused-phone")
    page.fill("#f-lat", "30.6606")
    page.get_by_role("button", name="创建门店").click()
    expect(page.get_by_test_id("done")).to_have_text("门店已创建")
    expect(page.get_by_test_id("store-title")).to_have_text("蜀味<b>老灶</b>(太古里店)")
    expect(page.get_by_test_id("store-hours")).to_contain_text("周二 11:00-14:00, 17:00-22:00")
    expect(page.locator("#f-coord")).to_have_value("gcj02")  # shown as stored
    shot(page, backend, "store-detail-phone")

    page.get_by_test_id("close").click()
    expect(page.get_by_test_id("store-status")).to_have_text("暂停营业")
    page.get_by_test_id("reopen").click()
    expect(page.get_by_test_id("store-status")).to_have_text("营业中")

    page.set_viewport_size(LAPTOP)
    page.goto(f"{live.base}/portal/api-keys")
    page.fill("#f-name", "收银系统")
    page.select_option("#f-access", "write")
    page.get_by_role("button", name="创建密钥").click()
    key = page.get_by_test_id("issued-key").inner_text()
    assert key.startswith("tfk_")
    shot(page, backend, "api-key-issued")
    page.goto(f"{live.base}/portal/api-keys")
    expect(page.get_by_test_id("key-prefix")).to_have_text(key[:12])
    assert key not in page.content()
    shot(page, backend, "api-keys")

    assert outside.blocked == []
    # The refused form's 422 is reported as a failed load; anything else (CSP) is a failure.
    assert [error for error in errors if "status of 422" not in error] == []
