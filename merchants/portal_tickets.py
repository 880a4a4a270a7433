"""Film tickets at a cinema's entrance, on the counter: staff (owners, and staff at their own
stores) scan or type a ticket's code, see the film, hall, start, seat and a masked holder, and
let the holder in once (cinema.tickets.verify_ticket decides: once, at its own cinema, until the
showtime ends). The ticket form appears on the counter page of a store of category cinema.

A code is looked up among this merchant's cinemas only: another merchant's ticket is "票码不存在"
exactly like a code never issued, so a counter cannot learn that it exists. A ticket of another
of the merchant's own cinemas is "这不是本影城的票", without its details (a staff account may
not see that store).

The admit form carries a one-time attempt token, kept in the audit entry of the admission: the
second submit of the same form (a double tap at a busy entrance) answers "已检票，请入场" like the
first, since the browser shows only the last answer and a refusal there would turn a paying guest
away; a ticket admitted by any other check is refused with the time it was used.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cinema.errors import TicketAlreadyUsedError
from cinema.models import Film, Hall, Showtime, Ticket, TicketStatus
from cinema.tickets import (
    CODE_LENGTH,
    TICKET_ALPHABET,
    format_ticket_code,
    normalise_ticket_code,
    verify_ticket,
)
from merchants.auth import PortalForm, Principal, Scope, audit, now_of, portal_router
from merchants.errors import OutOfScopeError
from merchants.models import AuditEntry, Store
from merchants.portal_counter import mask_user, sells_tickets
from merchants.portal_offers import actor_name
from merchants.portal_web import message_page, render, see_other, shanghai
from merchants.scope import NOT_FOUND_ZH, MerchantScope
from tianfu.deps import DbSession
from tianfu.errors import TianfuError

router = portal_router("/portal/counter/tickets")

ADMITTED = "ticket.admitted"
NOT_FOUND = "票码不存在，请核对"  # cinema.tickets says the same of a code never issued
NOT_HERE = "这不是本影城的票"
_CODE_INPUT_LIMIT = 40  # sixteen characters with whatever separators a person types
_ATTEMPT_RE = re.compile(r"^[A-Za-z0-9_-]{16,43}$")
_SAME_REQUEST = timedelta(minutes=1)  # from the UPDATE to the audit entry, with time to spare
_SEAT_RE = re.compile(r"^([A-Z]{1,3})(\d{1,3})$")  # cinema.layout: row label + number


@dataclass(frozen=True)
class Found:
    """A ticket of this merchant's cinemas, with what the entrance shows of it."""

    ticket: Ticket
    store_id: int
    hall: str
    film: str
    starts_at: datetime
    ends_at: datetime


def seat_zh(seat_id: str) -> str:
    """A seat as printed on it ("F7" is "F排7座"); an id of another shape is shown as it is."""
    found = _SEAT_RE.fullmatch(seat_id)
    return f"{found.group(1)}排{found.group(2)}座" if found else seat_id


def _user(request: Request) -> Principal:
    principal: Principal = request.state.portal_principal
    return principal


def _cinema(db: Session, scope: MerchantScope, value: str) -> Store:
    """The account's store asked for, which must be a cinema (others have no entrance)."""
    if not (value.isdigit() and len(value) < 10):
        raise OutOfScopeError(f"门店{NOT_FOUND_ZH}")
    store = scope.get_store(db, int(value))
    if not sells_tickets(db, store):
        raise OutOfScopeError(f"影城{NOT_FOUND_ZH}")
    return store


def _is_ticket_code(code: str) -> bool:
    return len(code) == CODE_LENGTH and set(code) <= set(TICKET_ALPHABET)


def _find(db: Session, scope: MerchantScope, code: str) -> Found | None:
    """The ticket of a normalised code, if it is of one of this merchant's cinemas."""
    row = db.execute(
        select(Ticket, Hall.store_id, Hall.name, Film.title, Showtime.starts_at, Showtime.ends_at)
        .join(Showtime, Showtime.id == Ticket.showtime_id)
        .join(Hall, Hall.id == Showtime.hall_id)
        .join(Film, Film.id == Showtime.film_id)
        .join(Store, Store.id == Hall.store_id)
        .where(Ticket.code == code, scope.merchant_clause(Store.merchant_id))
        .execution_options(populate_existing=True)
    ).one_or_none()
    return None if row is None else Found(*row)


def _page(
    request: Request,
    store: Store,
    *,
    code: str = "",
    found: Found | None = None,
    error: str = "",
    refusal: str = "",
    status: int = 200,
) -> Response:
    """The check page: the ticket (only if it is this cinema's), why it cannot be admitted, and
    the form again for the next one."""
    here = found if found is not None and found.store_id == store.id else None
    used = here is not None and here.ticket.status is TicketStatus.used
    ended = here is not None and now_of(request) >= here.ends_at
    if here is not None and not refusal:  # what verify_ticket would say, before asking it
        refusal = _used_zh(here.ticket) if used else "该场次已结束，票已失效" if ended else ""
    context: dict[str, Any] = {
        "store": store,
        "code": code,
        "error": error,
        "refusal": refusal,
        "found": here,
        "formatted": format_ticket_code(here.ticket.code) if here else "",
        "seat": seat_zh(here.ticket.seat_id) if here else "",
        "holder": mask_user(here.ticket.openid) if here else "",
        "status_zh": "已检票" if used else "场次已结束" if ended else "未检票",
        "admissible": here is not None and not refusal,
        "attempt": secrets.token_urlsafe(16),
    }
    return render(
        request,
        "portal/counter_ticket_check.html",
        context,
        user=_user(request),
        status_code=status,
    )


