"""The portal's store pages through the real app (in process) on committed data of each backend:
creating and editing a store with split shifts, closed days, holiday closures and a pin given in
any of the three coordinate systems; closing and reopening; what staff see; hostile input; the
audit trail. (Freshness on another worker: test_store_freshness.py.)"""

from __future__ import annotations

import html
from typing import Any

import pytest
from sqlalchemy import func, select

from lbs.coords import bd09_to_gcj02, wgs84_to_gcj02
from merchants.changes import StoreChange
from merchants.models import AuditEntry, MerchantStatus, StoreStatus
from tests.merchants.conftest import Clients, Committed
from tests.merchants.portal_support import log_in
from tests.merchants.store_support import (
    build_shop,
    counts,
    created_id,
    owner_browser,
    store_form,
    store_of,
)

pytestmark = pytest.mark.anyio


# -- creating and editing -------------------------------------------------------------------------


async def test_an_owner_creates_a_store_with_split_shifts_and_holiday_closures(
    clients: Clients, committed: Committed
) -> None:
    shop = build_shop(committed)
    browser, csrf = await owner_browser(clients, shop)
    assert (await browser.get("/portal/stores/new")).status_code == 200
    store_id = created_id(await browser.post("/portal/stores", data=store_form(csrf)))

    store, (lat, lng) = store_of(committed, store_id)
    assert (store.name, store.phone, store.status) == (
        "蜀味老灶火锅(太古里店)",
        "028-86661234",
        StoreStatus.open,
    )
    assert (lat, lng) == (30.6541, 104.0833)
    assert store.opening_hours == {
        "weekly": {
            "mon": [],
            "tue": [["11:00", "14:00"], ["17:00", "22:00"]],
            "wed": [["11:00", "14:00"], ["17:00", "22:00"]],
            "thu": [["11:00", "22:00"]],
            "fri": [["11:00", "02:00"]],
            "sat": [["10:00", "22:00"]],
            "sun": [["00:00", "24:00"]],
        },
        "closed_dates": ["2026-10-01", "2026-10-02"],
    }
    page = await browser.get(f"/portal/stores/{store_id}?done=created")
    assert 'data-testid="done">门店已创建<' in page.text
    assert "周二、周三 11:00-14:00, 17:00-22:00" in page.text
    assert "周五 11:00-次日02:00" in page.text
    assert "周日 24小时" in page.text
    assert "周一休息" in page.text
    listing = await browser.get("/portal/stores")
    assert "蜀味老灶火锅(太古里店)" in listing.text
    with committed() as session:
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.target_type == "stores", AuditEntry.target_id == str(store_id)
            )
        ).one()
        assert session.scalar(
            select(func.count()).select_from(StoreChange).where(StoreChange.store_id == store_id)
        )
    assert (entry.action, entry.actor_label, entry.ip) == ("store.created", shop.owner, "127.0.0.1")
    assert entry.detail["position_gcj02"] == [30.6541, 104.0833]


@pytest.mark.parametrize(("coord", "convert"), [("bd09", bd09_to_gcj02), ("wgs84", wgs84_to_gcj02)])
async def test_a_pin_from_baidu_or_gps_is_stored_as_gcj02(
    clients: Clients, committed: Committed, coord: str, convert: Any
) -> None:
    shop = build_shop(committed)
    browser, csrf = await owner_browser(clients, shop)
    form = store_form(csrf, lat="30.660500", lng="104.090000", coord=coord)
    store_id = created_id(await browser.post("/portal/stores", data=form))
    _store, (lat, lng) = store_of(committed, store_id)
    expected = convert(30.6605, 104.09)
    assert (lat, lng) == pytest.approx(expected, abs=1e-9)
    assert abs(lat - 30.6605) + abs(lng - 104.09) > 1e-3  # really converted
    with committed() as session:
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "store.created", AuditEntry.target_id == str(store_id)
            )
        ).one()
    assert entry.detail["given"] == {"coord": coord, "lat": 30.6605, "lng": 104.09}


async def test_a_pin_far_from_the_address_is_saved_with_a_hint(
    clients: Clients, committed: Committed
) -> None:
    shop = build_shop(committed)
    browser, csrf = await owner_browser(clients, shop)
    harbin = await browser.post("/portal/stores", data=store_form(csrf, lat="45.75", lng="126.65"))
    page = await browser.get(f"/portal/stores/{created_id(harbin)}")
    assert 'data-testid="abroad"' not in page.text  # far from Chengdu, but in China: no fuss
    swapped = await browser.post("/portal/stores", data=store_form(csrf, lat="10.0", lng="30.0"))
    page = await browser.get(f"/portal/stores/{created_id(swapped)}")
    assert 'data-testid="abroad"' in page.text


