"""The counter: a cashier (owner or staff, staff at their own stores only) chooses the store,
enters the customer's coupon code, sees the offer, its terms, the coupon's state and a masked
user, and redeems it; today's redemptions at the store can be undone until the day is settled.

A code is looked up among this merchant's coupons only: another merchant's code is "券码不存在",
exactly like a code that does not exist, so a counter cannot learn that it does.

A double submit redeems once. The redemption is coupons.claims' conditional UPDATE; the confirm
form carries a one-time attempt token that the redemption stores as its `order_ref`
("counter:<token>"), so the second submit of the same form recognises its own redemption and
answers "已核销" like the first, while a coupon used earlier is refused as used. Only counter
redemptions can be undone here: a coupon used by a paid order comes back through the order's
refund, never at the counter.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cinema.catalog import CINEMA_CATEGORY
from coupons import claims
from coupons.codes import format_code, is_valid_code, normalise_code
from coupons.errors import CouponAlreadyRedeemedError
from coupons.models import Claim, ClaimStatus, Offer
from coupons.rules import ApplyContext, evaluate
from coupons.service import get_offer, terms_of
from merchants.auth import PortalForm, Principal, Scope, audit, now_of, portal_router
from merchants.errors import OutOfScopeError
from merchants.models import Category, Store
from merchants.portal_offer_terms import CLAIM_STATUS_ZH, headline_zh
from merchants.portal_offers import offer_facts
from merchants.portal_web import SHANGHAI, message_page, render, see_other
from merchants.scope import NOT_FOUND_ZH, MerchantScope
from tianfu.deps import DbSession
from tianfu.errors import TianfuError

router = portal_router("/portal/counter")

COUNTER_REF = "counter:"
NOT_FOUND = "券码不存在"
_ATTEMPT_RE = re.compile(r"^[A-Za-z0-9_-]{16,43}$")
_CODE_INPUT_LIMIT = 40  # twelve digits with whatever separators a person types
# Terms about claiming, not using: no concern of the cashier's.
_NOT_AT_COUNTER = frozenset({"每人限领", "每日限领", "库存", "预算"})
_DONE_ZH = {"redeemed": "已核销", "undone": "已撤销核销，券已退回顾客"}


def mask_user(openid: str) -> str:
    """Enough to tell two customers apart at the counter, not enough to copy an openid."""
    return f"{openid[:2]}…" if len(openid) <= 8 else f"{openid[:4]}…{openid[-4:]}"


def _user(request: Request) -> Principal:
    principal: Principal = request.state.portal_principal
    return principal


def _store_id(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 10 else None


def _chosen_store(
    db: Session, scope: MerchantScope, value: str
) -> tuple[list[Store], Store | None]:
    """The account's stores and the one asked for (the first when none is): another
    merchant's or another staff's store is "not found"."""
    stores = list(db.scalars(scope.stores()))
    if not value:
        return stores, stores[0] if stores else None
    store_id = _store_id(value)
    if store_id is None:
        raise OutOfScopeError(f"门店{NOT_FOUND_ZH}")
    return stores, scope.get_store(db, store_id)


def sells_tickets(db: Session, store: Store) -> bool:
    """A cinema's counter also checks film tickets at the entrance (merchants.portal_tickets)."""
    code = db.scalar(select(Category.code).where(Category.id == store.category_id))
    return code == CINEMA_CATEGORY


def _coupon(db: Session, scope: MerchantScope, code: str) -> Claim | None:
    """A coupon of this merchant's offers by its (normalised) code."""
    return db.scalars(
        select(Claim)
        .join(Offer, Offer.id == Claim.offer_id)
        .where(Claim.code == code, scope.merchant_clause(Offer.merchant_id))
        .execution_options(populate_existing=True)
    ).one_or_none()


def _today(request: Request) -> tuple[datetime, datetime]:
    day = now_of(request).astimezone(SHANGHAI).date()
    start = datetime.combine(day, time(0), SHANGHAI)
    return start, start + timedelta(days=1)


def _redemptions(request: Request, db: Session, scope: MerchantScope, store: Store) -> list[Any]:
    start, end = _today(request)
    rows = db.execute(
        select(Claim, Offer.title_zh)
        .join(Offer, Offer.id == Claim.offer_id)
        .where(
            Claim.redeemed_store_id == store.id,
            Claim.status == ClaimStatus.redeemed,
            Claim.redeemed_at >= start,
            Claim.redeemed_at < end,
            scope.merchant_clause(Offer.merchant_id),
        )
        .order_by(Claim.redeemed_at.desc(), Claim.id.desc())
        .limit(200)
    )
    return [
        {
            "claim": claim,
            "title": title,
            "user": mask_user(claim.openid),
            "code_tail": claim.code[-4:],
            "undoable": (claim.order_ref or "").startswith(COUNTER_REF),
        }
        for claim, title in rows
    ]


