"""The merchants' REST API doing its work, through the real app on each backend: stores with a
pin in any coordinate system, partial updates audited field by field, out-of-range values
refused; offers through their lifecycle with the bank as the checker; a suspended merchant's
keys may withdraw but not publish. (Who may call what: tests/merchants/test_api_keys.py.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from coupons import service as offers
from coupons.errors import OfferReviewConflictError
from coupons.models import Offer
from lbs.coords import bd09_to_gcj02
from merchants import api_keys
from merchants.changes import StoreChange
from merchants.models import (
    ApiKeyAccess,
    AuditEntry,
    Merchant,
    MerchantApiKey,
    MerchantStatus,
    Store,
    StoreStatus,
)
from tests.builders import make_merchant, make_store
from tests.merchants.conftest import Clients, Committed
from tests.merchants.portal_support import approved_application, make_owner, unique
from tianfu.orm import utcnow

pytestmark = pytest.mark.anyio

HOURS = {"weekly": {day: [["10:00", "22:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}}


@dataclass(frozen=True)
class Shop:
    id: int
    key: str
    store_id: int
    other_store_id: int  # another merchant's


@pytest.fixture
def shop(committed: Committed) -> Shop:
    with committed() as session:
        merchant = make_merchant(session, name=unique("甲商户"))
        approved_application(session, merchant)
        store = make_store(session, merchant=merchant, name=unique("甲一店"))
        other = make_store(session, name=unique("乙一店"))
        issued = api_keys.issue_key(
            session,
            merchant_id=merchant.id,
            name="同步",
            access=ApiKeyAccess.write,
            created_by=make_owner(session, merchant).id,
            now=utcnow(),
        )
        return Shop(merchant.id, issued.token, store.id, other.id)


@pytest.fixture
def api(clients: Clients, shop: Shop) -> httpx.AsyncClient:
    client = clients()
    client.headers["Authorization"] = f"Bearer {shop.key}"
    return client


def counts(committed: Committed) -> tuple[int, int, int, int]:
    with committed() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (Store, StoreChange, Offer, AuditEntry)
        )


def last_audit(committed: Committed) -> AuditEntry:
    with committed() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
        session.expunge(entry)
        return entry


def new_store(**changes: Any) -> dict[str, Any]:
    return {
        "name": "巷子咖啡(太古里店)",
        "address": "成都市锦江区中纱帽街8号",
        "phone": "13800138000",
        "category": "coffee",
        "lat": 30.6541,
        "lng": 104.0833,
        "opening_hours": HOURS,
    } | changes


async def test_a_store_given_in_bd09_is_stored_and_answered_in_gcj02(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    created = await api.post("/api/v1/merchant/stores", json=new_store(coord="bd09"))
    assert created.status_code == 201, created.text
    body = created.json()
    expected = bd09_to_gcj02(30.6541, 104.0833)
    assert (body["lat_gcj02"], body["lng_gcj02"]) == pytest.approx(expected, abs=1e-9)
    assert (body["merchant_id"], body["category"], body["status"]) == (shop.id, "coffee", "open")
    assert body["opening_hours_text"] == "每天 10:00-22:00；周六、周日休息"
    again = await api.get(f"/api/v1/merchant/stores/{body['id']}")
    assert again.json() == body


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lat": 91}, "body.lat"),
        ({"lng": 181}, "body.lng"),
        ({"lat": None}, "body.lat"),
        ({"name": "店" * 61}, "body.name"),
        ({"phone": "12345"}, "body.phone"),
        ({"coord": "mercator"}, "body.coord"),
        ({"opening_hours": {"weekly": {"mon": [["10:00", "25:00"]]}}}, "body.opening_hours.weekly"),
        ({"owner": "someone else"}, "body.owner"),
    ],
)
async def test_an_invalid_store_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, committed: Committed, changes: dict[str, Any], field: str
) -> None:
    before = counts(committed)
    refused = await api.post("/api/v1/merchant/stores", json=new_store(**changes))
    assert refused.status_code == 422
    assert refused.json()["error"] == "invalid_input"
    assert [problem["field"] for problem in refused.json()["detail"]] == [field]
    assert counts(committed) == before


async def test_an_unknown_category_is_refused_in_chinese(
    api: httpx.AsyncClient, committed: Committed
) -> None:
    before = counts(committed)
    refused = await api.post("/api/v1/merchant/stores", json=new_store(category="nope"))
    assert (refused.status_code, refused.json()["detail"]) == (422, "经营类目不存在")
    assert counts(committed) == before


async def test_an_update_changes_and_audits_only_what_was_sent(
    api: httpx.AsyncClient, committed: Committed, shop: Shop
) -> None:
    url = f"/api/v1/merchant/stores/{shop.store_id}"
    before = (await api.get(url)).json()
    changed = await api.patch(url, json={"phone": "028-86669999"})
    assert changed.status_code == 200
    after = changed.json()
    assert after["phone"] == "028-86669999"
    assert {k: v for k, v in after.items() if k not in ("phone", "updated_at")} == {
        k: v for k, v in before.items() if k not in ("phone", "updated_at")
    }
    entry = last_audit(committed)
    assert (entry.action, entry.detail) == (
        "store.updated",
        {"phone": ["028-86660000", "028-86669999"]},
    )
    unchanged = counts(committed)
    assert (await api.patch(url, json={"phone": "028-86669999"})).status_code == 200
    assert counts(committed) == unchanged  # nothing to say, nothing written
    half = await api.patch(url, json={"lat": 30.7})
    assert half.status_code == 422
    assert counts(committed) == unchanged


async def test_a_suspended_merchants_key_may_withdraw_but_not_publish(
    api: httpx.AsyncClient, committed: Committed, shop: Shop
) -> None:
    with committed() as session:
        merchant = session.get(Merchant, shop.id)
        assert merchant is not None
        merchant.status = MerchantStatus.suspended
    refused = await api.post("/api/v1/merchant/stores", json=new_store())
    assert (refused.status_code, refused.json()["error"]) == (403, "merchant_not_approved")
    closed = await api.post(f"/api/v1/merchant/stores/{shop.store_id}/close?permanent=true")
    assert (closed.status_code, closed.json()["status"]) == (200, StoreStatus.closed.value)
    assert (await api.post(f"/api/v1/merchant/stores/{shop.store_id}/reopen")).status_code == 403


async def test_an_offer_goes_from_the_api_to_the_bank_and_back(
    api: httpx.AsyncClient, committed: Committed, shop: Shop
) -> None:
    prefix = shop.key[:12]
    body = {
        "kind": "threshold_off",
        "title_zh": "满100减20",
        "amount_off_fen": 2000,
        "threshold_fen": 10_000,
        "total_stock": 50,
        "budget_fen": 100_000,
        "store_ids": [shop.store_id],
    }
    created = await api.post("/api/v1/merchant/offers", json=body)
    assert created.status_code == 201, created.text
    offer = created.json()
    assert (offer["status"], offer["created_by"]) == ("draft", f"apikey:{prefix}")
    offer_url = f"/api/v1/merchant/offers/{offer['id']}"
    submitted = await api.post(f"{offer_url}/submit")
    assert submitted.json()["status"] == "pending_review"
    assert (await api.post(f"{offer_url}/submit")).status_code == 409

    with committed() as session:  # the checker: never the key that made it
        with pytest.raises(OfferReviewConflictError):
            offers.approve(session, offer["id"], reviewer=f"apikey:{prefix}")
        offers.approve(session, offer["id"], reviewer="bank-admin")
    assert (await api.get(offer_url)).json()["status"] == "active"
    edit = await api.patch(offer_url, json={"title_zh": "满100减25", "amount_off_fen": 2500})
    assert (edit.status_code, edit.json()["error"]) == (409, "offer_not_editable")
    assert (await api.post(f"{offer_url}/pause")).json()["status"] == "paused"
    edited = await api.patch(offer_url, json={"title_zh": "满100减25", "amount_off_fen": 2500})
    assert edited.json()["status"] == "draft"  # changed terms are reviewed again
    assert last_audit(committed).detail == {"fields": ["amount_off_fen", "title_zh"]}
    assert (await api.post(f"{offer_url}/end")).json()["status"] == "ended"
    listed = await api.get("/api/v1/merchant/offers", params={"status": "ended"})
    assert [item["id"] for item in listed.json()] == [offer["id"]]
    with committed() as session:
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.target_type == "offers", AuditEntry.target_id == str(offer["id"]))
            .order_by(AuditEntry.id)
        ).all()
    assert actions == [
        "offer.created",
        "offer.submitted",
        "offer.paused",
        "offer.updated",
        "offer.ended",
    ]


async def test_an_offer_for_another_merchants_store_is_refused_like_a_missing_one(
    api: httpx.AsyncClient, committed: Committed, shop: Shop
) -> None:
    body = {
        "kind": "fixed_off",
        "title_zh": "立减5元",
        "amount_off_fen": 500,
        "total_stock": 1,
        "budget_fen": 500,
    }
    before = counts(committed)
    theirs = await api.post(
        "/api/v1/merchant/offers", json=body | {"store_ids": [shop.other_store_id]}
    )
    missing = await api.post("/api/v1/merchant/offers", json=body | {"store_ids": [2_000_000_000]})
    assert theirs.status_code == missing.status_code == 422
    assert theirs.json()["detail"].replace(str(shop.other_store_id), "N") == missing.json()[
        "detail"
    ].replace("2000000000", "N")
    assert counts(committed) == before


async def test_last_use_is_written_at_most_once_a_minute(
    api: httpx.AsyncClient, committed: Committed, shop: Shop
) -> None:
    def last_used() -> Any:
        with committed() as session:
            return session.scalars(
                select(MerchantApiKey.last_used_at).where(MerchantApiKey.prefix == shop.key[:12])
            ).one()

    assert last_used() is None
    await api.get("/api/v1/merchant/stores")
    first = last_used()
    assert first is not None
    await api.get("/api/v1/merchant/offers")
    assert last_used() == first