async def test_editing_records_what_changed_and_an_unchanged_save_records_nothing(
    clients: Clients, committed: Committed
) -> None:
    shop = build_shop(committed)
    browser, csrf = await owner_browser(clients, shop)
    store_id = created_id(await browser.post("/portal/stores", data=store_form(csrf)))
    before = counts(committed)
    same = await browser.post(f"/portal/stores/{store_id}", data=store_form(csrf))
    assert same.headers["location"].endswith("?done=unchanged")
    assert counts(committed) == before

    edited = await browser.post(
        f"/portal/stores/{store_id}",
        data=store_form(
            csrf,
            name="蜀味老灶火锅(春熙路店)",
            lat="30.6577",
            lng="104.0807",
            hours_mon="17:00-22:00",
            closed_dates="2027-02-10",
        ),
    )
    assert edited.headers["location"].endswith("?done=saved")
    store, position = store_of(committed, store_id)
    assert store.name == "蜀味老灶火锅(春熙路店)"
    assert position == (30.6577, 104.0807)
    assert store.opening_hours["weekly"]["mon"] == [["17:00", "22:00"]]
    assert store.opening_hours["closed_dates"] == ["2027-02-10"]
    assert counts(committed)[1:] == (before[1] + 1, before[2] + 1)  # one change, one entry
    with committed() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
    assert entry.action == "store.updated"
    assert set(entry.detail) == {"name", "position_gcj02", "opening_hours"}
    assert entry.detail["position_gcj02"] == [[30.6541, 104.0833], [30.6577, 104.0807]]

    page = await browser.get(f"/portal/stores/{store_id}")
    assert 'name="hours_mon" type="text" value="17:00-22:00"' in page.text
    assert 'name="lat" type="text" value="30.6577"' in page.text  # the form comes filled in


async def test_close_reopen_and_close_for_good(clients: Clients, committed: Committed) -> None:
    shop = build_shop(committed)
    browser, csrf = await owner_browser(clients, shop)
    url = f"/portal/stores/{shop.store_a1}"
    closed = await browser.post(f"{url}/close", data={"csrf_token": csrf})
    assert closed.headers["location"] == f"{url}?done=closed"
    assert store_of(committed, shop.store_a1)[0].status is StoreStatus.temporarily_closed
    twice = await browser.post(f"{url}/close", data={"csrf_token": csrf})
    assert twice.status_code == 409
    assert "门店已经是暂停营业状态" in twice.text
    reopened = await browser.post(f"{url}/reopen", data={"csrf_token": csrf})
    assert reopened.headers["location"] == f"{url}?done=reopened"
    assert (await browser.post(f"{url}/reopen", data={"csrf_token": csrf})).status_code == 409
    await browser.post(f"{url}/close", data={"csrf_token": csrf, "permanent": "1"})
    assert store_of(committed, shop.store_a1)[0].status is StoreStatus.closed
    with committed() as session:
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.target_type == "stores", AuditEntry.target_id == str(shop.store_a1))
            .order_by(AuditEntry.id)
        ).all()
    assert actions == ["store.closed", "store.reopened", "store.closed"]


# -- who sees what --------------------------------------------------------------------------------


async def test_staff_see_their_own_stores_read_only(clients: Clients, committed: Committed) -> None:
    shop = build_shop(committed)
    staff = clients()
    csrf = await log_in(staff, shop.staff)
    listing = await staff.get("/portal/stores")
    assert listing.text.count('data-testid="store-row"') == 1
    assert shop.a2_name not in listing.text
    assert 'data-testid="new-store"' not in listing.text
    mine = await staff.get(f"/portal/stores/{shop.store_a1}")
    assert mine.status_code == 200
    assert 'name="name"' not in mine.text  # no edit form
    assert 'data-testid="close"' not in mine.text
    assert (await staff.get(f"/portal/stores/{shop.store_a2}")).status_code == 404
    refused = await staff.post(f"/portal/stores/{shop.store_a1}", data=store_form(csrf))
    assert refused.status_code == 403
    as_json = await staff.get(f"/api/v1/portal/stores/{shop.store_a1}")
    assert as_json.json()["opening_hours_text"] == "24小时营业"
    assert (await staff.get(f"/api/v1/portal/stores/{shop.store_a2}")).status_code == 404


