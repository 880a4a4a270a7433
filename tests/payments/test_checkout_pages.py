"""The H5 checkout against the real app served by uvicorn on loopback, on committed data of each
backend, with WeChat Pay played by the gateway simulator (v3, real signatures) on loopback too.
The simulator's notifies reach the app's /payments/notify/tenpay/v3; its cashier page stands in
for WeChat's payment sheet. Pages over plain HTTP first, then the whole flow in headless
Chromium; every request that leaves loopback is aborted (and recorded)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    Page,
    Request,
    expect,
)
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coupons import claims, points
from coupons.codes import format_code
from coupons.models import Claim, ClaimStatus
from coupons.rules import OfferKind
from lbs.config import WeChatSettings
from lbs.h5_session import session_cookie_header
from payments import service
from payments.config import PaymentSettings
from payments.models import AttemptStatus, Order, OrderStatus, PaymentAttempt, PaymentEvent
from tenpay_adapter.config import TenpaySettings
from tests.builders import make_merchant, make_offer, make_store
from tests.conftest import PostgresDatabases, new_database_url
from tests.h5_browser import Phone, logged_in_phones, no_horizontal_overflow
from tests.lbs.live_app import base_url_of, loopback_socket, serving_until_ready
from tests.tenpay.sim_support import (
    APIV3_KEY,
    APPID,
    MCHID,
    RunningTenpay,
    make_config,
    merchant_keys,
    platform_keys,
    running_tenpay,
)
from tianfu import migrate
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory, session_scope
from tianfu.orm import utcnow
from tianfu.settings import TianfuSettings, load_settings

SECRET_KEY = "checkout-pages-tests-secret-key-0123456789abcdef"
# WeChat's API is never called here; the OAuth redirect only needs its address.
NOWHERE = "http://127.0.0.1:9"
STORE_NAME = "蜀味老灶火锅(春熙路店)"
POINTS_GIVEN = 500
# The result page's polls reach the channel at most every 3 s (payments.api.POLL_QUERY_EVERY).
SETTLE_TIMEOUT_MS = 15_000
# (typed, shown, fen): amounts float arithmetic gets wrong (0.07 * 100 = 7.000000000000001).
TYPED_AMOUNTS = (("12.3", "12.30", 1230), ("0.07", "0.07", 7), ("19.99", "19.99", 1999))


@dataclass(frozen=True)
class Shop:
    url: str
    store_id: int
    other_store_id: int  # another merchant's
    looker_code: str  # oLooker's usable coupon of the store's merchant
    looker_other_code: str  # oLooker's coupon of the other merchant
    looker_used_code: str  # oLooker's coupon already used at the counter
    payer_code: str  # oPayer's 满100减20, with POINTS_GIVEN points


@pytest.fixture(scope="module")
def shop(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Shop:
    url = new_database_url(backend, tmp_path_factory.mktemp("checkout"), postgres_databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    now = utcnow()
    with session_scope(factory) as session:
        merchant = make_merchant(session)
        store = make_store(session, merchant=merchant, name=STORE_NAME)
        other_merchant = make_merchant(session, name="别家")
        other = make_store(session, merchant=other_merchant, name="别家小馆")
        offer = make_offer(
            session, merchant=merchant, kind=OfferKind.threshold_off, title_zh="满100减20",
            amount_off_fen=2000, threshold_fen=10000, points_per_yuan=2, per_user_limit=5,
        )  # fmt: skip
        other_offer = make_offer(session, merchant=other_merchant)
        ids = (store.id, other.id, offer.id, other_offer.id)
    codes: dict[str, str] = {}
    for key, openid, offer_id in (
        ("looker", "oLooker", ids[2]),
        ("looker_other", "oLooker", ids[3]),
        ("looker_used", "oLooker", ids[2]),
        ("payer", "oPayer", ids[2]),
    ):
        with session_scope(factory) as session:
            codes[key] = claims.claim(
                session, offer_id=offer_id, openid=openid, client_request_id=key, now=now
            ).code
    with session_scope(factory) as session:
        claims.redeem(session, code=codes["looker_used"], store_id=ids[0], now=now)
        points.earn(session, openid="oPayer", points=POINTS_GIVEN, source_key="gift:1", now=now)
        points.earn(session, openid="oLooker", points=42, source_key="gift:2", now=now)
    engine.dispose()
    return Shop(
        url, store_id=ids[0], other_store_id=ids[1], looker_code=codes["looker"],
        looker_other_code=codes["looker_other"], looker_used_code=codes["looker_used"],
        payer_code=codes["payer"],
    )  # fmt: skip


@pytest.fixture(scope="module")
def tenpay() -> Iterator[RunningTenpay]:
    with running_tenpay(make_config()) as sim:
        yield sim


def checkout_settings(database_url: str, base: str, tenpay_url: str) -> TianfuSettings:
    """A v3 merchant account at the simulator; notifies come back to `base`."""
    return load_settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        public_base_url=base,
        wechat=WeChatSettings(
            appid=APPID, appsecret=SecretStr("0" * 32), api_base_url=NOWHERE,
            open_base_url=NOWHERE,
        ),
        tenpay=TenpaySettings(
            mchid=MCHID, appid=APPID, api_version="v3", apiv3_key=SecretStr(APIV3_KEY),
            merchant_private_key_pem=SecretStr(merchant_keys().private_key_pem),
            merchant_serial_no=merchant_keys().serial_no,
            platform_certificate_pem=platform_keys().certificate_pem, base_url=tenpay_url,
        ),
        payments=PaymentSettings(sandbox_cashier_url=tenpay_url, run_jobs_in_serve=False),
    )  # fmt: skip


@dataclass(frozen=True)
class Live:
    base: str
    settings: TianfuSettings
    shop: Shop
    tenpay: RunningTenpay
    db: sessionmaker[Session]


@pytest.fixture(scope="module")
def live(shop: Shop, tenpay: RunningTenpay) -> Iterator[Live]:
    engine = create_db_engine(shop.url)
    with loopback_socket() as sock:
        settings = checkout_settings(shop.url, base_url_of(sock), tenpay.base_url)
        with serving_until_ready(create_app(settings), sock) as base:
            yield Live(base, settings, shop, tenpay, make_session_factory(engine))
    engine.dispose()


def cookie(settings: TianfuSettings, openid: str) -> str:
    return session_cookie_header(settings, openid, clock=time.time).split(";", 1)[0]


def get_as(live: Live, openid: str | None, path: str) -> httpx.Response:
    headers = {"Cookie": cookie(live.settings, openid)} if openid else {}
    return httpx.get(f"{live.base}{path}", headers=headers, follow_redirects=False)


def order_by_api(live: Live, openid: str, key: str, amount_fen: int = 3000) -> str:
    response = httpx.post(
        f"{live.base}/api/v1/orders",
        json={"store_id": live.shop.store_id, "amount_fen": amount_fen, "idempotency_key": key},
        headers={"Cookie": cookie(live.settings, openid)},
    )
    assert response.status_code == 201, response.text
    order_no: str = response.json()["order_no"]
    return order_no


# -- over plain HTTP --------------------------------------------------------------------------


def test_the_pay_page_shows_the_store_and_my_usable_coupons_of_its_merchant(live: Live) -> None:
    page = get_as(live, "oLooker", f"/h5/pay/{live.shop.store_id}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert STORE_NAME in page.text
    assert format_code(live.shop.looker_code) in page.text
    assert f'value="{live.shop.looker_code}"' in page.text
    for unusable in (live.shop.looker_other_code, live.shop.looker_used_code):
        assert format_code(unusable) not in page.text
    assert re.search(r'data-testid="points-balance">42<', page.text)
    assert 'id="coupon-none" checked' in page.text
    elsewhere = get_as(live, "oLooker", f"/h5/pay/{live.shop.other_store_id}")
    assert format_code(live.shop.looker_other_code) in elsewhere.text
    assert format_code(live.shop.looker_code) not in elsewhere.text
    # The inline script and style are admitted by this response's nonce, and by nothing else.
    (nonce,) = set(re.findall(r"'nonce-([\w-]+)'", page.headers["content-security-policy"]))
    assert f'<script nonce="{nonce}">' in page.text
    assert f'<style nonce="{nonce}">' in page.text


def test_a_coupon_in_the_link_is_chosen_and_an_unusable_one_is_explained(live: Live) -> None:
    code = format_code(live.shop.looker_code)
    chosen = get_as(live, "oLooker", f"/h5/pay/{live.shop.store_id}?coupon={code}")
    assert f'value="{live.shop.looker_code}" checked' in chosen.text
    other = live.shop.looker_other_code
    refused = get_as(live, "oLooker", f"/h5/pay/{live.shop.store_id}?coupon={other}")
    assert 'id="coupon-none" checked' in refused.text
    assert "该券在本店不可用或已使用" in refused.text


def test_an_unknown_store_is_a_404_message_page(live: Live) -> None:
    page = get_as(live, "oLooker", "/h5/pay/987654")
    assert page.status_code == 404
    assert "门店不存在" in page.text


def test_an_order_page_is_its_owners_only(live: Live) -> None:
    order_no = order_by_api(live, "oOwner", "owner-1")
    stranger = get_as(live, "oStranger", f"/h5/orders/{order_no}")
    assert stranger.status_code == 404
    assert "订单不存在" in stranger.text
    assert order_no not in stranger.text
    owner = get_as(live, "oOwner", f"/h5/orders/{order_no}")
    assert owner.status_code == 200
    assert re.search(r'id="status" data-status="created">待支付<', owner.text)
    assert STORE_NAME in owner.text
    assert "30.00" in owner.text


def test_my_orders_lists_mine_newest_first_linking_to_their_pages(live: Live) -> None:
    first = order_by_api(live, "oRegular", "regular-1", amount_fen=1000)
    second = order_by_api(live, "oRegular", "regular-2", amount_fen=2000)
    order_by_api(live, "oSomeoneElse", "else-1")
    page = get_as(live, "oRegular", "/h5/me/orders")
    assert page.status_code == 200
    assert re.findall(r'href="/h5/orders/(\w+)"', page.text) == [second, first]
    assert "20.00" in page.text
    assert 'data-testid="no-orders"' in get_as(live, "oNobody", "/h5/me/orders").text


def test_without_a_session_the_pages_send_the_browser_to_wechat_login(live: Live) -> None:
    order_no = order_by_api(live, "oOwner", "owner-2")
    for path in (f"/h5/pay/{live.shop.store_id}", f"/h5/orders/{order_no}", "/h5/me/orders"):
        response = get_as(live, None, path)
        assert response.status_code == 302, path
        assert response.headers["location"].startswith(
            f"{NOWHERE}/connect/oauth2/authorize?appid={APPID}&"
        )


def test_without_a_payment_account_the_pay_page_says_so(shop: Shop) -> None:
    # Served like the others (not in-process ASGI): the browser tests' Playwright holds this
    # thread's event loop, so an anyio test could not run its own here.
    with loopback_socket() as sock:
        settings = load_settings(
            database_url=shop.url, secret_key=SECRET_KEY, public_base_url=base_url_of(sock)
        )
        with serving_until_ready(create_app(settings), sock) as base:
            page = httpx.get(
                f"{base}/h5/pay/{shop.store_id}", headers={"Cookie": cookie(settings, "oLooker")}
            )
    assert page.status_code == 503
    assert "在线支付暂未开通" in page.text


# -- in the browser ---------------------------------------------------------------------------


@pytest.fixture
def phone(live: Live, browser: Browser) -> Iterator[Callable[[str], Phone]]:
    """A phone-sized browser logged in as `openid`, as the OAuth callback would leave it."""
    with logged_in_phones(
        browser, live.base, lambda openid: cookie(live.settings, openid)
    ) as opener:
        yield opener


def latest_order(live: Live, openid: str) -> Order:
    with live.db() as session:
        return session.scalars(
            select(Order).where(Order.openid == openid).order_by(Order.id.desc()).limit(1)
        ).one()


def attempts(live: Live, order_no: str) -> list[PaymentAttempt]:
    with live.db() as session:
        return service.attempts_of(session, service.get_order(session, order_no).id)


def wait_with_page(page: Page, predicate: Callable[[], bool], *, what: str) -> None:
    """Wait for `predicate` while Playwright keeps working: its route handler (Outside) runs
    only inside a Playwright call, so a plain time.sleep would hold every request of the page."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_MS / 1000
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {SETTLE_TIMEOUT_MS} ms")
        page.wait_for_timeout(100)


