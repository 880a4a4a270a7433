"""A merchant's sales pages through the real app on each backend: one Beijing day's orders and
refunds, its totals, the CSV in exact yuan from integer fen, staff kept to their stores, and the
owner's settlement of the day with its CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from merchants.models import Store
from payments.models import RefundStatus
from payments.service import LATE_PAYMENT_REFUNDER
from payments.settlement import BEIJING, settle_day, settlements_csv
from tests.merchants.commerce_support import Shop, browser, build_shop, paid_order, refund_of
from tests.merchants.conftest import Clients, Committed
from tianfu.orm import utcnow

pytestmark = pytest.mark.anyio

DAY = date(2026, 3, 14)
HEADER = (
    "record,number,order_no,store_id,store_name,time,status,total_yuan,coupon_discount_yuan,"
    "points_yuan,paid_yuan,refund_yuan"
)


def at(day: date, hh_mm: str) -> datetime:
    """A Beijing wall-clock time on `day`, as aware UTC."""
    hour, minute = (int(part) for part in hh_mm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=BEIJING).astimezone(UTC)


def a_day_of_sales(committed: Committed) -> tuple[Shop, dict[str, str]]:
    """Sales of DAY at both of the shop's stores, and others that are not the day's or the
    shop's. Returns the shop and the numbers of what the day shows."""
    yesterday = date(2026, 3, 13)
    with committed() as session:
        shop = build_shop(session)
        big = paid_order(
            session,
            shop.store1,
            total_fen=12_345,
            discount_fen=1_000,
            points_fen=345,
            paid_at=at(DAY, "10:00"),
        )
        tiny = paid_order(session, shop.store2, total_fen=1, paid_at=at(DAY, "23:59"))
        earlier = paid_order(session, shop.store1, total_fen=5_000, paid_at=at(yesterday, "23:59"))
        refunded = refund_of(session, earlier, amount_fen=500, at=at(DAY, "00:30"))
        pending = refund_of(
            session, big, amount_fen=100, at=at(DAY, "12:00"), status=RefundStatus.pending
        )
        late = paid_order(session, shop.store1, total_fen=700, paid_at=at(yesterday, "09:00"))
        refund_of(
            session, late, amount_fen=700, at=at(DAY, "09:00"), requested_by=LATE_PAYMENT_REFUNDER
        )
        paid_order(session, shop.other_store, total_fen=9_999, paid_at=at(DAY, "11:00"))
        numbers = {
            "big": big[0].order_no,
            "tiny": tiny[0].order_no,
            "earlier": earlier[0].order_no,
            "refunded": refunded.out_refund_no,
            "pending": pending.out_refund_no,
        }
    return shop, numbers


async def test_the_days_totals_and_the_csv_in_exact_yuan(
    clients: Clients, committed: Committed
) -> None:
    shop, no = a_day_of_sales(committed)
    owner, _ = browser(clients, shop, "owner")
    page = await owner.get("/portal/sales?day=2026-03-14")
    assert page.status_code == 200
    for testid, text in [
        ("total-orders", "2"),
        ("total-gross", "123.46元"),
        ("total-coupons", "10.00元"),
        ("total-points", "3.45元"),
        ("total-paid", "110.01元"),
        ("total-refunded", "5.00元"),
    ]:
        assert f'data-testid="{testid}">{text}<' in page.text, testid
    assert page.text.count('data-testid="order-row"') == 2
    assert page.text.count('data-testid="refund-row"') == 2
    download = await owner.get("/portal/sales.csv?day=2026-03-14")
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"] == 'attachment; filename="sales-2026-03-14.csv"'
    assert download.headers["cache-control"] == "no-store"
    s1, s2 = f"{shop.store1},{shop.store1_name}", f"{shop.store2},{shop.store2_name}"
    day = "2026-03-14"
    big, tiny, earlier = no["big"], no["tiny"], no["earlier"]
    lines = [
        HEADER,
        f"order,{big},{big},{s1},{day} 10:00:00,paid,123.45,10.00,3.45,110.00,",
        f"order,{tiny},{tiny},{s2},{day} 23:59:00,paid,0.01,0.00,0.00,0.01,",
        f"refund,{no['refunded']},{earlier},{s1},{day} 00:30:00,succeeded,,,,,5.00",
        f"refund,{no['pending']},{big},{s1},{day} 12:00:00,pending,,,,,1.00",
    ]
    assert download.content.decode("utf-8") == "\ufeff" + "\n".join(lines) + "\n"


