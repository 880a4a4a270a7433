"""The merchants' REST API for offers, behind an API key (merchants.api_key_auth): list, read,
create (a draft), update (only the fields sent; a paused offer goes back to draft), submit for
the bank's review, pause, resume and end. The lifecycle and its rules are coupons.service's;
offers written here are created_by/edited_by "apikey:<prefix>", so maker-checker holds: the bank
reviews them. It lives in coupons, which may import merchants (not the other way round)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from coupons import service
from coupons.models import Offer, OfferStatus
from coupons.schemas import OfferCreate, OfferRead, OfferUpdate
from merchants.api_key_auth import (
    ApiCaller,
    ApiKeyCaller,
    ApiKeyScope,
    audit_api,
    merchant_api_router,
)
from merchants.errors import OutOfScopeError
from merchants.scope import NOT_FOUND_ZH, MerchantScope
from tianfu.deps import DbSession

router = merchant_api_router()


def _offer(db: Session, scope: MerchantScope, offer_id: int) -> Offer:
    """One of this merchant's offers; another's is "not found", like one that does not exist."""
    offer = db.scalars(
        select(Offer).where(Offer.id == offer_id, scope.merchant_clause(Offer.merchant_id))
    ).one_or_none()
    if offer is None:
        raise OutOfScopeError(f"优惠{NOT_FOUND_ZH}")
    return offer


@router.get("/offers")
def list_offers(
    db: DbSession, scope: ApiKeyScope, status: OfferStatus | None = None
) -> list[OfferRead]:
    statement = select(Offer).where(scope.merchant_clause(Offer.merchant_id)).order_by(Offer.id)
    if status is not None:
        statement = statement.where(Offer.status == status)
    return [OfferRead.model_validate(offer) for offer in db.scalars(statement)]


@router.get("/offers/{offer_id}")
def get_offer(db: DbSession, scope: ApiKeyScope, offer_id: int) -> OfferRead:
    return OfferRead.model_validate(_offer(db, scope, offer_id))


@router.post("/offers", status_code=201)
def create_offer(
    request: Request, db: DbSession, caller: ApiKeyCaller, body: OfferCreate
) -> OfferRead:
    caller.scope.require_approved()
    offer = service.create_offer(
        db, merchant_id=caller.scope.merchant_id, data=body, created_by=caller.label
    )
    detail = {"title_zh": offer.title_zh, "kind": offer.kind.value}
    audit_api(db, request, caller, action="offer.created", target=offer, detail=detail)
    return OfferRead.model_validate(offer)


@router.patch("/offers/{offer_id}")
def update_offer(
    request: Request, db: DbSession, caller: ApiKeyCaller, offer_id: int, body: OfferUpdate
) -> OfferRead:
    caller.scope.require_approved()
    _offer(db, caller.scope, offer_id)
    offer = service.update_offer(db, offer_id, changes=body, edited_by=caller.label)
    detail = {"fields": sorted(body.model_dump(exclude_unset=True))}
    audit_api(db, request, caller, action="offer.updated", target=offer, detail=detail)
    return OfferRead.model_validate(offer)


def _transition(
    request: Request,
    db: Session,
    caller: ApiCaller,
    offer_id: int,
    *,
    move: Callable[[Session, int], Offer],
    action: str,
) -> OfferRead:
    before = _offer(db, caller.scope, offer_id).status
    offer = move(db, offer_id)
    detail: dict[str, Any] = {"status": [before.value, offer.status.value]}
    audit_api(db, request, caller, action=action, target=offer, detail=detail)
    return OfferRead.model_validate(offer)


@router.post("/offers/{offer_id}/submit")
def submit_offer(request: Request, db: DbSession, caller: ApiKeyCaller, offer_id: int) -> OfferRead:
    caller.scope.require_approved()
    return _transition(
        request, db, caller, offer_id, move=service.submit_for_review, action="offer.submitted"
    )


@router.post("/offers/{offer_id}/pause")
def pause_offer(request: Request, db: DbSession, caller: ApiKeyCaller, offer_id: int) -> OfferRead:
    return _transition(request, db, caller, offer_id, move=service.pause, action="offer.paused")


@router.post("/offers/{offer_id}/resume")
def resume_offer(request: Request, db: DbSession, caller: ApiKeyCaller, offer_id: int) -> OfferRead:
    caller.scope.require_approved()
    return _transition(request, db, caller, offer_id, move=service.resume, action="offer.resumed")


@router.post("/offers/{offer_id}/end")
def end_offer(request: Request, db: DbSession, caller: ApiKeyCaller, offer_id: int) -> OfferRead:
    return _transition(request, db, caller, offer_id, move=service.end, action="offer.ended")