def _counter_page(
    request: Request,
    db: Session,
    scope: MerchantScope,
    *,
    store_value: str = "",
    code: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    stores, store = _chosen_store(db, scope, store_value)
    redemptions = _redemptions(request, db, scope, store) if store else []
    just = request.query_params.get("claim", "")
    context = {
        "stores": stores,
        "store": store,
        "code": code,
        "error": error,
        "redemptions": redemptions,
        "done": _DONE_ZH.get(request.query_params.get("done", ""), ""),
        # The coupon just redeemed, if it is among this store's redemptions of today.
        "just": next((r for r in redemptions if str(r["claim"].id) == just), None),
        "tickets": store is not None and sells_tickets(db, store),
    }
    user = _user(request)
    return render(request, "portal/counter.html", context, user=user, status_code=status)


@router.get("", response_class=HTMLResponse)
def counter_page(request: Request, db: DbSession, scope: Scope, store_id: str = "") -> Response:
    return _counter_page(request, db, scope, store_value=store_id)


def _applies(db: Session, coupon: Claim, store: Store, now: datetime) -> tuple[Offer, str]:
    """The coupon's offer, and why it cannot be used at `store` now ("" when it can): the
    judgement coupons.claims.redeem makes, shown before the cashier confirms."""
    offer = get_offer(db, coupon.offer_id)
    use_terms = replace(terms_of(offer), new_customers_only=False, points_cost=0)
    context = ApplyContext(now, store.id, store.merchant_id, None, points_balance=0)
    verdict = evaluate(use_terms, context)
    return offer, "" if verdict.applies else verdict.reason_zh


def _look_up(
    request: Request, db: Session, scope: MerchantScope, store: Store, code: str
) -> Claim | Response:
    """The merchant's coupon of a typed code, or the counter page saying what is wrong."""
    code = code[:_CODE_INPUT_LIMIT]
    if not is_valid_code(code):  # a typo, caught by the check digit before any lookup
        error, status = "券码有误，请核对后重新输入", 422
    elif (coupon := _coupon(db, scope, normalise_code(code))) is not None:
        return coupon
    else:
        error, status = NOT_FOUND, 404
    return _counter_page(
        request, db, scope, store_value=str(store.id), code=code, error=error, status=status
    )


@router.get("/check", response_class=HTMLResponse)
def check(
    request: Request, db: DbSession, scope: Scope, store_id: str = "", code: str = ""
) -> Response:
    """The confirm page. A GET, so the cashier's back button and reload are harmless; the code
    is in the query string, on a page that is never cached and sends no referrer elsewhere."""
    if not code.strip():
        return see_other(f"/portal/counter?store_id={store_id}" if store_id else "/portal/counter")
    _stores, store = _chosen_store(db, scope, store_id)
    if store is None:
        raise OutOfScopeError(f"门店{NOT_FOUND_ZH}")
    found = _look_up(request, db, scope, store, code)
    if isinstance(found, Response):
        return found
    coupon = found
    now = now_of(request)
    offer, blocker = _applies(db, coupon, store, now)
    expired = coupon.expires_at is not None and coupon.expires_at <= now
    late = coupon.status is ClaimStatus.claimed and expired  # the expiry job has not run yet
    context = {
        "store": store,
        "coupon": coupon,
        "code": format_code(coupon.code),
        "offer": offer,
        "headline": headline_zh(offer),
        "facts": [fact for fact in offer_facts(db, scope, offer) if fact[0] not in _NOT_AT_COUNTER],
        "status_zh": "已过期" if late else CLAIM_STATUS_ZH[coupon.status],
        "user_masked": mask_user(coupon.openid),
        "blocker": blocker,
        "usable": coupon.status is ClaimStatus.claimed and not expired and not blocker,
        "same_store": coupon.redeemed_store_id == store.id,
        "attempt": secrets.token_urlsafe(16),
    }
    return render(request, "portal/counter_check.html", context, user=_user(request))


def _refused(
    request: Request, message: str, status: int, store: Store, *, title: str = "无法核销"
) -> Response:
    back = (f"/portal/counter?store_id={store.id}", "返回核销")
    return message_page(request, status_code=status, title=title, message=message, link=back)


@router.post("/redeem")
def redeem(request: Request, db: DbSession, scope: Scope, form: PortalForm) -> Response:
    store_id = _store_id(str(form.get("store_id", "") or ""))
    if store_id is None:
        raise OutOfScopeError(f"门店{NOT_FOUND_ZH}")
    store = scope.get_store(db, store_id)
    found = _look_up(request, db, scope, store, str(form.get("code", "") or ""))
    if isinstance(found, Response):
        return found
    coupon = found
    attempt = str(form.get("attempt", "") or "")
    if not _ATTEMPT_RE.fullmatch(attempt):
        attempt = secrets.token_urlsafe(16)  # a form without one: a second submit is refused
    reference = f"{COUNTER_REF}{attempt}"
    done = f"/portal/counter?store_id={store.id}&done=redeemed&claim={coupon.id}"
    try:
        with db.begin_nested():
            coupon = claims.redeem(
                db, code=coupon.code, store_id=store.id, now=now_of(request), order_ref=reference
            )
    except CouponAlreadyRedeemedError as exc:
        again = _coupon(db, scope, coupon.code)
        if again and (again.order_ref, again.redeemed_store_id) == (reference, store.id):
            return see_other(done)  # this very form, submitted twice: it was redeemed once
        return _refused(request, exc.message, exc.status_code, store)
    except TianfuError as exc:
        return _refused(request, exc.message, exc.status_code, store)
    except OperationalError:
        if not _sqlite(db):
            raise
        return _busy(request, store)
    detail = {"store_id": store.id, "offer_id": coupon.offer_id, "code_tail": coupon.code[-4:]}
    _audit(request, db, scope, "coupon.redeemed", coupon, detail)
    return see_other(done)


def _sqlite(db: Session) -> bool:
    return db.get_bind().dialect.name == "sqlite"


def _busy(request: Request, store: Store) -> Response:
    # SQLite only: another request wrote (the other click of a double submit, most likely)
    # after this request's transaction had read, and SQLite refuses a write from such a stale
    # transaction (SQLITE_BUSY_SNAPSHOT, which busy_timeout does not retry). Nothing was done;
    # submitting the same form again is safe: its attempt token recognises its own redemption.
    message = "刚才有其他操作同时提交，本次未执行。请查看今日核销记录，或重新提交（不会重复核销）。"
    return _refused(request, message, 503, store, title="请重试")


def _audit(
    request: Request,
    db: Session,
    scope: MerchantScope,
    action: str,
    coupon: Claim,
    detail: dict[str, Any],
) -> None:
    # A coupon has no merchant_id of its own: the audit entry is filed under its offer's.
    audit(db, request, action=action, target=coupon, detail=detail, merchant_id=scope.merchant_id)


@router.post("/redemptions/{claim_id}/undo")
def undo(
    request: Request, db: DbSession, scope: Scope, claim_id: int, form: PortalForm
) -> Response:
    store_id = _store_id(str(form.get("store_id", "") or ""))
    if store_id is None:
        raise OutOfScopeError(f"门店{NOT_FOUND_ZH}")
    store = scope.get_store(db, store_id)
    coupon = db.scalars(
        select(Claim)
        .join(Offer, Offer.id == Claim.offer_id)
        .where(Claim.id == claim_id, scope.merchant_clause(Offer.merchant_id))
    ).one_or_none()
    # Once undone, a coupon has no redeeming store; before, that store must be this account's.
    at = coupon.redeemed_store_id if coupon is not None else None
    if coupon is None or (
        at is not None and scope.store_ids is not None and at not in scope.store_ids
    ):
        raise OutOfScopeError(f"核销记录{NOT_FOUND_ZH}")
    was_redeemed = coupon.status is ClaimStatus.redeemed
    if was_redeemed and not (coupon.order_ref or "").startswith(COUNTER_REF):
        return _refused(request, "随订单使用的券不能在柜台撤销，请通过订单退款退回", 409, store)
    try:
        with db.begin_nested():
            coupon = claims.undo_redemption(
                db, code=coupon.code, now=now_of(request), store_id=store.id
            )
    except TianfuError as exc:
        return _refused(request, exc.message, exc.status_code, store, title="无法撤销")
    except OperationalError:
        if not _sqlite(db):
            raise
        return _busy(request, store)
    if was_redeemed:  # a repeated undo finds the coupon back already and changes nothing
        detail = {"store_id": store.id, "offer_id": coupon.offer_id, "status": coupon.status.value}
        _audit(request, db, scope, "coupon.redemption_undone", coupon, detail)
    return see_other(f"/portal/counter?store_id={store.id}&done=undone")
