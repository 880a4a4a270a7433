"""Builders for the portal's offer, counter and sales tests, and merchant A's objects of that
kind for the authorization matrix's Scene: offers in each state, a coupon held by a user, one
redeemed at the counter today, and paid orders at both of A's stores. They flush, never commit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from coupons import claims
from coupons.models import Claim, Offer, OfferStatus
from merchants import accounts
from merchants.models import Merchant, Store
from payments.models import AttemptStatus, Order, OrderStatus, PaymentAttempt, Refund, RefundStatus
from tests.builders import make_merchant, make_offer, make_store
from tests.merchants.conftest import Clients
from tests.merchants.portal_support import (
    FAST_HASHER,
    PASSWORD,
    approved_application,
    make_admin,
    make_owner,
    session_cookie,
    unique,
)
from tianfu.orm import utcnow


class SceneLike(Protocol):
    """What commerce_scene needs of the matrix's Scene."""

    @property
    def merchant_a(self) -> int: ...
    @property
    def store_a1(self) -> int: ...
    @property
    def store_a2(self) -> int: ...
    @property
    def account_ids(self) -> dict[str, int]: ...
    @property
    def a_names(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Shop:
    """Merchant A (approved; stores 1 and 2; its owner; staff limited to store 1), merchant B
    (approved; one store; its owner) and two bank admins, with a live session each."""

    merchant: int
    store1: int
    store2: int
    other_merchant: int
    other_store: int
    account_ids: dict[str, int]  # owner, staff, other_owner, admin, admin2
    tokens: dict[str, tuple[str, str]]  # role -> (session cookie, CSRF token)
    store1_name: str
    store2_name: str

    def maker(self, role: str) -> str:
        return f"portal:{self.account_ids[role]}"


def build_shop(session: Session) -> Shop:
    merchant = make_merchant(session, name=unique("甲商户"))
    approved_application(session, merchant)
    store1 = make_store(session, merchant=merchant, name=unique("甲一店"))
    store2 = make_store(session, merchant=merchant, name=unique("甲二店"))
    other = make_merchant(session, name=unique("乙商户"))
    approved_application(session, other)
    other_store = make_store(session, merchant=other, name=unique("乙一店"))
    people = {
        "owner": make_owner(session, merchant),
        "staff": accounts.create_staff(
            session, merchant_id=merchant.id, username=unique("staff"), password=PASSWORD,
            hasher=FAST_HASHER, store_ids=[store1.id],
        ),
        "other_owner": make_owner(session, other),
        "admin": make_admin(session),
        "admin2": make_admin(session),
    }  # fmt: skip
    return Shop(
        merchant=merchant.id, store1=store1.id, store2=store2.id, other_merchant=other.id,
        other_store=other_store.id, account_ids={r: a.id for r, a in people.items()},
        tokens={r: session_cookie(session, a) for r, a in people.items()},
        store1_name=store1.name, store2_name=store2.name,
    )  # fmt: skip


def browser(clients: Clients, shop: Shop, role: str) -> tuple[httpx.AsyncClient, str]:
    """A client logged in as `role` of the shop, and its session's CSRF token."""
    cookie, csrf = shop.tokens[role]
    client = clients()
    client.cookies.set("tianfu_portal", cookie)
    return client, csrf


def openid() -> str:
    return f"oPortal{secrets.token_hex(10)}"


def portal_offer(
    session: Session,
    merchant_id: int,
    *,
    created_by: str,
    status: OfferStatus = OfferStatus.active,
    title_zh: str | None = None,
    **terms: Any,
) -> Offer:
    merchant = session.get(Merchant, merchant_id)
    assert merchant is not None
    title = title_zh or f"立减10元{secrets.token_hex(3)}"
    return make_offer(
        session, merchant=merchant, title_zh=title, status=status, created_by=created_by, **terms
    )


def claimed_coupon(
    session: Session, offer_id: int, *, holder: str | None = None, now: datetime | None = None
) -> Claim:
    return claims.claim(
        session,
        offer_id=offer_id,
        openid=holder or openid(),
        client_request_id=secrets.token_hex(8),
        now=now or utcnow(),
    )


def redeemed_coupon(
    session: Session, offer_id: int, store_id: int, *, now: datetime | None = None
) -> Claim:
    """A coupon redeemed at the counter of `store_id` (as portal_counter marks its own)."""
    coupon = claimed_coupon(session, offer_id, now=now)
    return claims.redeem(
        session,
        code=coupon.code,
        store_id=store_id,
        now=now or utcnow(),
        order_ref=f"counter:{secrets.token_urlsafe(16)}",
    )


def paid_order(
    session: Session,
    store_id: int,
    *,
    total_fen: int,
    paid_at: datetime,
    discount_fen: int = 0,
    points_fen: int = 0,
    status: OrderStatus = OrderStatus.paid,
) -> tuple[Order, PaymentAttempt]:
    store = session.get(Store, store_id)
    assert store is not None
    order_no = f"TF{secrets.token_hex(9)}"
    payable = total_fen - discount_fen - points_fen
    order = Order(
        order_no=order_no, openid=openid(), idempotency_key=order_no,
        merchant_id=store.merchant_id, store_id=store.id, description=store.name,
        total_fen=total_fen, discount_fen=discount_fen, points_used=points_fen,
        points_fen=points_fen, payable_fen=payable, status=status, expires_at=paid_at,
        paid_at=paid_at,
    )  # fmt: skip
    session.add(order)
    session.flush()
    attempt = PaymentAttempt(
        order_id=order.id, seq=1, out_trade_no=f"{order_no}P1", channel="tenpay_v3",
        account="1900009191", method="jsapi", amount_fen=payable, status=AttemptStatus.paid,
        paid_at=paid_at,
    )  # fmt: skip
    session.add(attempt)
    session.flush()
    order.paid_attempt_id = attempt.id
    session.flush()
    return order, attempt


def refund_of(
    session: Session,
    sale: tuple[Order, PaymentAttempt],
    *,
    amount_fen: int,
    at: datetime,
    status: RefundStatus = RefundStatus.succeeded,
    requested_by: str = "portal:test",
) -> Refund:
    order, attempt = sale
    seq = len(list(session.scalars(select(Refund.id).where(Refund.attempt_id == attempt.id)))) + 1
    refund = Refund(
        order_id=order.id, attempt_id=attempt.id, seq=seq,
        out_refund_no=f"{attempt.out_trade_no}R{seq}", idempotency_key=f"r{seq}",
        amount_fen=amount_fen, requested_by=requested_by, status=status,
        succeeded_at=at if status is RefundStatus.succeeded else None,
    )  # fmt: skip
    refund.created_at = at
    session.add(refund)
    order.refund_reserved_fen += amount_fen
    if status is RefundStatus.succeeded:
        order.refunded_fen += amount_fen
    session.flush()
    return refund


def commerce_scene(session: Session, scene: SceneLike) -> dict[str, Any]:
    """Merchant A's offers, coupons and sales, as fields of the matrix's Scene."""
    tag = secrets.token_hex(3)
    maker = f"portal:{scene.account_ids['owner_a']}"
    offer = portal_offer(
        session, scene.merchant_a, created_by=maker, title_zh=f"甲优惠{tag}",
        store_ids=[scene.store_a1, scene.store_a2],
    )  # fmt: skip
    draft = portal_offer(session, scene.merchant_a, created_by=maker, status=OfferStatus.draft,
                         title_zh=f"甲草稿{tag}")  # fmt: skip
    pending = portal_offer(session, scene.merchant_a, created_by=maker,
                           status=OfferStatus.pending_review, title_zh=f"甲待审{tag}")  # fmt: skip
    code = claimed_coupon(session, offer.id).code
    redeemed = redeemed_coupon(session, offer.id, scene.store_a1)
    now = utcnow()
    paid_order(session, scene.store_a1, total_fen=12_800, discount_fen=1_000, paid_at=now)
    paid_order(session, scene.store_a2, total_fen=5_600, paid_at=now)
    return {
        "offer_a": offer.id,
        "draft_offer_a": draft.id,
        "pending_offer_a": pending.id,
        "code_a": code,
        "redeemed_claim_a": redeemed.id,
        "a_names": (*scene.a_names, offer.title_zh, draft.title_zh, pending.title_zh),
    }
