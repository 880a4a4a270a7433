"""The merchants' REST API (/api/v1/merchant) route by route, as every kind of caller, through
the real app on each backend.

HOW TO ADD A ROUTE. `test_every_merchant_api_route_has_a_row` lists the routes of create_app()
under /api/v1/merchant and fails for any without a row in ROUTES (and for rows whose route is
gone). A row gives the path parameters (A's objects), a valid JSON body, and the status that
A's write key gets. Every case runs on a fresh world: merchants A and B (approved), A's store,
a closed store, offers in draft, active and paused, and keys: A's read, write and revoked keys,
B's write key, and owner A's portal session (which must not open this API).

What each caller gets:
    no key, a malformed key, A's prefix with a wrong secret, a revoked key, a session cookie: 401
    A's read key: GET as A's write key; any other method 403
    A's write key: the row's status; a write changes something and is audited as "apikey:…"
    B's write key: 404 on A's objects (never 403); on a route without an object, B's own answer
Every refusal changes nothing; no answer to B or to a refused caller names A's objects.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coupons.models import Offer, OfferStatus
from merchants import api_keys
from merchants.changes import StoreChange
from merchants.models import ApiKeyAccess, AuditEntry, MerchantApiKey, Store, StoreStatus
from merchants.portal_web import route_table
from tests.builders import make_merchant, make_offer, make_store
from tests.merchants.conftest import Committed, portal_test_settings
from tests.merchants.portal_support import approved_application, make_owner, session_cookie
from tianfu.app import create_app
from tianfu.orm import utcnow

pytestmark = pytest.mark.anyio

PREFIX = "/api/v1/merchant"
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSED_401 = ("no_key", "malformed", "wrong_secret", "revoked_a", "session_cookie")
CALLERS = (*REFUSED_401, "read_a", "write_a", "write_b")


@dataclass(frozen=True)
class World:
    store_a1: int
    store_a_closed: int
    offer_draft: int
    offer_active: int
    offer_paused: int
    keys: dict[str, str]  # caller -> the whole key
    session_cookie: str
    a_names: tuple[str, ...]


def build_world(session: Session) -> World:
    tag = secrets.token_hex(3)
    merchant_a = make_merchant(session, name=f"甲商户{tag}")
    approved_application(session, merchant_a)
    merchant_b = make_merchant(session, name=f"乙商户{tag}")
    owner_a, owner_b = make_owner(session, merchant_a), make_owner(session, merchant_b)
    a1 = make_store(session, merchant=merchant_a, name=f"甲一店{tag}")
    closed = make_store(
        session, merchant=merchant_a, name=f"甲关店{tag}", status=StoreStatus.temporarily_closed
    )
    offers = {
        status: make_offer(
            session, merchant=merchant_a, title_zh=f"甲{status.value}{tag}", status=status
        )
        for status in (OfferStatus.draft, OfferStatus.active, OfferStatus.paused)
    }

    def key(merchant_id: int, owner_id: int, access: ApiKeyAccess) -> str:
        return api_keys.issue_key(
            session,
            merchant_id=merchant_id,
            name="同步",
            access=access,
            created_by=owner_id,
            now=utcnow(),
        ).token

    revoked = api_keys.issue_key(
        session,
        merchant_id=merchant_a.id,
        name="旧",
        created_by=owner_a.id,
        access=ApiKeyAccess.write,
        now=utcnow(),
    )
    revoked.key.revoked_at = utcnow()
    write_a = key(merchant_a.id, owner_a.id, ApiKeyAccess.write)
    keys = {
        "read_a": key(merchant_a.id, owner_a.id, ApiKeyAccess.read),
        "write_a": write_a,
        "revoked_a": revoked.token,
        "write_b": key(merchant_b.id, owner_b.id, ApiKeyAccess.write),
        "malformed": "tfk_nothing",
        "wrong_secret": write_a[:-6] + "AAAAAA",
    }
    return World(
        store_a1=a1.id,
        store_a_closed=closed.id,
        offer_draft=offers[OfferStatus.draft].id,
        offer_active=offers[OfferStatus.active].id,
        offer_paused=offers[OfferStatus.paused].id,
        keys=keys,
        session_cookie=session_cookie(session, owner_a)[0],
        a_names=(
            merchant_a.name,
            a1.name,
            closed.name,
            *(offer.title_zh for offer in offers.values()),
        ),
    )


def no_params(_world: World) -> dict[str, object]:
    return {}


@dataclass(frozen=True)
class Row:
    params: Callable[[World], dict[str, object]] = no_params
    body: Callable[[World], dict[str, Any]] | None = None
    status: int = 200  # for A's write key


def on_store(world: World) -> dict[str, object]:
    return {"store_id": world.store_a1}


def on_offer(attribute: str) -> Callable[[World], dict[str, object]]:
    return lambda world: {"offer_id": getattr(world, attribute)}


def new_store(_world: World) -> dict[str, Any]:
    return {
        "name": "巷子咖啡(太古里店)",
        "address": "成都市锦江区中纱帽街8号",
        "lat": 30.6541,
        "lng": 104.0833,
        "opening_hours": {"weekly": {"mon": [["10:00", "22:00"]]}},
    }


def new_offer(_world: World) -> dict[str, Any]:
    return {
        "kind": "fixed_off",
        "title_zh": "立减5元",
        "amount_off_fen": 500,
        "total_stock": 10,
        "budget_fen": 100_000,
    }


STORES, OFFERS = f"{PREFIX}/stores", f"{PREFIX}/offers"
ROUTES: dict[tuple[str, str], Row] = {
    ("GET", STORES): Row(),
    ("GET", f"{STORES}/{{store_id}}"): Row(params=on_store),
    ("POST", STORES): Row(body=new_store, status=201),
    ("PATCH", f"{STORES}/{{store_id}}"): Row(
        params=on_store,
        body=lambda w: {"name": "改名后的店", "lat": 30.66, "lng": 104.09, "coord": "bd09"},
    ),
    ("POST", f"{STORES}/{{store_id}}/close"): Row(params=on_store),
    ("POST", f"{STORES}/{{store_id}}/reopen"): Row(params=lambda w: {"store_id": w.store_a_closed}),
    ("GET", OFFERS): Row(),
    ("GET", f"{OFFERS}/{{offer_id}}"): Row(params=on_offer("offer_draft")),
    ("POST", OFFERS): Row(body=new_offer, status=201),
    ("PATCH", f"{OFFERS}/{{offer_id}}"): Row(
        params=on_offer("offer_draft"), body=lambda w: {"title_zh": "立减12元"}
    ),
    ("POST", f"{OFFERS}/{{offer_id}}/submit"): Row(params=on_offer("offer_draft")),
    ("POST", f"{OFFERS}/{{offer_id}}/pause"): Row(params=on_offer("offer_active")),
    ("POST", f"{OFFERS}/{{offer_id}}/resume"): Row(params=on_offer("offer_paused")),
    ("POST", f"{OFFERS}/{{offer_id}}/end"): Row(params=on_offer("offer_active")),
}
CASES = [(method, path, caller) for (method, path) in ROUTES for caller in CALLERS]


def expected(method: str, path: str, caller: str) -> int:
    row = ROUTES[(method, path)]
    if caller in REFUSED_401:
        return 401
    if caller == "read_a":
        return row.status if method in SAFE else 403
    if caller == "write_b" and "{" in path:
        return 404
    return row.status


def merchant_api_routes(app: FastAPI) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for info in route_table(app):
        if info.path.startswith(PREFIX):
            assert isinstance(info.route, APIRoute), f"{info.path}: only APIRoutes under {PREFIX}"
            found |= {(method, info.path) for method in info.methods}
    return found


@pytest.fixture(scope="module")
def api_app(portal_db_url: str) -> Iterator[FastAPI]:
    app = create_app(portal_test_settings(portal_db_url))
    yield app
    app.state.engine.dispose()


def test_every_merchant_api_route_has_a_row(api_app: FastAPI) -> None:
    routes = merchant_api_routes(api_app)
    assert not sorted(routes - set(ROUTES)), "routes without a row in ROUTES (add them)"
    assert not sorted(set(ROUTES) - routes), "rows of ROUTES for routes that no longer exist"


def fingerprint(session: Session) -> tuple[Any, ...]:
    return (
        session.execute(
            select(
                Store.id,
                Store.name,
                Store.status,
                Store.opening_hours,
                func.ST_AsText(Store.location_gcj02),
            ).order_by(Store.id)
        ).all(),
        session.execute(
            select(
                Offer.id,
                Offer.status,
                Offer.title_zh,
                Offer.terms_version,
                Offer.created_by,
                Offer.edited_by,
            ).order_by(Offer.id)
        ).all(),
        session.execute(
            select(
                MerchantApiKey.id, MerchantApiKey.revoked_at, MerchantApiKey.last_used_at
            ).order_by(MerchantApiKey.id)
        ).all(),
        session.scalar(select(func.count()).select_from(StoreChange)),
        session.scalar(select(func.count()).select_from(AuditEntry)),
    )


async def call(
    app: FastAPI, committed: Committed, method: str, path: str, caller: str
) -> tuple[httpx.Response, bool, World]:
    row = ROUTES[(method, path)]
    with committed() as session:
        world = build_world(session)
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    if caller in world.keys:
        headers["Authorization"] = f"Bearer {world.keys[caller]}"
    if caller == "session_cookie":
        cookies["tianfu_portal"] = world.session_cookie
    with committed() as session:
        before = fingerprint(session)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tianfu.test", cookies=cookies
    ) as http:
        body = row.body(world) if row.body is not None else None
        url = path.format(**row.params(world))
        response = await http.request(method, url, json=body, headers=headers)
    with committed() as session:
        changed = fingerprint(session) != before
    return response, changed, world


@pytest.mark.parametrize(("method", "path", "caller"), CASES, ids=[" ".join(c) for c in CASES])
async def test_access(
    api_app: FastAPI, committed: Committed, method: str, path: str, caller: str
) -> None:
    response, changed, world = await call(api_app, committed, method, path, caller)
    described = f"{method} {response.request.url.path} as {caller} -> {response.text[:300]}"
    assert response.status_code == expected(method, path, caller), described
    assert response.headers["content-type"] == "application/json", described
    if response.status_code >= 400:
        assert not changed, f"{described}: refused, yet the database changed"
        assert set(response.json()) == {"error", "detail"}
    elif method not in SAFE:
        assert changed, f"{described}: answered OK but changed nothing"
    if caller not in ("read_a", "write_a"):
        leaked = [name for name in world.a_names if name in response.text]
        assert not leaked, f"{caller} saw merchant A's {leaked}"


WRITES = [(m, p) for (m, p) in ROUTES if m not in SAFE]


@pytest.mark.parametrize(("method", "path"), WRITES, ids=[" ".join(c) for c in WRITES])
async def test_a_change_is_audited_as_the_key(
    api_app: FastAPI, committed: Committed, method: str, path: str
) -> None:
    response, _changed, world = await call(api_app, committed, method, path, "write_a")
    assert response.is_success, response.text
    prefix = world.keys["write_a"][:12]
    with committed() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
        key = session.scalars(select(MerchantApiKey).where(MerchantApiKey.prefix == prefix)).one()
    assert entry.actor_label == f"apikey:{prefix}"
    assert entry.actor_account_id is None
    assert entry.ip == "127.0.0.1"  # httpx's ASGI transport reports this client
    assert entry.merchant_id == key.merchant_id
    assert entry.action.split(".")[0] in ("store", "offer")
    assert key.last_used_at is not None
    assert utcnow() - key.last_used_at < timedelta(minutes=1)