def fill_bill(page: Page, amount: str, *, coupon: str | None = None, points: str = "") -> None:
    page.locator("#amount").fill(amount)
    if coupon is not None:
        page.locator(f'input[name="coupon"][value="{coupon}"]').check()
    if points:
        page.locator("#points").fill(points)


def test_paying_with_a_coupon_and_points_through_the_cashier_ends_paid(
    live: Live, phone: Callable[[str], Phone]
) -> None:
    me = phone("oPayer")
    page = me.page
    page.goto(f"{live.base}/h5/pay/{live.shop.store_id}")
    expect(page.get_by_test_id("store-name")).to_have_text(STORE_NAME)
    expect(page.get_by_test_id("points-balance")).to_have_text(str(POINTS_GIVEN))
    # 149.90 - 20.00 (满100减20) - 1.00 (100 points) = 128.90
    fill_bill(page, "149.9", coupon=live.shop.payer_code, points="100")
    expect(page.get_by_test_id("payable")).to_have_text("128.90")
    expect(page.locator("#quote-total")).to_have_text("149.90")
    expect(page.locator("#quote-discount")).to_have_text("20.00")
    expect(page.locator("#quote-points")).to_have_text("1.00")
    expect(page.locator("#quote-explanation")).to_contain_text("满100减20")
    assert no_horizontal_overflow(page)

    page.locator("#pay").click()
    page.wait_for_url(re.compile(re.escape(f"{live.tenpay.base_url}/sim/cashier?prepay_id=")))
    expect(page.locator("#amount")).to_contain_text("128.90")  # what the channel was asked
    page.locator("#pay").click()

    order = latest_order(live, "oPayer")
    page.wait_for_url(f"{live.base}/h5/orders/{order.order_no}")
    status = page.locator("#status")
    expect(status).to_have_attribute("data-status", "paid", timeout=SETTLE_TIMEOUT_MS)
    expect(status).to_have_text("已支付")
    expect(page.locator("#headline")).to_have_text("支付成功")
    expect(page.get_by_test_id("paid-amount")).to_have_text("128.90")
    expect(page.locator("#paid-discount")).to_have_text("21.00")
    expect(page.locator("#repay")).to_be_hidden()
    assert no_horizontal_overflow(page)
    assert me.outside.blocked == []
    assert me.console_errors == []

    (attempt,) = attempts(live, order.order_no)
    # The notify reached the app (whether it or a poll's query settled the order first).
    wait_with_page(page, lambda: notify_received(live, attempt.out_trade_no), what="the notify")
    order = latest_order(live, "oPayer")
    assert order.status is OrderStatus.paid
    assert (order.total_fen, order.discount_fen, order.points_fen) == (14990, 2000, 100)
    assert order.payable_fen == 12890
    assert attempt.status is AttemptStatus.paid
    assert attempt.amount_fen == 12890
    assert attempt.channel_trade_no
    with live.db() as session:
        coupon = session.scalars(select(Claim).where(Claim.code == live.shop.payer_code)).one()
        assert coupon.status is ClaimStatus.redeemed
        assert coupon.order_ref == order.order_no
        # 100 spent; 128 whole yuan paid × (1 base + 2 of the offer) earned.
        assert points.balance(session, "oPayer") == POINTS_GIVEN - 100 + 128 * 3


