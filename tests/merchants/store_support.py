"""Builders and helpers of the store pages' tests: a merchant with an owner, a staff account
limited to one of its two stores, and the store form as a browser sends it."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy import func, select

from merchants import accounts
from merchants.changes import StoreChange
from merchants.models import AuditEntry, MerchantStatus, Store
from merchants.stores import position_of
from tests.builders import make_merchant, make_store
from tests.merchants.conftest import Clients, Committed
from tests.merchants.portal_support import (
    FAST_HASHER,
    PASSWORD,
    approved_application,
    log_in,
    make_owner,
    unique,
)


@dataclass(frozen=True)
class Shop:
    owner: str
    staff: str
    store_a1: int
    store_a2: int
    a2_name: str


def build_shop(committed: Committed, *, status: MerchantStatus = MerchantStatus.approved) -> Shop:
    with committed() as session:
        merchant = make_merchant(session, name=unique("甲商户"), status=status)
        if status is MerchantStatus.approved:
            approved_application(session, merchant)
        a1 = make_store(session, merchant=merchant, name=unique("甲一店"))
        a2 = make_store(session, merchant=merchant, name=unique("甲二店"))
        owner = make_owner(session, merchant)
        staff = accounts.create_staff(
            session,
            merchant_id=merchant.id,
            username=unique("staff"),
            password=PASSWORD,
            hasher=FAST_HASHER,
            store_ids=[a1.id],
        )
        return Shop(owner.username, staff.username, a1.id, a2.id, a2.name)


def store_form(csrf: str, **changes: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "name": "蜀味老灶火锅(太古里店)",
        "address": "成都市锦江区中纱帽街8号",
        "district": "锦江区",
        "phone": "028-86661234",
        "category": "hotpot",
        "lat": "30.654100",
        "lng": "104.083300",
        "coord": "gcj02",
        "hours_mon": "",
        "hours_tue": "11:00-14:00,17:00-22:00",
        "hours_wed": "11:00-14:00，17:00-22:00",
        "hours_thu": "11:00-22:00",
        "hours_fri": "11:00-02:00",
        "hours_sat": "10:00-22:00",
        "hours_sun": "24小时",
        "closed_dates": "2026-10-01\n2026-10-02",
    } | changes


def counts(committed: Committed) -> tuple[int, int, int]:
    with committed() as session:
        return (
            session.scalar(select(func.count()).select_from(Store)) or 0,
            session.scalar(select(func.count()).select_from(StoreChange)) or 0,
            session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


def store_of(committed: Committed, store_id: int) -> tuple[Store, tuple[float, float]]:
    with committed() as session:
        store = session.get(Store, store_id)
        assert store is not None
        session.expunge(store)
        return store, tuple(position_of(store))  # type: ignore[return-value]


async def owner_browser(clients: Clients, shop: Shop) -> tuple[httpx.AsyncClient, str]:
    browser = clients()
    return browser, await log_in(browser, shop.owner)


def created_id(response: httpx.Response) -> int:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.endswith("?done=created"), location
    return int(location.split("/")[-1].split("?")[0])
