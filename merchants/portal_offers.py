"""A merchant's offers on the portal: the list (status, stock left, claims, redemptions), one
offer's page, and for the owner of an approved merchant create, edit and submit for the bank's
review, pause, resume and end. Staff see the offers of their stores, read-only.

The lifecycle and its maker-checker are coupons.service's; the maker is recorded as
`portal:<account id>` (`actor_name`), so whoever reviews an offer at the bank can never be the
account that wrote or last edited it. Pausing and ending only stop claims, so any owner may do
them, even of a suspended merchant; creating, editing, submitting and resuming publish, so they
need an approved merchant (`PublishingOwner`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from coupons.errors import OfferNotFoundError
from coupons.explain import yuan
from coupons.models import Claim, ClaimStatus, Offer, OfferStatus
from coupons.schemas import OfferCreate, OfferUpdate
from coupons.service import (
    STATUS_ZH,
    create_offer,
    end,
    get_offer,
    offer_figures,
    pause,
    resume,
    submit_for_review,
    update_offer,
)
from merchants.auth import OwnerScope, PortalForm, Principal, Scope, audit, portal_router
from merchants.errors import OutOfScopeError
from merchants.models import MerchantStatus, Store
from merchants.portal_offer_terms import (
    AMOUNT_INPUTS,
    KIND_AMOUNTS,
    KIND_ZH,
    LABELS,
    WINDOWS,
    as_form,
    form_values,
    headline_zh,
    read_offer_form,
    submitted_values,
    terms_facts,
)
from merchants.portal_web import message_page, render, see_other
from merchants.scope import NOT_FOUND_ZH, MerchantScope
from tianfu.deps import DbSession
from tianfu.errors import TianfuError

router = portal_router("/portal/offers")

LIST_LIMIT = 200
EDITABLE = (OfferStatus.draft, OfferStatus.paused)
DONE_ZH = {
    "created": "已保存为草稿；提交银行审核通过后即可领取",
    "edited": "已保存；修改后的优惠需重新提交审核",
    "unchanged": "没有修改",
    "submitted": "已提交银行审核",
    "paused": "已暂停领取",
    "resumed": "已恢复领取",
    "ended": "已结束",
}
WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_DEFAULTS: dict[str, Any] = {
    "kind": "fixed_off",
    "per_user_limit": "1",
    "weekday": [],
    "store_id": [],
}
_CJK_RE = re.compile(r"[\u4e00-\u9fff]")


def actor_name(account_id: int) -> str:
    """The maker or checker of an offer, as coupons.service compares them."""
    return f"portal:{account_id}"


def require_publishing_owner(scope: OwnerScope) -> MerchantScope:
    scope.require_approved()
    return scope


PublishingOwner = Annotated[MerchantScope, Depends(require_publishing_owner)]


def _publishing(scope: MerchantScope) -> bool:
    return scope.is_owner and scope.merchant_status is MerchantStatus.approved


def _user(request: Request) -> Principal:
    principal: Principal = request.state.portal_principal
    return principal


def visible(scope: MerchantScope, offer: Offer) -> bool:
    """This merchant's offer and, for staff limited to some stores, usable at one of them."""
    if offer.merchant_id != scope.merchant_id:
        return False
    if scope.store_ids is None or not offer.scope:
        return True
    return any(link.store_id in scope.store_ids for link in offer.scope)


def scoped_offer(db: Session, scope: MerchantScope, offer_id: int) -> Offer:
    try:
        offer = get_offer(db, offer_id, fresh=True)
    except OfferNotFoundError:
        raise OutOfScopeError(f"优惠{NOT_FOUND_ZH}") from None
    if not visible(scope, offer):
        raise OutOfScopeError(f"优惠{NOT_FOUND_ZH}")
    return offer


def offer_facts(db: Session, scope: MerchantScope | None, offer: Offer) -> list[tuple[str, str]]:
    """The offer's terms in words; its stores as far as `scope` may see them (None: the bank)."""
    ids = [link.store_id for link in offer.scope]
    statement = select(Store.name).where(Store.id.in_(ids)).order_by(Store.id)
    if scope is not None:
        statement = statement.where(scope.store_clause(Store.id, Store.merchant_id))
    names = list(db.scalars(statement)) if ids else []
    return terms_facts(offer, names, all_stores=not ids)


