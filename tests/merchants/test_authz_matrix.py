"""The portal's authorization matrix: every route under /portal and /api/v1/portal, as every
kind of visitor, through the real app on each backend.

HOW TO ADD A ROUTE. `test_every_portal_route_is_in_the_matrix` lists the routes of create_app()
and fails for any route missing from MATRIX below (and for rows whose route is gone). Add a row:

    ("POST", "/portal/offers/{offer_id}/pause"): Access(
        LOGIN, DENIED, OK, DENIED, HIDDEN,  # anonymous, bank admin, owner A, staff A, owner B
        params=lambda s: {"offer_id": s.offer_a},  # path parameters: A's objects
        form=lambda s: {"reason": "..."},  # a valid form, so that OK really succeeds
        setup=lambda session, s: ...,  # state the action needs, if any
    ),

and, if the route acts on a new kind of object, give the Scene one of A's (built in
`build_scene`). Every case runs on a fresh scene: merchant A (approved; owner A; staff A limited
to store A1 of A1/A2), merchant B (approved; owner B), a pending applicant, a suspended merchant
and a bank admin. "Owner B" always acts on A's objects: the path parameters are A's.

What each outcome means:
    OK      2xx, or a redirect that is not to the login page; an unsafe method changed something
    LOGIN   a page redirects to /portal/login?next=…; a post or API call gets 401
    DENIED  403     HIDDEN  404 (another merchant's object: not found, never "forbidden")
    CONFLICT 409 (the visitor's own object is in the wrong state for the action)
Every refusal changes nothing in the database. Beyond the table, every response to owner B and
to anonymous visitors is searched for A's names, and every response to staff A for store A2's;
every unsafe route refuses a request without its CSRF token; every route behind the login
treats an idle-expired session as no session.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cinema.models import Ticket
from cinema.tickets import CODE_LENGTH, TICKET_ALPHABET
from coupons.models import Claim, Offer, OfferStatus
from merchants import accounts, api_keys
from merchants.changes import StoreChange
from merchants.models import (
    ApiKeyAccess,
    ApplicationStatus,
    AuditEntry,
    Merchant,
    MerchantApiKey,
    MerchantApplication,
    MerchantStatus,
    PortalAccount,
    PortalSession,
    StaffStoreScope,
    Store,
    StoreStatus,
)
from merchants.portal_web import route_table
from tests.builders import make_merchant, make_store
from tests.merchants.cinema_support import make_cinema_store, sold_ticket
from tests.merchants.commerce_support import commerce_scene
from tests.merchants.conftest import Committed, portal_test_settings
from tests.merchants.portal_support import (
    FAST_HASHER,
    PASSWORD,
    approved_application,
    csrf_of,
    licence,
    make_admin,
    make_applicant,
    make_owner,
    session_cookie,
    unique,
)
from tianfu.app import create_app
from tianfu.orm import utcnow

pytestmark = pytest.mark.anyio

PREFIXES = ("/portal", "/api/v1/portal")
ROLES = ("anonymous", "bank_admin", "owner_a", "staff_a", "owner_b")
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
OK, LOGIN, DENIED, HIDDEN, CONFLICT = "ok", "login", 403, 404, 409
Outcome = str | int


@dataclass(frozen=True)
class Scene:
    tokens: dict[str, tuple[str, str]]  # role -> (session cookie, CSRF token)
    account_ids: dict[str, int]
    merchant_a: int
    merchant_b: int
    suspended_merchant: int
    pending_application: int
    staff_a: int
    store_a1: int
    store_a2: int
    a_names: tuple[str, ...]  # seen by A's people and bank admins only
    a2_name: str  # store A2: not by staff A either
    api_key_a: int  # a write key of A's
    # A's offers, coupons and sales (tests/merchants/commerce_support.py); paid orders at A1, A2
    offer_a: int = 0  # active, at A1 and A2
    draft_offer_a: int = 0
    pending_offer_a: int = 0  # waiting for the bank's review
    code_a: str = ""  # a coupon of offer_a held by a user, not used yet
    redeemed_claim_a: int = 0  # a coupon of offer_a redeemed at A1's counter today


def build_scene(session: Session) -> Scene:
    tag = secrets.token_hex(3)
    admin = make_admin(session)
    merchant_a = make_merchant(session, name=f"甲商户{tag}")
    approved_application(session, merchant_a)
    a1 = make_store(session, merchant=merchant_a, name=f"甲一店{tag}")
    a2 = make_store(session, merchant=merchant_a, name=f"甲二店{tag}")
    owner_a = make_owner(session, merchant_a, username=unique("ownera"))
    staff_a = accounts.create_staff(
        session, merchant_id=merchant_a.id, username=unique("staffa"), password=PASSWORD,
        hasher=FAST_HASHER, store_ids=[a1.id],
    )  # fmt: skip
    merchant_b = make_merchant(session, name=f"乙商户{tag}")
    approved_application(session, merchant_b)
    make_store(session, merchant=merchant_b, name=f"乙一店{tag}")
    owner_b = make_owner(session, merchant_b, username=unique("ownerb"))
    pending = make_applicant(session, business_name=f"丙申请{tag}")
    suspended = make_merchant(session, name=f"丁商户{tag}", status=MerchantStatus.suspended)
    key_a = api_keys.issue_key(
        session,
        merchant_id=merchant_a.id,
        name=f"甲同步{tag}",
        access=ApiKeyAccess.write,
        created_by=owner_a.id,
        now=utcnow(),
    )
    people = {"bank_admin": admin, "owner_a": owner_a, "staff_a": staff_a, "owner_b": owner_b}
    scene = Scene(
        tokens={role: session_cookie(session, account) for role, account in people.items()},
        account_ids={role: account.id for role, account in people.items()},
        merchant_a=merchant_a.id, merchant_b=merchant_b.id, suspended_merchant=suspended.id,
        pending_application=pending.application.id, staff_a=staff_a.id, store_a1=a1.id,
        store_a2=a2.id, a_names=(merchant_a.name, a1.name, a2.name, owner_a.username,
                                 staff_a.username), a2_name=a2.name,
        api_key_a=key_a.key.id,
    )  # fmt: skip
    return replace(scene, **commerce_scene(session, scene))


def default_params(scene: Scene) -> dict[str, object]:
    return {"merchant_id": scene.merchant_a, "application_id": scene.pending_application,
            "account_id": scene.staff_a}  # fmt: skip


def no_form(_scene: Scene) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Access:
    anonymous: Outcome
    bank_admin: Outcome
    owner_a: Outcome
    staff_a: Outcome
    owner_b: Outcome
    params: Callable[[Scene], dict[str, object]] = default_params
    form: Callable[[Scene], dict[str, str]] = no_form
    setup: Callable[[Session, Scene], None] | None = field(default=None)

    def outcome(self, role: str) -> Outcome:
        value: Outcome = getattr(self, role)
        return value

    @property
    def public(self) -> bool:
        """Open to visitors without a session: its posts carry the pre-session CSRF token."""
        return self.anonymous == OK


def a_rejected(session: Session, scene: Scene) -> None:
    """Merchant A back to pending with its application rejected, so owner A can resubmit."""
    merchant = session.get(Merchant, scene.merchant_a)
    assert merchant is not None
    merchant.status = MerchantStatus.pending
    application = session.scalars(
        select(MerchantApplication).where(MerchantApplication.merchant_id == scene.merchant_a)
    ).one()
    application.status = ApplicationStatus.rejected
    application.field_reasons = {"licence_no": "看不清"}


def application_form(_scene: Scene) -> dict[str, str]:
    return {"business_name": "甲商户新名", "licence_no": licence(), "contact_name": "王小明",
            "contact_phone": "13800138000", "category": "hotpot"}  # fmt: skip


def signup_form(scene: Scene) -> dict[str, str]:
    return application_form(scene) | {
        "username": unique("signup"), "password": PASSWORD, "password_confirm": PASSWORD,
    }  # fmt: skip


NEW_PASSWORD = {"current_password": PASSWORD, "password": "another good secret",
                "password_confirm": "another good secret"}  # fmt: skip
ADMIN_ONLY = (LOGIN, OK, DENIED, DENIED, DENIED)
OWNER_ONLY = (LOGIN, DENIED, OK, DENIED, OK)  # owner B on its own merchant (no object in the path)
OWNER_ON_A = (LOGIN, DENIED, OK, DENIED, HIDDEN)  # owner B on A's object
EVERY_ACCOUNT = (LOGIN, OK, OK, OK, OK)
EVERYONE = (OK, OK, OK, OK, OK)


def on_store_a1(scene: Scene) -> dict[str, object]:
    return {"store_id": scene.store_a1}


def store_form(_scene: Scene) -> dict[str, str]:
    return {"name": f"新店{secrets.token_hex(2)}", "address": "成都市锦江区红星路三段2号",
            "category": "hotpot", "lat": "30.6578", "lng": "104.0808", "coord": "gcj02",
            "hours_mon": "10:00-14:00,17:00-22:00", "closed_dates": "2026-10-01"}  # fmt: skip


def a1_closed(session: Session, scene: Scene) -> None:
    store = session.get(Store, scene.store_a1)
    assert store is not None
    store.status = StoreStatus.temporarily_closed


def offer_form(_scene: Scene) -> dict[str, str]:
    return {"kind": "fixed_off", "title_zh": f"立减5元{secrets.token_hex(2)}", "amount_off": "5",
            "total_stock": "100", "budget": "500", "per_user_limit": "1"}  # fmt: skip


def on_offer_a(scene: Scene) -> dict[str, object]:
    return {"offer_id": scene.offer_a}


def on_draft_a(scene: Scene) -> dict[str, object]:
    return {"offer_id": scene.draft_offer_a}


def on_pending_a(scene: Scene) -> dict[str, object]:
    return {"offer_id": scene.pending_offer_a}


def at_a1(scene: Scene) -> dict[str, str]:
    return {"store_id": str(scene.store_a1)}


def offer_a_paused(session: Session, scene: Scene) -> None:
    offer = session.get(Offer, scene.offer_a)
    assert offer is not None
    offer.status = OfferStatus.paused


def matrix_ticket_code(scene: Scene) -> str:
    """A ticket code the admit form can name before the ticket is sold: store A1's id written
    in the ticket alphabet, so unique per scene (sold codes are random)."""
    digits, number = "", scene.store_a1
    while number:
        number, digit = divmod(number, len(TICKET_ALPHABET))
        digits = TICKET_ALPHABET[digit] + digits
    return digits.rjust(CODE_LENGTH, TICKET_ALPHABET[0])


def a1_ticket(session: Session, scene: Scene) -> None:
    """A1 a cinema, with a ticket sold for a showtime later today, under the form's code."""
    make_cinema_store(session, scene.store_a1)
    ticket = session.get(Ticket, sold_ticket(session, scene.store_a1).ticket_id)
    assert ticket is not None
    ticket.code = matrix_ticket_code(scene)
    session.flush()