def notify_received(live: Live, out_trade_no: str) -> bool:
    with live.db() as session:
        found = session.scalars(
            select(PaymentEvent.id).where(PaymentEvent.reference == out_trade_no)
        ).first()
        return found is not None


def test_a_declined_payment_is_not_shown_paid_and_can_be_paid_again(
    live: Live, phone: Callable[[str], Phone]
) -> None:
    me = phone("oDecliner")
    page = me.page
    page.goto(f"{live.base}/h5/pay/{live.shop.store_id}")
    expect(page.get_by_test_id("no-coupons")).to_be_visible()
    fill_bill(page, "20")
    expect(page.get_by_test_id("payable")).to_have_text("20.00")
    page.locator("#pay").click()
    page.wait_for_url(re.compile(re.escape(f"{live.tenpay.base_url}/sim/cashier?")))
    page.locator("#decline").click()

    order_no = latest_order(live, "oDecliner").order_no
    page.wait_for_url(f"{live.base}/h5/orders/{order_no}")
    # The page's polls make the app ask the channel, which says PAYERROR.
    wait_with_page(
        page,
        lambda: attempts(live, order_no)[0].status is AttemptStatus.failed,
        what="the declined attempt settled",
    )
    page.wait_for_timeout(2000)  # another poll or so: still not paid
    expect(page.locator("#status")).to_have_attribute("data-status", "paying")
    expect(page.locator("#headline")).not_to_have_text("支付成功")
    expect(page.locator("#paid")).to_be_hidden()
    assert latest_order(live, "oDecliner").status is OrderStatus.paying

    # 继续支付: a new attempt at the channel, paid this time.
    page.locator("#repay").click()
    page.wait_for_url(re.compile(re.escape(f"{live.tenpay.base_url}/sim/cashier?")))
    page.locator("#pay").click()
    page.wait_for_url(f"{live.base}/h5/orders/{order_no}")
    expect(page.locator("#status")).to_have_attribute(
        "data-status", "paid", timeout=SETTLE_TIMEOUT_MS
    )
    assert [a.status for a in attempts(live, order_no)] == [
        AttemptStatus.failed,
        AttemptStatus.paid,
    ]
    assert me.outside.blocked == []
    assert me.console_errors == []