def chinese(exc: TianfuError | ValidationError) -> str:
    """A refusal as a merchant can read it: coupons' own checks may speak English."""
    message = exc.message if isinstance(exc, TianfuError) else ""
    return message if _CJK_RE.search(message) else "优惠条款有误，请检查金额、库存、预算和日期"


def _refused(request: Request, exc: TianfuError, back: str) -> Response:
    return message_page(
        request,
        status_code=exc.status_code,
        title="无法执行",
        message=chinese(exc),
        link=(back, "返回"),
    )


# -- reading ----------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def offers_page(request: Request, db: DbSession, scope: Scope, status: str = "") -> Response:
    statement = (
        select(Offer)
        .where(scope.merchant_clause(Offer.merchant_id))
        .options(selectinload(Offer.scope))
        .order_by(Offer.id.desc())
        .limit(LIST_LIMIT)
    )
    if status in OfferStatus.__members__:
        statement = statement.where(Offer.status == OfferStatus(status))
    offers = [offer for offer in db.scalars(statement) if visible(scope, offer)]
    # The figures of coupons.service.offer_figures, for the whole list in one query.
    redeemed: dict[int, int] = dict(
        db.execute(
            select(Claim.offer_id, func.count())
            .where(Claim.offer_id.in_([o.id for o in offers]), Claim.status == ClaimStatus.redeemed)
            .group_by(Claim.offer_id)
        ).all()
    )
    rows = [
        {
            "offer": offer,
            "headline": headline_zh(offer),
            "redeemed": redeemed.get(offer.id, 0),
            "stock_left": offer.total_stock - offer.claimed_count,
        }
        for offer in offers
    ]
    context = {
        "rows": rows,
        "status": status,
        "statuses": STATUS_ZH,
        "kinds": KIND_ZH,
        "can_write": _publishing(scope),
    }
    return render(request, "portal/offers.html", context, user=_user(request))


def _form_page(
    request: Request,
    db: Session,
    scope: MerchantScope,
    *,
    offer: Offer | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "offer": offer,
        "values": values,
        "errors": errors or {},
        "labels": LABELS,
        "stores": list(db.scalars(scope.stores())),
        "kinds": KIND_ZH,
        "amount_fields": [
            (name, label, [kind.value for kind, names in KIND_AMOUNTS.items() if name in names])
            for name, label in AMOUNT_INPUTS
        ],
        "windows": WINDOWS,
        "weekdays": WEEKDAYS_ZH,
    }
    user = _user(request)
    return render(request, "portal/offer_form.html", context, user=user, status_code=status)


@router.get("/new", response_class=HTMLResponse)
def new_offer_page(request: Request, db: DbSession, scope: PublishingOwner) -> Response:
    return _form_page(request, db, scope, offer=None, values=dict(_DEFAULTS))


@router.get("/{offer_id}", response_class=HTMLResponse)
def offer_page(request: Request, db: DbSession, scope: Scope, offer_id: int) -> Response:
    offer = scoped_offer(db, scope, offer_id)
    figures = offer_figures(db, offer.id)
    context = {
        "offer": offer,
        "headline": headline_zh(offer),
        "facts": offer_facts(db, scope, offer),
        "figures": figures,
        "budget_left": yuan(figures.budget_left_fen),
        "statuses": STATUS_ZH,
        "can_write": scope.is_owner,
        "can_publish": _publishing(scope),
        "editable": offer.status in EDITABLE,
        "done": DONE_ZH.get(request.query_params.get("done", ""), ""),
    }
    return render(request, "portal/offer_detail.html", context, user=_user(request))


# -- writing ----------------------------------------------------------------------------------


def _store_ids(db: Session, scope: MerchantScope) -> list[int]:
    return [store.id for store in db.scalars(scope.stores())]


@router.post("", response_class=HTMLResponse)
def create(request: Request, db: DbSession, scope: PublishingOwner, form: PortalForm) -> Response:
    fields, errors = read_offer_form(form, store_ids=_store_ids(db, scope))
    values = submitted_values(form)
    if errors:
        return _form_page(request, db, scope, offer=None, values=values, errors=errors, status=422)
    try:
        with db.begin_nested():
            offer = create_offer(
                db,
                merchant_id=scope.merchant_id,
                data=OfferCreate.model_validate(fields),
                created_by=actor_name(scope.account_id),
            )
    except (TianfuError, ValidationError) as exc:
        errors = {"form": chinese(exc)}
        return _form_page(request, db, scope, offer=None, values=values, errors=errors, status=422)
    detail = {"title": offer.title_zh, "kind": offer.kind.value}
    audit(db, request, action="offer.created", target=offer, detail=detail)
    return see_other(f"/portal/offers/{offer.id}?done=created")