MERCHANT_PEOPLE = (LOGIN, DENIED, OK, OK, OK)  # owners and staff, each of its own merchant
MERCHANT_PEOPLE_ON_A = (LOGIN, DENIED, OK, OK, HIDDEN)

# fmt: off
MATRIX: dict[tuple[str, str], Access] = {
    # -- login, sign-up, the dashboard, one's own account -----------------------------------
    ("GET", "/portal/login"): Access(*EVERYONE),
    ("POST", "/portal/login"): Access(
        *EVERYONE, form=lambda s: {"username": s.a_names[3], "password": PASSWORD}),
    ("GET", "/portal/signup"): Access(*EVERYONE),
    ("POST", "/portal/signup"): Access(*EVERYONE, form=signup_form),
    ("POST", "/portal/logout"): Access(*EVERY_ACCOUNT),
    ("GET", "/portal"): Access(*EVERY_ACCOUNT),
    ("GET", "/portal/password"): Access(*EVERY_ACCOUNT),
    ("POST", "/portal/password"): Access(*EVERY_ACCOUNT, form=lambda s: NEW_PASSWORD),
    # -- the owner's application: B's own is approved, so resubmitting it is a conflict ---------
    ("GET", "/portal/application"): Access(*OWNER_ONLY),
    ("POST", "/portal/application"): Access(
        LOGIN, DENIED, OK, DENIED, CONFLICT, form=application_form, setup=a_rejected),
    # -- the bank's pages -----------------------------------------------------------------------
    ("GET", "/portal/admin/applications"): Access(*ADMIN_ONLY),
    ("GET", "/portal/admin/applications/{application_id}"): Access(*ADMIN_ONLY),
    ("POST", "/portal/admin/applications/{application_id}/approve"): Access(*ADMIN_ONLY),
    ("POST", "/portal/admin/applications/{application_id}/reject"): Access(
        *ADMIN_ONLY, form=lambda s: {"reason_licence_no": "看不清"}),
    ("GET", "/portal/admin/merchants"): Access(*ADMIN_ONLY),
    ("POST", "/portal/admin/merchants/{merchant_id}/suspend"): Access(
        *ADMIN_ONLY, form=lambda s: {"reason": "投诉核查"}),
    ("POST", "/portal/admin/merchants/{merchant_id}/reinstate"): Access(
        *ADMIN_ONLY, params=lambda s: {"merchant_id": s.suspended_merchant}),
    ("GET", "/portal/admin/audit"): Access(*ADMIN_ONLY),
    # -- the owner's staff ------------------------------------------------------------------------
    ("GET", "/portal/staff"): Access(*OWNER_ONLY),
    ("POST", "/portal/staff"): Access(
        *OWNER_ONLY, form=lambda s: {"username": unique("staff"), "password": PASSWORD,
                                     "password_confirm": PASSWORD}),
    ("POST", "/portal/staff/{account_id}/stores"): Access(
        *OWNER_ON_A, form=lambda s: {"store_id": str(s.store_a2)}),
    ("POST", "/portal/staff/{account_id}/disable"): Access(*OWNER_ON_A),
    ("POST", "/portal/staff/{account_id}/enable"): Access(*OWNER_ON_A),
    # -- stores: staff see theirs; owners of approved merchants change them ----------------------
    ("GET", "/portal/stores"): Access(LOGIN, DENIED, OK, OK, OK),
    ("GET", "/portal/stores/new"): Access(*OWNER_ONLY),
    ("POST", "/portal/stores"): Access(*OWNER_ONLY, form=store_form),
    ("GET", "/portal/stores/{store_id}"): Access(LOGIN, DENIED, OK, OK, HIDDEN, params=on_store_a1),
    ("POST", "/portal/stores/{store_id}"): Access(*OWNER_ON_A, params=on_store_a1, form=store_form),
    ("POST", "/portal/stores/{store_id}/close"): Access(*OWNER_ON_A, params=on_store_a1),
    ("POST", "/portal/stores/{store_id}/reopen"): Access(
        *OWNER_ON_A, params=on_store_a1, setup=a1_closed),
    ("GET", "/api/v1/portal/stores/{store_id}"): Access(
        LOGIN, DENIED, OK, OK, HIDDEN, params=on_store_a1),
    # -- the owner's API keys (the REST API they open: tests/merchants/test_api_keys.py) --------
    ("GET", "/portal/api-keys"): Access(*OWNER_ONLY),
    ("POST", "/portal/api-keys"): Access(
        *OWNER_ONLY, form=lambda s: {"name": "收银系统", "access": "write"}),
    ("POST", "/portal/api-keys/{key_id}/revoke"): Access(
        *OWNER_ON_A, params=lambda s: {"key_id": s.api_key_a}),
    # -- offers: staff read theirs, owners of approved merchants write, bank admins review ------
    ("GET", "/portal/offers"): Access(*MERCHANT_PEOPLE),
    ("GET", "/portal/offers/new"): Access(*OWNER_ONLY),
    ("POST", "/portal/offers"): Access(*OWNER_ONLY, form=offer_form),
    ("GET", "/portal/offers/{offer_id}"): Access(*MERCHANT_PEOPLE_ON_A, params=on_offer_a),
    ("GET", "/portal/offers/{offer_id}/edit"): Access(*OWNER_ON_A, params=on_draft_a),
    ("POST", "/portal/offers/{offer_id}/edit"): Access(
        *OWNER_ON_A, params=on_draft_a, form=offer_form),
    ("POST", "/portal/offers/{offer_id}/submit"): Access(*OWNER_ON_A, params=on_draft_a),
    ("POST", "/portal/offers/{offer_id}/pause"): Access(*OWNER_ON_A, params=on_offer_a),
    ("POST", "/portal/offers/{offer_id}/resume"): Access(
        *OWNER_ON_A, params=on_offer_a, setup=offer_a_paused),
    ("POST", "/portal/offers/{offer_id}/end"): Access(*OWNER_ON_A, params=on_offer_a),
    ("GET", "/portal/admin/offers"): Access(*ADMIN_ONLY),
    ("GET", "/portal/admin/offers/{offer_id}"): Access(*ADMIN_ONLY, params=on_pending_a),
    ("POST", "/portal/admin/offers/{offer_id}/approve"): Access(*ADMIN_ONLY, params=on_pending_a),
    ("POST", "/portal/admin/offers/{offer_id}/reject"): Access(
        *ADMIN_ONLY, params=on_pending_a, form=lambda s: {"note": "请补充使用说明"}),
    # -- the counter: owners and staff, staff at their stores -----------------------------------
    ("GET", "/portal/counter"): Access(*MERCHANT_PEOPLE),
    ("GET", "/portal/counter/check"): Access(*MERCHANT_PEOPLE),
    ("POST", "/portal/counter/redeem"): Access(
        *MERCHANT_PEOPLE_ON_A, form=lambda s: at_a1(s) | {"code": s.code_a}),
    ("POST", "/portal/counter/redemptions/{claim_id}/undo"): Access(
        *MERCHANT_PEOPLE_ON_A, params=lambda s: {"claim_id": s.redeemed_claim_a}, form=at_a1),
    ("GET", "/portal/counter/tickets/check"): Access(*MERCHANT_PEOPLE),
    ("POST", "/portal/counter/tickets/admit"): Access(
        *MERCHANT_PEOPLE_ON_A, form=lambda s: at_a1(s) | {"code": matrix_ticket_code(s)},
        setup=a1_ticket),
    # -- sales and settlement; the bank's reconciliation and settlements -----------------------
    ("GET", "/portal/sales"): Access(*MERCHANT_PEOPLE),
    ("GET", "/portal/sales.csv"): Access(*MERCHANT_PEOPLE),
    ("GET", "/portal/sales/settlement.csv"): Access(*OWNER_ONLY),
    ("GET", "/portal/admin/reconciliation"): Access(*ADMIN_ONLY),
    ("GET", "/portal/admin/reconciliation.csv"): Access(*ADMIN_ONLY),
    ("GET", "/portal/admin/settlements"): Access(*ADMIN_ONLY),
    ("GET", "/portal/admin/settlements.csv"): Access(*ADMIN_ONLY),
    # -- the portal's JSON API --------------------------------------------------------------------
    ("GET", "/api/v1/portal/me"): Access(*EVERY_ACCOUNT),
    ("GET", "/api/v1/portal/merchants/{merchant_id}"): Access(LOGIN, OK, OK, OK, HIDDEN),
    ("GET", "/api/v1/portal/stores"): Access(LOGIN, DENIED, OK, OK, OK),
    ("DELETE", "/api/v1/portal/session"): Access(*EVERY_ACCOUNT),
}
# fmt: on
CASES = [(method, path, role) for (method, path) in MATRIX for role in ROLES]


