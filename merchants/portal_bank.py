"""The bank's portal pages for offers and money: the queue of offers waiting for review and the
review of one (approve, or reject with a note; maker-checker: an admin who created or edited an
offer cannot review it), the reconciliation findings of a day (runs, items by resolution, CSV),
and every merchant's settlement for a day (CSV). Bank admins only (`BankAdmin`)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coupons.errors import OfferNotFoundError
from coupons.models import Offer, OfferStatus
from coupons.service import STATUS_ZH, approve, get_offer, offer_figures, reject
from merchants.auth import BankAdmin, PortalForm, Principal, audit, portal_router
from merchants.errors import OutOfScopeError
from merchants.models import Merchant, PortalAccount
from merchants.portal_offer_terms import KIND_ZH, headline_zh
from merchants.portal_offers import actor_name, chinese, offer_facts
from merchants.portal_reports import csv_response, day_of, yesterday
from merchants.portal_web import message_page, render, see_other
from payments.models import MerchantSettlement, Order, ReconciliationItem, ReconciliationRun
from payments.reconcile import OPEN, SETTLED, items_csv
from payments.settlement import settlements_csv, yuan
from tianfu.deps import DbSession
from tianfu.errors import TianfuError

router = portal_router("/portal/admin")

NOTE_LIMIT = 255  # Offer.review_note
ITEM_LIMIT = 500
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PORTAL_ACTOR = re.compile(r"^portal:(\d{1,9})$")
_DONE_ZH = {"approved": "已通过优惠", "rejected": "已驳回优惠"}
RESOLUTION_ZH = {OPEN: "待处理", SETTLED: "已处理"}
ITEM_KIND_ZH = {
    "missing_here": "我方无记录",
    "missing_at_channel": "渠道无记录",
    "amount_mismatch": "金额不符",
    "status_mismatch": "状态不符",
}


def _bad_day(request: Request, admin: Principal, back: str) -> Response:
    return message_page(
        request,
        status_code=422,
        title="日期有误",
        message="日期格式应为 YYYY-MM-DD",
        link=(back, "返回"),
        user=admin,
    )


def _people(db: Session, names: set[str | None]) -> dict[str, str]:
    """Makers and checkers ("portal:<account id>") by username; other names stay as they are."""
    ids = {int(m.group(1)) for n in names if n and (m := _PORTAL_ACTOR.fullmatch(n))}
    if not ids:
        return {}
    found = db.execute(
        select(PortalAccount.id, PortalAccount.username).where(PortalAccount.id.in_(sorted(ids)))
    )
    return {actor_name(account_id): username for account_id, username in found}


# -- offers waiting for review ----------------------------------------------------------------


@router.get("/offers", response_class=HTMLResponse)
def offers_queue(
    request: Request, db: DbSession, admin: BankAdmin, status: str = "pending_review"
) -> Response:
    statement = (
        select(Offer, Merchant.name)
        .join(Merchant, Merchant.id == Offer.merchant_id)
        .order_by(Offer.updated_at, Offer.id)
        .limit(ITEM_LIMIT)
    )
    if status in OfferStatus.__members__:
        statement = statement.where(Offer.status == OfferStatus(status))
    rows = list(db.execute(statement))
    people = _people(db, {name for o, _ in rows for name in (o.created_by, o.edited_by)})
    context = {
        "rows": [
            {
                "offer": o,
                "merchant": name,
                "headline": headline_zh(o),
                "maker": people.get(o.edited_by or o.created_by, o.edited_by or o.created_by),
            }
            for o, name in rows
        ],
        "status": status if status in OfferStatus.__members__ else "all",
        "statuses": STATUS_ZH,
        "kinds": KIND_ZH,
        "done": _DONE_ZH.get(request.query_params.get("done", ""), ""),
    }
    return render(request, "portal/admin_offers.html", context, user=admin)


def _offer(db: Session, offer_id: int) -> Offer:
    try:
        return get_offer(db, offer_id, fresh=True)
    except OfferNotFoundError:
        raise OutOfScopeError("优惠不存在") from None


def _review_page(
    request: Request,
    db: Session,
    admin: Principal,
    offer: Offer,
    *,
    note: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    me = actor_name(admin.account_id)
    context: dict[str, Any] = {
        "offer": offer,
        "merchant": db.get(Merchant, offer.merchant_id),
        "headline": headline_zh(offer),
        "facts": offer_facts(db, None, offer),
        "figures": offer_figures(db, offer.id),
        "statuses": STATUS_ZH,
        "people": _people(db, {offer.created_by, offer.edited_by, offer.reviewed_by}),
        "own": me in (offer.created_by, offer.edited_by),
        "note": note,
        "error": error,
    }
    return render(
        request, "portal/admin_offer_review.html", context, user=admin, status_code=status
    )


@router.get("/offers/{offer_id}", response_class=HTMLResponse)
def review_page(request: Request, db: DbSession, admin: BankAdmin, offer_id: int) -> Response:
    return _review_page(request, db, admin, _offer(db, offer_id))


def _note(form: Any) -> tuple[str, str]:
    """(the note, a problem with it)."""
    note = str(form.get("note", "") or "").replace("\r\n", "\n")
    if _CONTROL_RE.search(note):
        return "", "意见不能包含控制字符"
    note = note.strip()
    if len(note) > NOTE_LIMIT:
        return note[:NOTE_LIMIT], f"意见不能超过{NOTE_LIMIT}个字符"
    return note, ""


def _review(
    request: Request, db: Session, admin: Principal, offer_id: int, form: Any, *, approving: bool
) -> Response:
    offer = _offer(db, offer_id)
    note, problem = _note(form)
    if not problem and not approving and not note:
        problem = "驳回须填写原因"
    if problem:
        return _review_page(request, db, admin, offer, note=note, error=problem, status=422)
    try:
        with db.begin_nested():
            reviewer = actor_name(admin.account_id)
            if approving:
                offer = approve(db, offer.id, reviewer=reviewer, note=note)
            else:
                offer = reject(db, offer.id, reviewer=reviewer, reason=note)
    except TianfuError as exc:
        return message_page(
            request,
            status_code=exc.status_code,
            title="无法审核",
            message=chinese(exc),
            link=(f"/portal/admin/offers/{offer_id}", "返回"),
        )
    done = "approved" if approving else "rejected"
    detail = {"title": offer.title_zh, "note": note, "terms_version": offer.terms_version}
    audit(db, request, action=f"offer.{done}", target=offer, detail=detail)
    return see_other(f"/portal/admin/offers?done={done}")


@router.post("/offers/{offer_id}/approve")
def approve_offer(
    request: Request, db: DbSession, admin: BankAdmin, offer_id: int, form: PortalForm
) -> Response:
    return _review(request, db, admin, offer_id, form, approving=True)


@router.post("/offers/{offer_id}/reject")
def reject_offer(
    request: Request, db: DbSession, admin: BankAdmin, offer_id: int, form: PortalForm
) -> Response:
    return _review(request, db, admin, offer_id, form, approving=False)


# -- reconciliation ---------------------------------------------------------------------------


@router.get("/reconciliation", response_class=HTMLResponse)
def reconciliation_page(
    request: Request, db: DbSession, admin: BankAdmin, day: str = "", resolution: str = OPEN
) -> Response:
    bill_date = day_of(day, yesterday(request))
    if bill_date is None:
        return _bad_day(request, admin, "/portal/admin/reconciliation")
    items = (
        select(ReconciliationItem, Order.order_no)
        .outerjoin(Order, Order.id == ReconciliationItem.order_id)
        .where(ReconciliationItem.bill_date == bill_date)
        .order_by(ReconciliationItem.channel, ReconciliationItem.account, ReconciliationItem.id)
        .limit(ITEM_LIMIT)
    )
    if resolution in RESOLUTION_ZH:
        items = items.where(ReconciliationItem.resolution == resolution)
    runs = select(ReconciliationRun).where(ReconciliationRun.bill_date == bill_date)
    open_days = (
        select(ReconciliationItem.bill_date, func.count())
        .where(ReconciliationItem.resolution == OPEN)
        .group_by(ReconciliationItem.bill_date)
        .order_by(ReconciliationItem.bill_date.desc())
        .limit(30)
    )
    context = {
        "day": bill_date.isoformat(),
        "resolution": resolution if resolution in RESOLUTION_ZH else "all",
        "resolutions": RESOLUTION_ZH,
        "kinds": ITEM_KIND_ZH,
        "runs": list(db.scalars(runs.order_by(ReconciliationRun.id))),
        "items": list(db.execute(items)),
        "open_days": list(db.execute(open_days)),
        "yuan": yuan,
    }
    return render(request, "portal/admin_reconciliation.html", context, user=admin)


@router.get("/reconciliation.csv")
def reconciliation_csv(
    request: Request, db: DbSession, admin: BankAdmin, day: str = ""
) -> Response:
    bill_date = day_of(day, yesterday(request))
    if bill_date is None:
        return _bad_day(request, admin, "/portal/admin/reconciliation")
    return csv_response(items_csv(db, bill_date), f"reconciliation-{bill_date.isoformat()}.csv")


# -- settlement -------------------------------------------------------------------------------


def settlement_totals(rows: list[MerchantSettlement]) -> dict[str, int]:
    names = (
        "orders",
        "gross_fen",
        "merchant_discount_fen",
        "bank_discount_fen",
        "paid_fen",
        "refunds_fen",
        "fee_fen",
        "net_fen",
    )
    return {name: sum(getattr(row, name) for row in rows) for name in names}


@router.get("/settlements", response_class=HTMLResponse)
def settlements_page(request: Request, db: DbSession, admin: BankAdmin, day: str = "") -> Response:
    settle_date = day_of(day, yesterday(request))
    if settle_date is None:
        return _bad_day(request, admin, "/portal/admin/settlements")
    rows = list(
        db.execute(
            select(MerchantSettlement, Merchant.name)
            .join(Merchant, Merchant.id == MerchantSettlement.merchant_id)
            .where(MerchantSettlement.day == settle_date)
            .order_by(MerchantSettlement.merchant_id)
        )
    )
    context = {
        "day": settle_date.isoformat(),
        "rows": rows,
        "totals": settlement_totals([row for row, _ in rows]),
        "yuan": yuan,
    }
    return render(request, "portal/admin_settlements.html", context, user=admin)


@router.get("/settlements.csv")
def settlements_download(
    request: Request, db: DbSession, admin: BankAdmin, day: str = ""
) -> Response:
    settle_date: date | None = day_of(day, yesterday(request))
    if settle_date is None:
        return _bad_day(request, admin, "/portal/admin/settlements")
    text = settlements_csv(db, day=settle_date)
    return csv_response(text, f"settlements-{settle_date.isoformat()}.csv")