# In WeChat the bridge exists; this one records the call and answers "ok" as WeChat would
# once the sheet closes, whether or not money moved.
FAKE_BRIDGE = """
window.WeixinJSBridge = {
  invoke: function (name, params, callback) {
    window.recordInvoke(name, params).then(function () {
      callback({ err_msg: "get_brand_wcpay_request:ok" });
    });
  }
};
"""


def test_in_wechat_the_payment_sheet_is_invoked_and_its_answer_is_not_trusted(
    live: Live, phone: Callable[[str], Phone]
) -> None:
    me = phone("oInWeChat")
    page = me.page
    invoked: list[tuple[str, dict[str, str]]] = []
    page.expose_function("recordInvoke", lambda name, params: invoked.append((name, params)))
    page.add_init_script(FAKE_BRIDGE)
    page.goto(f"{live.base}/h5/pay/{live.shop.store_id}")
    fill_bill(page, "35.5")
    expect(page.get_by_test_id("payable")).to_have_text("35.50")
    page.locator("#pay").click()

    page.wait_for_url(re.compile(re.escape(f"{live.base}/h5/orders/") + r"TF\d+$"))
    order_no = latest_order(live, "oInWeChat").order_no
    assert page.url.endswith(order_no)
    ((name, params),) = invoked
    assert name == "getBrandWCPayRequest"
    assert params["appId"] == APPID
    assert params["package"].startswith("prepay_id=")
    assert params["signType"] == "RSA"
    assert {"timeStamp", "nonceStr", "paySign"} <= params.keys()
    page.wait_for_timeout(2000)  # "ok" from the sheet, but the channel has no payment
    expect(page.locator("#status")).to_have_attribute("data-status", "paying")

    (attempt,) = attempts(live, order_no)
    live.tenpay.state.pay(attempt.out_trade_no)  # the money arrives after all
    expect(page.locator("#status")).to_have_attribute(
        "data-status", "paid", timeout=SETTLE_TIMEOUT_MS
    )
    expect(page.get_by_test_id("paid-amount")).to_have_text("35.50")
    assert me.console_errors == []


def test_the_amount_is_turned_into_fen_without_float_arithmetic(
    live: Live, phone: Callable[[str], Phone]
) -> None:
    me = phone("oLooker")
    page = me.page
    quoted: list[int] = []

    def on_request(request: Request) -> None:
        body = request.post_data_json
        if request.url.endswith("/api/v1/orders/quote") and body:
            quoted.append(body["amount_fen"])

    page.on("request", on_request)
    page.goto(f"{live.base}/h5/pay/{live.shop.store_id}")
    expect(page.locator("#pay")).to_be_disabled()
    for typed, shown, fen in TYPED_AMOUNTS:
        page.locator("#amount").fill(typed)
        expect(page.locator("#quote-total")).to_have_text(shown)
        assert quoted[-1] == fen
    expect(page.locator("#pay")).to_be_enabled()
    page.locator("#amount").fill("1.005")
    expect(page.locator("#message")).to_have_text("请输入正确的金额（最多两位小数）")
    expect(page.locator("#quote")).to_be_hidden()
    expect(page.locator("#pay")).to_be_disabled()
    page.locator("#points").fill("43")  # more than the 42 there are
    page.locator("#amount").fill("100")
    expect(page.locator("#message")).to_have_text("积分不足")
    assert me.console_errors == []