def portal_routes(app: FastAPI) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for info in route_table(app):
        if not info.path.startswith(PREFIXES):
            continue
        # A mount or websocket under the portal would escape this table: refuse it outright.
        assert isinstance(info.route, APIRoute), f"{info.path}: only APIRoutes under {PREFIXES}"
        found |= {(method, info.path) for method in info.methods}
    return found


def test_every_portal_route_is_in_the_matrix(portal_db_url: str) -> None:
    app = create_app(portal_test_settings(portal_db_url))
    try:
        routes = portal_routes(app)
    finally:
        app.state.engine.dispose()
    missing = sorted(routes - set(MATRIX))
    stale = sorted(set(MATRIX) - routes)
    assert not missing, f"routes without a row in MATRIX (add them): {missing}"
    assert not stale, f"rows of MATRIX for routes that no longer exist: {stale}"


# -- running a case ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matrix_app(portal_db_url: str) -> Iterator[FastAPI]:
    app = create_app(portal_test_settings(portal_db_url))
    yield app
    app.state.engine.dispose()


def fingerprint(session: Session) -> tuple[Any, ...]:
    """Everything a portal action could change (not last_seen_at, which any request moves)."""
    return (
        session.execute(select(Merchant.id, Merchant.status, Merchant.name)
                        .order_by(Merchant.id)).all(),
        session.execute(select(MerchantApplication.id, MerchantApplication.status,
                               MerchantApplication.field_reasons)
                        .order_by(MerchantApplication.id)).all(),
        session.execute(select(PortalAccount.id, PortalAccount.disabled,
                               PortalAccount.password_hash, PortalAccount.failed_logins)
                        .order_by(PortalAccount.id)).all(),
        session.execute(select(StaffStoreScope.account_id, StaffStoreScope.store_id)
                        .order_by(StaffStoreScope.account_id, StaffStoreScope.store_id)).all(),
        session.execute(select(PortalSession.id, PortalSession.revoked)
                        .order_by(PortalSession.id)).all(),
        session.execute(select(Store.id, Store.name, Store.address, Store.status, Store.category_id,
                               Store.opening_hours, func.ST_AsText(Store.location_gcj02))
                        .order_by(Store.id)).all(),
        session.scalar(select(func.count()).select_from(StoreChange)),
        session.execute(select(MerchantApiKey.id, MerchantApiKey.revoked_at)
                        .order_by(MerchantApiKey.id)).all(),
        session.execute(select(Offer.id, Offer.status, Offer.title_zh, Offer.terms_version,
                               Offer.reviewed_by).order_by(Offer.id)).all(),
        session.execute(select(Claim.id, Claim.status, Claim.redeemed_store_id,
                               Claim.restore_count).order_by(Claim.id)).all(),
        session.scalar(select(func.count()).select_from(AuditEntry)),
    )  # fmt: skip


