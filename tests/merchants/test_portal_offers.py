"""The owner's offer pages through the real app on each backend: creating every kind from the
form (yuan, 折, Beijing days, wall-clock windows) into integer fen, submitting, pausing, editing
(back to review), ending; the figures; staff read-only at their stores; another merchant's offer
not found; hostile input refused with a message per field and nothing changed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from coupons.models import Offer, OfferStatus, weekdays_of
from coupons.rules import OfferKind
from merchants.models import AuditEntry, Merchant, MerchantStatus
from tests.merchants.commerce_support import (
    Shop,
    browser,
    build_shop,
    claimed_coupon,
    portal_offer,
    redeemed_coupon,
)
from tests.merchants.conftest import Clients, Committed
from tests.merchants.portal_support import unique

pytestmark = pytest.mark.anyio


def offer_form(csrf: str, **changes: str | list[str]) -> dict[str, str | list[str]]:
    return {
        "csrf_token": csrf,
        "kind": "fixed_off",
        "title_zh": unique("立减10元"),
        "amount_off": "10",
        "total_stock": "100",
        "budget": "1000",
        "per_user_limit": "1",
    } | changes


def shop_of(committed: Committed) -> Shop:
    with committed() as session:
        return build_shop(session)


def load(committed: Committed, offer_id: int) -> Offer:
    with committed() as session:
        offer = session.scalars(
            select(Offer).where(Offer.id == offer_id).options(selectinload(Offer.scope))
        ).one()
        session.expunge(offer)
        return offer


def offers_of(committed: Committed, merchant_id: int) -> int:
    with committed() as session:
        return session.scalar(select(func.count()).where(Offer.merchant_id == merchant_id)) or 0


def offer_id_of(location: str) -> int:
    assert location.startswith("/portal/offers/"), location
    return int(location.removeprefix("/portal/offers/").split("?")[0])


async def test_an_owner_creates_a_threshold_offer_from_the_form(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    owner, csrf = browser(clients, shop, "owner")
    form_page = await owner.get("/portal/offers/new")
    assert form_page.status_code == 200
    assert shop.store2_name in form_page.text  # the owner may scope it to any store
    answer = await owner.post(
        "/portal/offers",
        data=offer_form(
            csrf,
            kind="threshold_off",
            title_zh="满100减20",
            threshold="100",
            amount_off="20",
            budget="2000.5",
            store_id=[str(shop.store1)],
            weekday=["0", "1", "2", "3", "4"],
            window_start_1="11:00",
            window_end_1="14:00",
            window_start_2="17:00",
            window_end_2="24:00",
            valid_from="2026-05-01",
            valid_until="2026-05-31",
            per_day_limit="50",
            total_stock="500",
        ),
    )
    assert answer.status_code == 303, answer.text
    offer = load(committed, offer_id_of(answer.headers["location"]))
    assert (offer.kind, offer.status) == (OfferKind.threshold_off, OfferStatus.draft)
    assert (offer.threshold_fen, offer.amount_off_fen, offer.budget_fen) == (10_000, 2_000, 200_050)
    assert [link.store_id for link in offer.scope] == [shop.store1]
    assert weekdays_of(offer.weekdays_mask) == frozenset(range(5))
    assert offer.time_windows == [["11:00", "14:00"], ["17:00", "00:00"]]
    # Beijing days; the last one included: 2026-05-31 24:00 +08:00 is 16:00 UTC that day.
    assert offer.valid_from == datetime(2026, 4, 30, 16, 0, tzinfo=UTC)
    assert offer.valid_until == datetime(2026, 5, 31, 16, 0, tzinfo=UTC)
    assert (offer.per_day_limit, offer.total_stock) == (50, 500)
    assert offer.created_by == shop.maker("owner")
    page = await owner.get(answer.headers["location"])
    assert "已保存为草稿" in page.text
    assert "满100减20元" in page.text
    assert "周一至周五" in page.text
    assert "11:00-14:00、17:00-24:00" in page.text
    with committed() as session:
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.target_type == "offers", AuditEntry.target_id == str(offer.id)
            )
        ).one()
    assert (entry.action, entry.actor_account_id, entry.ip) == (
        "offer.created",
        shop.account_ids["owner"],
        "127.0.0.1",
    )
    assert entry.merchant_id == shop.merchant


@pytest.mark.parametrize(
    ("fields", "stored"),
    [
        (
            {"kind": "fixed_off", "amount_off": "12.5", "min_spend": "30"},
            {"amount_off_fen": 1250, "min_spend_fen": 3000},
        ),
        (
            {"kind": "percent_off", "discount_zhe": "8.8", "cap": "20"},
            {"discount_permille": 120, "cap_fen": 2000},
        ),
        (
            {"kind": "percent_off", "discount_zhe": "９.５", "cap": "５"},  # a Chinese IME's digits
            {"discount_permille": 50, "cap_fen": 500},
        ),
        (
            {"kind": "gift", "gift_value": "30", "amount_off": "99"},  # a gift ignores amount_off
            {"gift_value_fen": 3000, "amount_off_fen": 0},
        ),
        (
            {"kind": "points_exchange", "points_cost": "200", "amount_off": "5"},
            {"points_cost": 200, "amount_off_fen": 500},
        ),
    ],
    ids=["fixed_off", "percent_off", "full_width", "gift", "points_exchange"],
)
async def test_every_kind_is_read_into_integer_fen(
    clients: Clients, committed: Committed, fields: dict[str, str], stored: dict[str, int]
) -> None:
    shop = shop_of(committed)
    owner, csrf = browser(clients, shop, "owner")
    answer = await owner.post("/portal/offers", data=offer_form(csrf, **fields))
    assert answer.status_code == 303, answer.text
    offer = load(committed, offer_id_of(answer.headers["location"]))
    assert {name: getattr(offer, name) for name in stored} == stored
    assert offer.kind == OfferKind(fields["kind"])


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"title_zh": ""}, "title_zh", "请填写标题"),
        ({"title_zh": "长" * 61}, "title_zh", "标题不能超过60个字符"),
        ({"title_zh": "立减\x0010元"}, "title_zh", "标题不能包含控制字符"),
        ({"description": "说" * 2001}, "description", "说明不能超过2000个字符"),
        ({"amount_off": "12.345"}, "amount_off", "减免金额请填写金额（元），最多两位小数"),
        ({"amount_off": "-5"}, "amount_off", "减免金额请填写金额（元），最多两位小数"),
        ({"amount_off": "0"}, "amount_off", "减免金额须大于0"),
        ({"budget": "99999999"}, "budget", "预算请填写金额（元），最多两位小数"),
        ({"total_stock": "0"}, "total_stock", "库存请填写不小于1的整数"),
        (
            {"kind": "threshold_off", "threshold": "10", "amount_off": "20"},
            "threshold",
            "满额门槛不能低于减免金额",
        ),
        ({"kind": "percent_off", "discount_zhe": "8.8"}, "cap", "请填写最高减"),
        (
            {"kind": "percent_off", "discount_zhe": "10", "cap": "5"},
            "discount_zhe",
            "折扣请填写0.01至9.99之间的折数，如 8.8",
        ),
        ({"kind": "free_lunch"}, "kind", "请选择优惠类型"),
        (
            {"window_start_1": "14:00", "window_end_1": "11:00"},
            "windows",
            "可用时段的开始时间须早于结束时间（24:00 表示午夜）",
        ),
        (
            {"window_start_1": "25:00", "window_end_1": "26:00"},
            "windows",
            "可用时段请填写完整的开始和结束时间（HH:MM）",
        ),
        (
            {"valid_from": "2026-05-31", "valid_until": "2026-05-01"},
            "valid_until",
            "结束日期不能早于开始日期",
        ),
        ({"weekday": ["7"]}, "weekday", "可用星期选择有误"),
        (
            {"valid_days_after_claim": "3651"},
            "valid_days_after_claim",
            "领取后有效天数请填写1至3650之间的整数",
        ),
    ],
)
async def test_a_wrong_field_is_named_in_chinese_and_nothing_is_created(
    clients: Clients, committed: Committed, changes: dict[str, str], field: str, message: str
) -> None:
    shop = shop_of(committed)
    owner, csrf = browser(clients, shop, "owner")
    answer = await owner.post("/portal/offers", data=offer_form(csrf, **changes))
    assert answer.status_code == 422
    assert f'data-testid="error-{field}">{message}<' in answer.text
    assert offers_of(committed, shop.merchant) == 0


async def test_another_merchants_store_cannot_be_in_the_scope(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    owner, csrf = browser(clients, shop, "owner")
    answer = await owner.post(
        "/portal/offers", data=offer_form(csrf, store_id=[str(shop.other_store)])
    )
    assert answer.status_code == 422
    assert "适用门店选择有误" in answer.text
    assert offers_of(committed, shop.merchant) == 0


async def test_markup_in_a_title_is_shown_as_text(clients: Clients, committed: Committed) -> None:
    shop = shop_of(committed)
    owner, csrf = browser(clients, shop, "owner")
    title = "<script>alert(1)</script>"
    form = offer_form(csrf, title_zh=title, description='"><img src=x>')
    answer = await owner.post("/portal/offers", data=form)
    assert answer.status_code == 303
    offer_id = offer_id_of(answer.headers["location"])
    await owner.post(f"/portal/offers/{offer_id}/submit", data={"csrf_token": csrf})
    admin, _ = browser(clients, shop, "admin")
    for client, path in [
        (owner, "/portal/offers"),
        (owner, f"/portal/offers/{offer_id}"),
        (admin, "/portal/admin/offers"),
        (admin, f"/portal/admin/offers/{offer_id}"),
    ]:
        page = await client.get(path)
        assert page.status_code == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path
        assert "<script>alert" not in page.text
        assert "<img src=x>" not in page.text


async def test_an_oversized_body_is_refused_before_it_is_read(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    owner, csrf = browser(clients, shop, "owner")
    answer = await owner.post("/portal/offers", data=offer_form(csrf, description="x" * 70_000))
    assert answer.status_code == 413
    assert offers_of(committed, shop.merchant) == 0


async def test_submit_pause_resume_and_end_move_the_offer_and_are_audited(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    owner, csrf = browser(clients, shop, "owner")
    created = await owner.post("/portal/offers", data=offer_form(csrf))
    offer_id = offer_id_of(created.headers["location"])
    answer = await owner.post(f"/portal/offers/{offer_id}/submit", data={"csrf_token": csrf})
    assert answer.headers["location"] == f"/portal/offers/{offer_id}?done=submitted"
    assert load(committed, offer_id).status is OfferStatus.pending_review
    # Pausing a pending offer does not fit its state: refused, and nothing changes.
    refused = await owner.post(f"/portal/offers/{offer_id}/pause", data={"csrf_token": csrf})
    assert refused.status_code == 409
    assert "待审核的优惠不能暂停" in refused.text
    with committed() as session:
        session.get_one(Offer, offer_id).status = OfferStatus.active  # as the bank approved it
    for action, status in [
        ("pause", OfferStatus.paused),
        ("resume", OfferStatus.active),
        ("end", OfferStatus.ended),
    ]:
        answer = await owner.post(f"/portal/offers/{offer_id}/{action}", data={"csrf_token": csrf})
        assert answer.status_code == 303, answer.text
        assert load(committed, offer_id).status is status
    with committed() as session:
        actions = list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.target_type == "offers", AuditEntry.target_id == str(offer_id))
                .order_by(AuditEntry.id)
            )
        )
    assert actions == [
        "offer.created",
        "offer.submitted",
        "offer.paused",
        "offer.resumed",
        "offer.ended",
    ]


async def test_an_active_offer_is_edited_only_once_paused_and_goes_back_to_review(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    with committed() as session:
        offer_id = portal_offer(session, shop.merchant, created_by=shop.maker("owner")).id
    owner, csrf = browser(clients, shop, "owner")
    refused = await owner.get(f"/portal/offers/{offer_id}/edit")
    assert refused.status_code == 409
    assert "请先暂停" in refused.text
    await owner.post(f"/portal/offers/{offer_id}/pause", data={"csrf_token": csrf})
    form_page = await owner.get(f"/portal/offers/{offer_id}/edit")
    assert 'name="amount_off" type="text" value="10"' in form_page.text
    unchanged = await owner.post(
        f"/portal/offers/{offer_id}/edit",
        data=offer_form(csrf, title_zh=load(committed, offer_id).title_zh, budget="10000"),
    )
    assert unchanged.headers["location"] == f"/portal/offers/{offer_id}?done=unchanged"
    assert load(committed, offer_id).terms_version == 1
    edited = await owner.post(
        f"/portal/offers/{offer_id}/edit",
        data=offer_form(csrf, title_zh="立减12元", amount_off="12", budget="10000", kind="gift"),
    )
    assert edited.headers["location"] == f"/portal/offers/{offer_id}?done=edited"
    offer = load(committed, offer_id)
    assert (offer.status, offer.terms_version) == (OfferStatus.draft, 2)
    assert (offer.kind, offer.amount_off_fen, offer.title_zh) == (
        OfferKind.fixed_off,
        1200,
        "立减12元",
    )
    assert offer.edited_by == shop.maker("owner")
    with committed() as session:
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "offer.updated", AuditEntry.target_id == str(offer_id)
            )
        ).one()
    assert entry.detail["changed"] == ["amount_off_fen", "title_zh"]


async def test_editing_keeps_what_the_form_cannot_say(
    clients: Clients, committed: Committed
) -> None:
    until = datetime(2026, 6, 30, 7, 30, tzinfo=UTC)  # 15:30 in Beijing: not a day's end
    shop = shop_of(committed)
    with committed() as session:
        offer_id = portal_offer(
            session,
            shop.merchant,
            created_by=shop.maker("owner"),
            status=OfferStatus.draft,
            valid_until=until,
            claim_radius_m=800,
        ).id
    owner, csrf = browser(clients, shop, "owner")
    form_page = await owner.get(f"/portal/offers/{offer_id}/edit")
    assert 'name="valid_until" type="date" value="2026-06-30"' in form_page.text
    answer = await owner.post(
        f"/portal/offers/{offer_id}/edit",
        data=offer_form(csrf, title_zh="改过的标题", budget="10000", valid_until="2026-06-30"),
    )
    assert answer.status_code == 303
    offer = load(committed, offer_id)
    assert (offer.title_zh, offer.valid_until, offer.claim_radius_m) == ("改过的标题", until, 800)


async def test_the_list_and_the_offer_show_stock_left_claims_and_redemptions(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    with committed() as session:
        offer = portal_offer(session, shop.merchant, created_by=shop.maker("owner"), total_stock=10)
        claimed_coupon(session, offer.id)
        redeemed_coupon(session, offer.id, shop.store1)
        offer_id = offer.id
    owner, _ = browser(clients, shop, "owner")
    listing = await owner.get("/portal/offers")
    row = listing.text.split(f'data-offer="{offer_id}"')[1].split("</tr>")[0]
    assert 'data-testid="stock-left">8<' in row
    assert 'data-testid="claimed">2<' in row
    assert 'data-testid="redeemed">1<' in row
    page = await owner.get(f"/portal/offers/{offer_id}")
    assert 'data-testid="stock-left">8<' in page.text
    assert 'data-testid="redeemed">1<' in page.text


async def test_staff_read_the_offers_of_their_stores_only_and_change_none(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    with committed() as session:
        maker = shop.maker("owner")
        theirs = portal_offer(
            session, shop.merchant, created_by=maker, store_ids=[shop.store1, shop.store2]
        ).id
        elsewhere = portal_offer(
            session, shop.merchant, created_by=maker, store_ids=[shop.store2]
        ).id
    staff, csrf = browser(clients, shop, "staff")
    listing = await staff.get("/portal/offers")
    assert f'data-offer="{theirs}"' in listing.text
    assert f'data-offer="{elsewhere}"' not in listing.text
    assert 'data-testid="new-offer"' not in listing.text
    page = await staff.get(f"/portal/offers/{theirs}")
    assert shop.store1_name in page.text
    assert shop.store2_name not in page.text
    assert 'data-testid="pause"' not in page.text
    assert (await staff.get(f"/portal/offers/{elsewhere}")).status_code == 404
    refused = await staff.post(f"/portal/offers/{theirs}/pause", data={"csrf_token": csrf})
    assert refused.status_code == 403
    assert load(committed, theirs).status is OfferStatus.active


async def test_another_merchants_offer_is_not_found(clients: Clients, committed: Committed) -> None:
    shop = shop_of(committed)
    with committed() as session:
        offer = portal_offer(session, shop.merchant, created_by=shop.maker("owner"))
        offer_id, title = offer.id, offer.title_zh
    other, csrf = browser(clients, shop, "other_owner")
    for method, path in [
        ("GET", f"/portal/offers/{offer_id}"),
        ("GET", f"/portal/offers/{offer_id}/edit"),
        ("POST", f"/portal/offers/{offer_id}/end"),
        ("POST", f"/portal/offers/{offer_id}/edit"),
    ]:
        data = offer_form(csrf) if method == "POST" else None
        answer = await other.request(method, path, data=data)
        assert answer.status_code == 404, path
        assert title not in answer.text
    assert f'data-offer="{offer_id}"' not in (await other.get("/portal/offers")).text
    assert load(committed, offer_id).status is OfferStatus.active


async def test_a_post_without_the_csrf_token_creates_nothing(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    owner, _ = browser(clients, shop, "owner")
    form = offer_form("")
    del form["csrf_token"]
    answer = await owner.post("/portal/offers", data=form)
    assert answer.status_code == 403
    assert "CSRF" in answer.text
    assert offers_of(committed, shop.merchant) == 0


async def test_a_suspended_merchant_stops_its_offers_but_publishes_nothing(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    with committed() as session:
        offer_id = portal_offer(session, shop.merchant, created_by=shop.maker("owner")).id
        session.get_one(Merchant, shop.merchant).status = MerchantStatus.suspended
    owner, csrf = browser(clients, shop, "owner")
    assert 'data-testid="new-offer"' not in (await owner.get("/portal/offers")).text
    assert (await owner.get("/portal/offers/new")).status_code == 403
    page = await owner.get(f"/portal/offers/{offer_id}")
    assert 'data-testid="pause"' in page.text
    paused = await owner.post(f"/portal/offers/{offer_id}/pause", data={"csrf_token": csrf})
    assert paused.status_code == 303
    page = await owner.get(f"/portal/offers/{offer_id}")
    assert 'data-testid="resume"' not in page.text
    assert 'data-testid="edit"' not in page.text
    refused = await owner.post(f"/portal/offers/{offer_id}/resume", data={"csrf_token": csrf})
    assert refused.status_code == 403
    assert load(committed, offer_id).status is OfferStatus.paused
