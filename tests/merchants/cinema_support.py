"""Cinema tickets for the portal's tests: a store of the builders turned cinema, and a ticket
sold the real way (hold, order, payment through the payments service, whose hook issues it)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from cinema import booking, catalog, service
from cinema.tickets import tickets_of_order
from merchants.models import Store
from payments import service as payments
from payments.channels import TradeState, TradeStatus
from payments.config import PaymentSettings
from tests.builders import category
from tianfu.orm import utcnow

HOLDER = "oTicket0123456789abcdWXYZ"
# Two rows of four seats in one zone, an aisle in the middle.
HALL = """
F: E | s s _ s s |
F: F | s s _ s s |
"""


@dataclass(frozen=True)
class Sold:
    code: str
    ticket_id: int
    hall: str
    film: str
    starts_at: datetime


def make_cinema_store(session: Session, store_id: int) -> None:
    """A store of the builders (a hot-pot restaurant) that is a cinema instead."""
    store = session.get(Store, store_id)
    assert store is not None
    store.category_id = category(session, catalog.CINEMA_CATEGORY).id
    session.flush()


def sold_ticket(
    session: Session, store_id: int, *, seat: str = "F4", starts_at: datetime | None = None
) -> Sold:
    """A ticket for `seat` of a new hall of the cinema, bought two hours before its showtime
    (three hours from now unless said otherwise) and paid a minute later."""
    booking.install_payment_hooks()  # as the app does at start (tianfu.wiring); idempotent
    starts_at = starts_at or (utcnow() + timedelta(hours=3)).replace(second=0, microsecond=0)
    bought = starts_at - timedelta(hours=2)
    tag = secrets.token_hex(3).upper()
    hall = catalog.import_hall(session, store_id=store_id, name=f"{tag}号厅", text=HALL)
    film = catalog.add_film(session, title=f"熊猫归来{tag}", runtime_min=118)
    showtime = catalog.schedule_showtime(
        session, hall_id=hall.id, film_id=film.id, starts_at=starts_at, prices_fen={"F": 4500}
    )
    hold = service.hold_seats(
        session, showtime_id=showtime.id, openid=HOLDER, seat_ids=[seat], now=bought
    )
    settings = PaymentSettings()
    order = booking.checkout_hold(
        session, hold_id=hold.id, openid=HOLDER, settings=settings, now=bought
    )
    attempt = payments.begin_attempt(
        session,
        order=payments.lock_order(session, order.order_no),
        channel="tenpay_v3",
        account="1900000001",
        method="jsapi",
        now=bought,
    )
    paid_at = bought + timedelta(minutes=1)
    paid = TradeStatus(
        out_trade_no=attempt.out_trade_no, state=TradeState.paid, channel_state="SUCCESS",
        channel_trade_no=f"4200{secrets.randbelow(10**24):024d}", amount_fen=attempt.amount_fen,
        currency="CNY", paid_at=paid_at,
    )  # fmt: skip
    payments.apply_trade_status(session, status=paid, now=paid_at, settings=settings)
    (ticket,) = tickets_of_order(session, order.id)
    return Sold(ticket.code, ticket.id, hall.name, film.title, starts_at)