@dataclass
class Sent:
    response: httpx.Response
    changed: bool


async def send(
    app: FastAPI,
    committed: Committed,
    *,
    method: str,
    path: str,
    role: str,
    csrf: bool = True,
    expired: bool = False,
) -> tuple[Sent, Scene]:
    access = MATRIX[(method, path)]
    with committed() as session:
        scene = build_scene(session)
        if access.setup is not None:
            access.setup(session, scene)
        if expired:
            account = session.get(PortalAccount, scene.account_ids[role])
            assert account is not None
            scene.tokens[role] = session_cookie(session, account, age=timedelta(minutes=31))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tianfu.test") as http:
        headers: dict[str, str] = {}
        data: dict[str, str] | None = None
        token = ""
        if role != "anonymous":
            cookie, token = scene.tokens[role]
            http.cookies.set("tianfu_portal", cookie)
        if method not in SAFE:
            data = access.form(scene)
            if access.public:  # the pre-session token of a login page fetched just now
                login_page = await http.get("/portal/login")
                if login_page.status_code == 200:
                    token = csrf_of(login_page)
                else:  # logged in: the login page sends it home; take an anonymous visitor's
                    async with httpx.AsyncClient(
                        transport=transport, base_url="http://tianfu.test"
                    ) as visitor:
                        token = csrf_of(await visitor.get("/portal/login"))
                        http.cookies.set("tianfu_portal_csrf",
                                         visitor.cookies["tianfu_portal_csrf"])  # fmt: skip
            if csrf and path.startswith("/api/"):
                headers["X-CSRF-Token"] = token
            elif csrf:
                data["csrf_token"] = token
        with committed() as session:
            before = fingerprint(session)
        url = path.format(**access.params(scene))
        response = await http.request(method, url, data=data, headers=headers)
        with committed() as session:
            after = fingerprint(session)
    return Sent(response, before != after), scene


