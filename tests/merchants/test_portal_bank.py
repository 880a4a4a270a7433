"""The bank's offer review (maker-checker), reconciliation findings and settlements through the
real app on each backend."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from coupons.models import Offer, OfferStatus
from coupons.schemas import OfferUpdate
from coupons.service import submit_for_review, update_offer
from merchants.models import AuditEntry
from payments.models import MerchantSettlement, ReconciliationItem, ReconciliationRun
from payments.reconcile import items_csv
from payments.settlement import settlements_csv
from tests.merchants.commerce_support import Shop, browser, build_shop, portal_offer
from tests.merchants.conftest import Clients, Committed
from tianfu.orm import utcnow

pytestmark = pytest.mark.anyio


def shop_of(committed: Committed) -> Shop:
    with committed() as session:
        return build_shop(session)


def pending_offer(committed: Committed, shop: Shop, *, maker: str) -> int:
    with committed() as session:
        return portal_offer(
            session, shop.merchant, created_by=maker, status=OfferStatus.pending_review
        ).id


def status_of(committed: Committed, offer_id: int) -> OfferStatus:
    with committed() as session:
        return session.get_one(Offer, offer_id).status


# -- offers: maker-checker ------------------------------------------------------------------------


async def test_the_bank_approves_an_offer_its_merchant_made(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    offer_id = pending_offer(committed, shop, maker=shop.maker("owner"))
    admin, csrf = browser(clients, shop, "admin")
    queue = await admin.get("/portal/admin/offers")
    row = queue.text.split(f'data-offer="{offer_id}"')[1].split("</tr>")[0]
    assert "甲商户" in row  # the merchant's name
    review = await admin.get(f"/portal/admin/offers/{offer_id}")
    assert 'data-testid="approve"' in review.text
    answer = await admin.post(
        f"/portal/admin/offers/{offer_id}/approve", data={"csrf_token": csrf, "note": "条款清楚"}
    )
    assert (answer.status_code, answer.headers["location"]) == (
        303,
        "/portal/admin/offers?done=approved",
    )
    with committed() as session:
        offer = session.get_one(Offer, offer_id)
        assert (offer.status, offer.reviewed_by, offer.review_note) == (
            OfferStatus.active,
            shop.maker("admin"),
            "条款清楚",
        )
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "offer.approved", AuditEntry.target_id == str(offer_id)
            )
        ).one()
    assert (entry.actor_account_id, entry.merchant_id) == (shop.account_ids["admin"], shop.merchant)


async def test_an_admin_who_edited_an_offer_cannot_approve_it(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    offer_id = pending_offer(committed, shop, maker=shop.maker("owner"))
    with committed() as session:  # the admin's edit (through any tool) makes them its maker
        session.get_one(Offer, offer_id).status = OfferStatus.draft
        update_offer(
            session,
            offer_id,
            changes=OfferUpdate(title_zh="立减12元"),
            edited_by=shop.maker("admin"),
        )
        submit_for_review(session, offer_id)
    admin, csrf = browser(clients, shop, "admin")
    review = await admin.get(f"/portal/admin/offers/{offer_id}")
    assert 'data-testid="own-offer"' in review.text
    assert 'data-testid="approve"' not in review.text
    for action in ("approve", "reject"):
        refused = await admin.post(
            f"/portal/admin/offers/{offer_id}/{action}",
            data={"csrf_token": csrf, "note": "我自己改的"},
        )
        assert refused.status_code == 409
        assert "不能审核自己创建或修改的优惠" in refused.text
        assert status_of(committed, offer_id) is OfferStatus.pending_review
    other, other_csrf = browser(clients, shop, "admin2")
    answer = await other.post(
        f"/portal/admin/offers/{offer_id}/approve", data={"csrf_token": other_csrf}
    )
    assert answer.status_code == 303
    assert status_of(committed, offer_id) is OfferStatus.active


async def test_the_admin_who_created_an_offer_cannot_approve_it(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    offer_id = pending_offer(committed, shop, maker=shop.maker("admin"))
    admin, csrf = browser(clients, shop, "admin")
    refused = await admin.post(
        f"/portal/admin/offers/{offer_id}/approve", data={"csrf_token": csrf}
    )
    assert refused.status_code == 409
    assert status_of(committed, offer_id) is OfferStatus.pending_review


async def test_a_rejection_needs_a_note_and_sends_the_offer_back_to_the_merchant(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    offer_id = pending_offer(committed, shop, maker=shop.maker("owner"))
    admin, csrf = browser(clients, shop, "admin")
    empty = await admin.post(
        f"/portal/admin/offers/{offer_id}/reject", data={"csrf_token": csrf, "note": "   "}
    )
    assert empty.status_code == 422
    assert "驳回须填写原因" in empty.text
    too_long = await admin.post(
        f"/portal/admin/offers/{offer_id}/reject", data={"csrf_token": csrf, "note": "长" * 256}
    )
    assert too_long.status_code == 422
    assert status_of(committed, offer_id) is OfferStatus.pending_review
    answer = await admin.post(
        f"/portal/admin/offers/{offer_id}/reject",
        data={"csrf_token": csrf, "note": "<b>请写明适用门店</b>"},
    )
    assert answer.status_code == 303
    assert status_of(committed, offer_id) is OfferStatus.draft
    owner, _ = browser(clients, shop, "owner")
    page = await owner.get(f"/portal/offers/{offer_id}")
    assert "银行审核意见：&lt;b&gt;请写明适用门店&lt;/b&gt;" in page.text


async def test_approving_an_offer_twice_is_a_conflict(
    clients: Clients, committed: Committed
) -> None:
    shop = shop_of(committed)
    offer_id = pending_offer(committed, shop, maker=shop.maker("owner"))
    admin, csrf = browser(clients, shop, "admin")
    first = await admin.post(f"/portal/admin/offers/{offer_id}/approve", data={"csrf_token": csrf})
    again = await admin.post(f"/portal/admin/offers/{offer_id}/approve", data={"csrf_token": csrf})
    assert (first.status_code, again.status_code) == (303, 409)
    assert "进行中的优惠不能审核通过" in again.text


async def test_an_unknown_offer_is_not_found(clients: Clients, committed: Committed) -> None:
    shop = shop_of(committed)
    admin, _ = browser(clients, shop, "admin")
    assert (await admin.get("/portal/admin/offers/999999999")).status_code == 404


# -- reconciliation and settlement ----------------------------------------------------------------


def reconciliation_day(committed: Committed, day: date) -> tuple[str, str]:
    """An ok run of `day` with one open and one settled item; their references."""
    now = utcnow()
    references = (f"OPEN{secrets.token_hex(6)}", f"DONE{secrets.token_hex(6)}")
    with committed() as session:
        session.add(
            ReconciliationRun(
                bill_date=day,
                channel="tenpay_v3",
                account="1900009191",
                status="ok",
                statement_lines=12,
                matched=10,
                new_items=2,
                settled=1,
                started_at=now,
                finished_at=now,
            )
        )
        for reference, resolution, amount in zip(
            references, ("open", "settled"), (1, 12_345), strict=True
        ):
            session.add(
                ReconciliationItem(
                    bill_date=day,
                    channel="tenpay_v3",
                    account="1900009191",
                    kind="amount_mismatch",
                    reference=reference,
                    our_state="paid",
                    channel_state="SUCCESS",
                    our_amount_fen=amount,
                    channel_amount_fen=amount + 1,
                    resolution=resolution,
                    detail="<i>查</i>",
                    created_at=now,
                )
            )
    return references


async def test_reconciliation_findings_by_day_and_resolution_with_csv(
    clients: Clients, committed: Committed
) -> None:
    day = date(2026, 3, 10)
    open_ref, settled_ref = reconciliation_day(committed, day)
    shop = shop_of(committed)
    admin, _ = browser(clients, shop, "admin")
    page = await admin.get("/portal/admin/reconciliation?day=2026-03-10")
    assert page.status_code == 200
    assert open_ref in page.text
    assert settled_ref not in page.text  # open items by default
    assert "¥0.01" in page.text
    assert "&lt;i&gt;查&lt;/i&gt;" in page.text
    assert 'data-testid="run-row"' in page.text
    every = await admin.get("/portal/admin/reconciliation?day=2026-03-10&resolution=all")
    assert open_ref in every.text
    assert settled_ref in every.text
    assert "¥123.45" in every.text
    settled = await admin.get("/portal/admin/reconciliation?day=2026-03-10&resolution=settled")
    assert open_ref not in settled.text
    assert settled_ref in settled.text
    download = await admin.get("/portal/admin/reconciliation.csv?day=2026-03-10")
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="reconciliation-2026-03-10.csv"' in download.headers["content-disposition"]
    with committed() as session:
        expected = items_csv(session, day)
    assert download.content.decode("utf-8") == "\ufeff" + expected
    assert ",0.01,0.02," in expected


async def test_a_malformed_day_is_refused(clients: Clients, committed: Committed) -> None:
    shop = shop_of(committed)
    admin, _ = browser(clients, shop, "admin")
    for path in (
        "/portal/admin/reconciliation?day=2026-13-01",
        "/portal/admin/settlements.csv?day=yesterday",
        "/portal/admin/settlements?day=2026-03-1'",
    ):
        answer = await admin.get(path)
        assert answer.status_code == 422, path
        assert "日期格式应为 YYYY-MM-DD" in answer.text


async def test_every_merchants_settlement_of_a_day_with_csv(
    clients: Clients, committed: Committed
) -> None:
    day = date(2026, 3, 11)
    shop = shop_of(committed)
    with committed() as session:
        for merchant_id, paid in ((shop.merchant, 12_345), (shop.other_merchant, 1)):
            session.add(
                MerchantSettlement(
                    merchant_id=merchant_id,
                    day=day,
                    orders=2,
                    gross_fen=paid + 100,
                    merchant_discount_fen=100,
                    bank_discount_fen=0,
                    paid_fen=paid,
                    refunds_fen=0,
                    fee_fen=0,
                    net_fen=paid,
                    computed_at=datetime(2026, 3, 12, 2, 0, tzinfo=UTC),
                )
            )
    admin, _ = browser(clients, shop, "admin")
    page = await admin.get("/portal/admin/settlements?day=2026-03-11")
    assert page.text.count('data-testid="settlement-row"') == 2
    total = page.text.split('data-testid="settlement-total"')[1].split("</tr>")[0]
    assert "<strong>123.46</strong>" in total  # 12345 + 1 fen
    download = await admin.get("/portal/admin/settlements.csv?day=2026-03-11")
    with committed() as session:
        expected = settlements_csv(session, day=day)
    assert download.content.decode("utf-8") == "\ufeff" + expected
    assert ",123.45," in expected
