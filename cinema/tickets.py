"""Tickets: an unguessable code per seat, its QR code, and the check at the entrance (once).

A code is 16 characters drawn by `secrets` from 31 that cannot be mistaken for one another when
read off a screen (no 0/O, 1/I/L): about 79 bits, so guessing a live ticket is hopeless even
against every ticket ever sold. The QR code carries the bare code; staff scan it or type it.
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from cinema import errors
from cinema.models import Hall, Hold, Showtime, ShowtimeStatus, Ticket, TicketStatus
from coupons.qr import qr_svg
from merchants.opening_hours import SHANGHAI

TICKET_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 16
_GROUP = 4
_SEPARATORS = str.maketrans("", "", " -_.\t\u3000")
_TICKETS = cast(Table, Ticket.__table__)


def new_ticket_code() -> str:
    return "".join(secrets.choice(TICKET_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_ticket_code(text: str) -> str:
    """Separators dropped, upper case; full-width characters (a Chinese IME's) folded by NFKC."""
    return unicodedata.normalize("NFKC", text).translate(_SEPARATORS).upper()


def format_ticket_code(code: str) -> str:
    """Grouped for reading: "7KQ2…" -> "7KQ2 M9XA …"."""
    return " ".join(code[i : i + _GROUP] for i in range(0, len(code), _GROUP))


def ticket_qr_svg(ticket: Ticket) -> str:
    return qr_svg(ticket.code, label="电影票二维码")


def issue_tickets(session: Session, *, hold: Hold, order_id: int, now: datetime) -> list[Ticket]:
    """One ticket per seat of a hold whose seats were just sold to `order_id`."""
    tickets = [
        Ticket(
            code=new_ticket_code(),
            showtime_id=hold.showtime_id,
            seat_id=seat_id,
            hold_id=hold.id,
            order_id=order_id,
            openid=hold.openid,
            status=TicketStatus.valid,
            created_at=now,
        )
        for seat_id in hold.seat_ids
    ]
    session.add_all(tickets)
    session.flush()
    return tickets


def tickets_of_order(session: Session, order_id: int) -> list[Ticket]:
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.order_id == order_id)
            .order_by(Ticket.id)
            .execution_options(populate_existing=True)
        )
    )


def verify_ticket(session: Session, *, code: str, store_id: int, now: datetime, by: str) -> Ticket:
    """Let the holder in at `store_id`'s entrance: once per ticket, only at its own cinema, and
    not for a showtime cancelled or over. A second scan says when the first one was."""
    normalised = normalise_ticket_code(code)
    found = session.execute(
        select(Ticket, Hall.store_id, Showtime.ends_at, Showtime.status)
        .join(Showtime, Showtime.id == Ticket.showtime_id)
        .join(Hall, Hall.id == Showtime.hall_id)
        .where(Ticket.code == normalised)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if found is None:
        raise errors.TicketNotFoundError("票码不存在，请核对")
    ticket, ticket_store_id, ends_at, showtime_status = found
    if ticket_store_id != store_id:
        raise errors.TicketNotValidHereError("这不是本影城的票")
    if ticket.status is TicketStatus.used:
        raise _already_used(ticket)
    if showtime_status is ShowtimeStatus.cancelled:
        raise errors.TicketNotValidHereError("该场次已取消，请到售票处办理退票")
    if now >= ends_at:
        raise errors.TicketNotValidHereError("该场次已结束，票已失效")
    result = session.execute(
        update(_TICKETS)
        .where(_TICKETS.c.id == ticket.id, _TICKETS.c.status == TicketStatus.valid)
        .values(status=TicketStatus.used, used_at=now, used_by=by[:64])
    )
    assert isinstance(result, CursorResult)
    session.refresh(ticket)
    if result.rowcount != 1:  # another entrance scanned it a moment earlier
        raise _already_used(ticket)
    return ticket


def _already_used(ticket: Ticket) -> errors.TicketAlreadyUsedError:
    when = ticket.used_at.astimezone(SHANGHAI).strftime("%m-%d %H:%M") if ticket.used_at else ""
    return errors.TicketAlreadyUsedError(f"该票已于 {when} 检票，不能重复入场")