def check(outcome: Outcome, method: str, sent: Sent) -> None:
    response = sent.response
    status, location = response.status_code, response.headers.get("location", "")
    described = f"{method} {response.request.url.path} -> {status} {location} {response.text[:300]}"
    if outcome == OK:
        assert status < 300 or (status == 303 and not location.startswith("/portal/login?")), (
            described
        )
        if method not in SAFE:
            assert sent.changed, f"{described}: answered OK but changed nothing"
        return
    if outcome == LOGIN:
        if method in SAFE and not response.request.url.path.startswith("/api/"):
            assert (status, location.split("?")[0]) == (303, "/portal/login"), described
        else:
            assert status == 401, described
    else:
        assert status == outcome, described
    assert not sent.changed, f"{described}: refused, yet the database changed"


@pytest.mark.parametrize(("method", "path", "role"), CASES, ids=[" ".join(c) for c in CASES])
async def test_access(
    matrix_app: FastAPI, committed: Committed, method: str, path: str, role: str
) -> None:
    sent, scene = await send(matrix_app, committed, method=method, path=path, role=role)
    check(MATRIX[(method, path)].outcome(role), method, sent)
    body = sent.response.text
    if role in ("anonymous", "owner_b"):
        leaked = [name for name in scene.a_names if name in body]
        assert not leaked, f"{role} saw merchant A's {leaked}"
    if role == "staff_a":
        assert scene.a2_name not in body, "staff A saw store A2, outside its stores"