def _used_zh(ticket: Ticket) -> str:
    return f"该票已于 {shanghai(ticket.used_at)} 检票，不能重复入场"


def _look_up(
    request: Request, db: Session, scope: MerchantScope, store: Store, typed: str
) -> Found | Response:
    """The merchant's ticket of a typed code, or the check page saying what is wrong."""
    typed = typed[:_CODE_INPUT_LIMIT]
    code = normalise_ticket_code(typed)
    if not _is_ticket_code(code):  # a typo, caught before any lookup
        return _page(request, store, code=typed, error="票码有误，应为16位字母和数字", status=422)
    found = _find(db, scope, code)
    if found is None:
        return _page(request, store, code=typed, error=NOT_FOUND, status=404)
    if found.store_id != store.id:
        return _page(request, store, code=typed, refusal=NOT_HERE, status=409)
    return found


@router.get("/check", response_class=HTMLResponse)
def check(
    request: Request, db: DbSession, scope: Scope, store_id: str = "", code: str = ""
) -> Response:
    """Shows the ticket without using it. A GET, like the coupon counter's confirm page: the
    back button and reload are harmless, and the page is never cached."""
    if not code.strip():
        return see_other(f"/portal/counter?store_id={store_id}" if store_id else "/portal/counter")
    store = _cinema(db, scope, store_id)
    found = _look_up(request, db, scope, store, code)
    if isinstance(found, Response):
        return found
    return _page(request, store, found=found)


def _admitted_here(db: Session, ticket: Ticket, attempt: str, account_id: int) -> bool:
    """Whether this very form admitted the ticket (a second submit of it). Its audit entry was
    written by the same request just after the ticket's used_at: the time index finds it."""
    if ticket.used_at is None:
        return False
    details = db.scalars(
        select(AuditEntry.detail).where(
            AuditEntry.at >= ticket.used_at,
            AuditEntry.at < ticket.used_at + _SAME_REQUEST,
            AuditEntry.action == ADMITTED,
            AuditEntry.target_type == Ticket.__tablename__,
            AuditEntry.target_id == str(ticket.id),
            AuditEntry.actor_account_id == account_id,
        )
    )
    return any(detail.get("attempt") == attempt for detail in details)


@router.post("/admit")
def admit(request: Request, db: DbSession, scope: Scope, form: PortalForm) -> Response:
    store = _cinema(db, scope, str(form.get("store_id", "") or ""))
    found = _look_up(request, db, scope, store, str(form.get("code", "") or ""))
    if isinstance(found, Response):
        return found
    attempt = str(form.get("attempt", "") or "")
    if not _ATTEMPT_RE.fullmatch(attempt):
        attempt = secrets.token_urlsafe(16)  # a form without one: a second submit is refused
    user = _user(request)
    try:
        with db.begin_nested():
            ticket = verify_ticket(
                db,
                code=found.ticket.code,
                store_id=store.id,
                now=now_of(request),
                by=actor_name(user.account_id),
            )
    except TicketAlreadyUsedError as exc:
        if _admitted_here(db, found.ticket, attempt, user.account_id):
            return _admitted(request, store, found)
        return _page(request, store, found=found, refusal=exc.message, status=exc.status_code)
    except TianfuError as exc:
        return _page(request, store, found=found, refusal=exc.message, status=exc.status_code)
    except OperationalError:
        if db.get_bind().dialect.name != "sqlite":
            raise
        return _busy(request, store)
    detail = {
        "store_id": store.id,
        "showtime_id": ticket.showtime_id,
        "seat_id": ticket.seat_id,
        "code_tail": ticket.code[-4:],
        "attempt": attempt,
    }
    # A ticket has no merchant_id of its own: the entry is filed under the cinema's merchant.
    audit(db, request, action=ADMITTED, target=ticket, detail=detail, merchant_id=scope.merchant_id)
    return _admitted(request, store, found)


def _admitted(request: Request, store: Store, found: Found) -> Response:
    # The answer itself, not a redirect to one: the entrance needs the seat and hall at once,
    # and the attempt token makes the form safe to submit again (reload, double tap).
    context = {"store": store, "found": found, "seat": seat_zh(found.ticket.seat_id)}
    return render(request, "portal/counter_ticket_admitted.html", context, user=_user(request))


def _busy(request: Request, store: Store) -> Response:
    # SQLite only, as at the coupon counter (portal_counter._busy): another request wrote after
    # this one's transaction had read, and SQLite refuses the stale write. Nothing was done;
    # the same form submitted again is recognised if the other request was its twin.
    message = "刚才有其他操作同时提交，本次未执行。请重新提交（同一张票不会重复检票）。"
    back = (f"/portal/counter?store_id={store.id}", "返回检票")
    return message_page(request, status_code=503, title="请重试", message=message, link=back)