def _editable(request: Request, offer: Offer) -> Response | None:
    if offer.status in EDITABLE:
        return None
    message = f"{STATUS_ZH[offer.status]}的优惠不能修改" + (
        "，请先暂停" if offer.status is OfferStatus.active else ""
    )
    return message_page(
        request,
        status_code=409,
        title="无法修改",
        message=message,
        link=(f"/portal/offers/{offer.id}", "返回"),
    )


@router.get("/{offer_id}/edit", response_class=HTMLResponse)
def edit_page(request: Request, db: DbSession, scope: PublishingOwner, offer_id: int) -> Response:
    offer = scoped_offer(db, scope, offer_id)
    if (refusal := _editable(request, offer)) is not None:
        return refusal
    values = form_values(offer, [link.store_id for link in offer.scope])
    return _form_page(request, db, scope, offer=offer, values=values)


def _changes(
    db: Session, scope: MerchantScope, offer: Offer, fields: dict[str, Any]
) -> dict[str, Any]:
    """The fields the form changed. Comparing with the offer as its form showed it keeps what
    the form cannot say (a validity bound set to the minute through the API) unless touched."""
    shown = as_form(form_values(offer, [link.store_id for link in offer.scope]))
    before, problems = read_offer_form(shown, store_ids=_store_ids(db, scope), kind=offer.kind)
    if problems:
        before = {}
    return {
        name: value
        for name, value in fields.items()
        if name != "kind" and (name not in before or before[name] != value)
    }


@router.post("/{offer_id}/edit", response_class=HTMLResponse)
def edit(
    request: Request, db: DbSession, scope: PublishingOwner, offer_id: int, form: PortalForm
) -> Response:
    offer = scoped_offer(db, scope, offer_id)
    if (refusal := _editable(request, offer)) is not None:
        return refusal
    fields, errors = read_offer_form(form, store_ids=_store_ids(db, scope), kind=offer.kind)
    values = submitted_values(form) | {"kind": offer.kind.value}
    if errors:
        return _form_page(request, db, scope, offer=offer, values=values, errors=errors, status=422)
    changes = _changes(db, scope, offer, fields)
    if not changes:
        return see_other(f"/portal/offers/{offer.id}?done=unchanged")
    try:
        with db.begin_nested():
            offer = update_offer(
                db,
                offer.id,
                changes=OfferUpdate.model_validate(changes),
                edited_by=actor_name(scope.account_id),
            )
    except (TianfuError, ValidationError) as exc:
        errors = {"form": chinese(exc)}
        return _form_page(request, db, scope, offer=offer, values=values, errors=errors, status=422)
    detail = {"title": offer.title_zh, "changed": sorted(changes)}
    audit(db, request, action="offer.updated", target=offer, detail=detail)
    return see_other(f"/portal/offers/{offer.id}?done=edited")


def _act(
    request: Request,
    db: Session,
    scope: MerchantScope,
    offer_id: int,
    *,
    done: str,
    change: Callable[[Session, int], Offer],
) -> Response:
    offer = scoped_offer(db, scope, offer_id)
    try:
        with db.begin_nested():
            offer = change(db, offer.id)
    except TianfuError as exc:
        return _refused(request, exc, f"/portal/offers/{offer_id}")
    detail = {"title": offer.title_zh, "status": offer.status.value}
    audit(db, request, action=f"offer.{done}", target=offer, detail=detail)
    return see_other(f"/portal/offers/{offer.id}?done={done}")


@router.post("/{offer_id}/submit")
def submit(request: Request, db: DbSession, scope: PublishingOwner, offer_id: int) -> Response:
    return _act(request, db, scope, offer_id, done="submitted", change=submit_for_review)


@router.post("/{offer_id}/pause")
def pause_offer(request: Request, db: DbSession, scope: OwnerScope, offer_id: int) -> Response:
    return _act(request, db, scope, offer_id, done="paused", change=pause)


@router.post("/{offer_id}/resume")
def resume_offer(
    request: Request, db: DbSession, scope: PublishingOwner, offer_id: int
) -> Response:
    return _act(request, db, scope, offer_id, done="resumed", change=resume)


@router.post("/{offer_id}/end")
def end_offer(request: Request, db: DbSession, scope: OwnerScope, offer_id: int) -> Response:
    return _act(request, db, scope, offer_id, done="ended", change=end)