async def test_one_store_of_the_day(clients: Clients, committed: Committed) -> None:
    shop, no = a_day_of_sales(committed)
    owner, _ = browser(clients, shop, "owner")
    page = await owner.get(f"/portal/sales?day=2026-03-14&store_id={shop.store2}")
    assert 'data-testid="total-paid">0.01元<' in page.text
    assert no["tiny"] in page.text
    assert no["big"] not in page.text


async def test_staff_see_the_sales_of_their_stores_only(
    clients: Clients, committed: Committed
) -> None:
    shop, no = a_day_of_sales(committed)
    staff, _ = browser(clients, shop, "staff")
    page = await staff.get("/portal/sales?day=2026-03-14")
    assert 'data-testid="total-orders">1<' in page.text
    assert 'data-testid="total-paid">110.00元<' in page.text
    assert no["tiny"] not in page.text
    assert shop.store2_name not in page.text
    assert 'data-testid="settlement-csv"' not in page.text  # the settlement is the owner's
    download = await staff.get("/portal/sales.csv?day=2026-03-14")
    assert no["big"] in download.text
    assert no["tiny"] not in download.text
    assert shop.store2_name not in download.text
    for path in (
        f"/portal/sales?store_id={shop.store2}",
        f"/portal/sales.csv?store_id={shop.store2}",
    ):
        assert (await staff.get(path)).status_code == 404
    assert (await staff.get("/portal/sales/settlement.csv?day=2026-03-14")).status_code == 403


async def test_another_merchant_sees_none_of_it(clients: Clients, committed: Committed) -> None:
    shop, no = a_day_of_sales(committed)
    other, _ = browser(clients, shop, "other_owner")
    page = await other.get("/portal/sales?day=2026-03-14")
    assert 'data-testid="total-paid">99.99元<' in page.text
    assert no["big"] not in page.text
    download = await other.get("/portal/sales.csv?day=2026-03-14")
    assert no["big"] not in download.text
    assert (await other.get(f"/portal/sales?store_id={shop.store1}")).status_code == 404


async def test_the_owner_sees_the_days_settlement_with_its_csv(
    clients: Clients, committed: Committed
) -> None:
    shop, _ = a_day_of_sales(committed)
    owner, _ = browser(clients, shop, "owner")
    before = await owner.get("/portal/sales?day=2026-03-14")
    assert 'data-testid="no-settlement"' in before.text
    with committed() as session:
        settle_day(session, day=DAY, fee_bp={"tenpay": 60, "alipay": 60}, now=utcnow())
    page = await owner.get("/portal/sales?day=2026-03-14")
    row = page.text.split('data-testid="settlement-row">')[1].split("</tr>")[0]
    # paid 110.01 + points 3.45 - refunds 5.00 - fees (66 fen on 110.00, 0 on 0.01) = 107.80
    assert "<strong>107.80</strong>" in row
    download = await owner.get("/portal/sales/settlement.csv?day=2026-03-14")
    with committed() as session:
        expected = settlements_csv(session, day=DAY, merchant_id=shop.merchant)
    assert download.content.decode("utf-8") == "\ufeff" + expected
    assert expected.count("\n") == 2  # the header and this merchant's row only


async def test_a_formula_in_a_store_name_is_made_inert_in_the_csv(
    clients: Clients, committed: Committed
) -> None:
    with committed() as session:
        shop = build_shop(session)
        store = session.get(Store, shop.store1)
        assert store is not None
        store.name = '=HYPERLINK("http://evil.example")'
        paid_order(session, shop.store1, total_fen=100, paid_at=at(DAY, "10:00"))
    owner, _ = browser(clients, shop, "owner")
    download = await owner.get("/portal/sales.csv?day=2026-03-14")
    assert '"\'=HYPERLINK(""http://evil.example"")"' in download.text


async def test_a_malformed_day_is_refused(clients: Clients, committed: Committed) -> None:
    with committed() as session:
        shop = build_shop(session)
    owner, _ = browser(clients, shop, "owner")
    for path in (
        "/portal/sales?day=14.03.2026",
        "/portal/sales.csv?day=2026-02-30",
        "/portal/sales/settlement.csv?day=<script>",
    ):
        answer = await owner.get(path)
        assert answer.status_code == 422, path
        assert "<script>" not in answer.text