async def test_a_pending_merchant_cannot_publish_stores(
    clients: Clients, committed: Committed
) -> None:
    shop = build_shop(committed, status=MerchantStatus.pending)
    browser, csrf = await owner_browser(clients, shop)
    listing = await browser.get("/portal/stores")
    assert 'data-testid="new-store"' not in listing.text
    before = counts(committed)
    refused = await browser.post("/portal/stores", data=store_form(csrf))
    assert refused.status_code == 403
    assert "审核通过后才能发布" in refused.text
    assert counts(committed) == before


async def test_the_dashboard_links_stores_and_api_keys(
    clients: Clients, committed: Committed
) -> None:
    shop = build_shop(committed)
    browser, _csrf = await owner_browser(clients, shop)
    home = await browser.get("/portal")
    assert '<a class="tile" href="/portal/stores"><strong>门店</strong></a>' in home.text
    assert '<a class="tile" href="/portal/api-keys"><strong>API 密钥</strong></a>' in home.text
    staff = clients()
    await log_in(staff, shop.staff)
    home = await staff.get("/portal")
    assert 'href="/portal/stores"' in home.text
    assert "API 密钥" not in home.text


# -- hostile input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "店" * 61}, "name", "门店名称不能超过60个字符"),
        ({"address": "路" * 5000}, "address", "地址不能超过120个字符"),
        ({"lat": "91"}, "lat", "纬度：应在 -90 到 90 之间"),
        ({"lng": "181"}, "lng", "经度：应在 -180 到 180 之间"),
        ({"lat": "nan"}, "lat", "纬度：应在 -90 到 90 之间"),
        ({"lng": "东经104度"}, "lng", "经度：应为数字"),
        ({"coord": "mercator"}, "coord", "坐标系：应为 gcj02、wgs84 或 bd09"),
        ({"phone": "12345"}, "phone", "电话：请填写11位手机号"),
        ({"category": "nope"}, "category", "经营类目不存在"),
        ({"hours_mon": "25:00-26:00"}, "hours_mon", "周一营业时间：“25:00-26:00”的时间无效"),
        (
            {"hours_mon": "10:00-14:00,13:00-18:00"},
            "hours_mon",
            "时段 10:00-14:00 与 13:00-18:00 重叠",
        ),
        ({"hours_mon": "10点到22点"}, "hours_mon", "格式不对，应为 10:00-22:00 这样的时段"),
        (
            {"hours_fri": "18:00-03:00", "hours_sat": "02:00-10:00"},
            "hours",
            "周五的 18:00-次日03:00 与周六的 02:00-10:00 重叠",
        ),
        ({"closed_dates": "2026-02-30"}, "closed_dates", "休息日期：“2026-02-30”不是有效日期"),
        ({"name": "蜀味\n老灶"}, "name", "门店名称：不能包含换行或制表符"),
    ],
)
async def test_invalid_fields_are_refused_with_a_message_and_change_nothing(
    clients: Clients, committed: Committed, changes: dict[str, str], field: str, message: str
) -> None:
    shop = build_shop(committed)
    browser, csrf = await owner_browser(clients, shop)
    before = counts(committed)
    for url in ("/portal/stores", f"/portal/stores/{shop.store_a1}"):
        refused = await browser.post(url, data=store_form(csrf, **changes))
        assert refused.status_code == 422, refused.text
        assert f'data-testid="error-{field}">' in refused.text
        assert message in html.unescape(refused.text)
    assert counts(committed) == before


async def test_markup_in_a_store_name_is_shown_as_text(
    clients: Clients, committed: Committed
) -> None:
    shop = build_shop(committed)
    browser, csrf = await owner_browser(clients, shop)
    name = '<script>alert("x")</script>'
    store_id = created_id(await browser.post("/portal/stores", data=store_form(csrf, name=name)))
    for page in (
        await browser.get("/portal/stores"),
        await browser.get(f"/portal/stores/{store_id}"),
    ):
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert store_of(committed, store_id)[0].name == name  # kept as typed


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    clients: Clients, committed: Committed
) -> None:
    shop = build_shop(committed)
    browser, _csrf = await owner_browser(clients, shop)
    before = counts(committed)
    for url in (
        "/portal/stores",
        f"/portal/stores/{shop.store_a1}",
        f"/portal/stores/{shop.store_a1}/close",
    ):
        refused = await browser.post(url, data=store_form(""))
        assert refused.status_code == 403
        assert "CSRF" in refused.text
    assert counts(committed) == before
    assert store_of(committed, shop.store_a1)[0].status is StoreStatus.open