UNSAFE = [(m, p) for (m, p) in MATRIX if m not in SAFE]


def first_allowed(access: Access) -> str:
    return next(role for role in ROLES if access.outcome(role) == OK)


@pytest.mark.parametrize(("method", "path"), UNSAFE, ids=[" ".join(c) for c in UNSAFE])
async def test_unsafe_routes_refuse_a_request_without_the_csrf_token(
    matrix_app: FastAPI, committed: Committed, method: str, path: str
) -> None:
    role = first_allowed(MATRIX[(method, path)])
    sent, _scene = await send(
        matrix_app, committed, method=method, path=path, role=role, csrf=False
    )
    assert sent.response.status_code == 403, sent.response.text[:300]
    assert "CSRF" in sent.response.text
    assert not sent.changed


BEHIND_LOGIN = [(m, p) for (m, p), access in MATRIX.items() if access.anonymous == LOGIN]


@pytest.mark.parametrize(("method", "path"), BEHIND_LOGIN, ids=[" ".join(c) for c in BEHIND_LOGIN])
async def test_an_idle_expired_session_is_no_session(
    matrix_app: FastAPI, committed: Committed, method: str, path: str
) -> None:
    role = first_allowed(MATRIX[(method, path)])
    sent, _scene = await send(matrix_app, committed, method=method, path=path, role=role,
                              expired=True)  # fmt: skip
    check(LOGIN, method, sent)
