"""What the H5 pages list: the showtimes cinemas have coming, a cinema's programme for a day,
and a user's ticket orders. Reads only; the times given are instants, the days Beijing days."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cinema.booking import ORDER_KIND
from cinema.catalog import CINEMA_CATEGORY
from cinema.models import Film, Hall, Hold, SeatHold, SeatHoldStatus, Showtime, ShowtimeStatus
from merchants.models import Category, Merchant, MerchantStatus, Store, StoreStatus
from merchants.opening_hours import SHANGHAI
from payments.models import Order

DAYS_SHOWN = 7  # the programme reaches a week ahead, as the seed schedules it


def beijing_day(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class Upcoming:
    """A cinema's showtimes still on sale today, and the next one it has at all."""

    today: int
    next_start: datetime | None


def upcoming_by_store(
    session: Session, store_ids: Iterable[int], *, now: datetime
) -> dict[int, Upcoming]:
    ids = list(store_ids)
    if not ids:
        return {}
    _, end_of_today = day_bounds(beijing_day(now))
    on_sale = (
        select(Hall.store_id, Showtime.starts_at)
        .join(Showtime, Showtime.hall_id == Hall.id)
        .where(
            Hall.store_id.in_(ids),
            Showtime.status == ShowtimeStatus.scheduled,
            Showtime.sales_close_at > now,
            Showtime.starts_at < now + timedelta(days=DAYS_SHOWN),
        )
    )
    found: dict[int, Upcoming] = {}
    for store_id, starts_at in session.execute(on_sale.order_by(Showtime.starts_at)):
        seen = found.get(store_id, Upcoming(0, starts_at))
        found[store_id] = Upcoming(seen.today + (starts_at < end_of_today), seen.next_start)
    return found


def cinemas_with_showtimes(session: Session, *, now: datetime, limit: int) -> list[Store]:
    """Open cinemas of approved merchants that have something on sale, by name: the list shown
    when the user's position is not known."""
    has_showtimes = (
        select(Hall.store_id)
        .join(Showtime, Showtime.hall_id == Hall.id)
        .where(Showtime.status == ShowtimeStatus.scheduled, Showtime.sales_close_at > now)
    )
    return list(
        session.scalars(
            select(Store)
            .join(Merchant, Merchant.id == Store.merchant_id)
            .join(Category, Category.id == Store.category_id)
            .where(
                Category.code == CINEMA_CATEGORY,
                Merchant.status == MerchantStatus.approved,
                Store.status == StoreStatus.open,
                Store.id.in_(has_showtimes),
            )
            .order_by(Store.name, Store.id)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class Showing:
    showtime_id: int
    starts_at: datetime
    ends_at: datetime
    hall_name: str
    from_fen: int  # the cheapest zone's price
    seats_left: int
    on_sale: bool


@dataclass
class FilmShowings:
    film_id: int
    title: str
    runtime_min: int
    rating: str
    showings: list[Showing] = field(default_factory=list)


def programme(session: Session, *, store_id: int, day: date, now: datetime) -> list[FilmShowings]:
    """The cinema's showtimes on a Beijing day, by film (the film with the first showtime
    first), each film's in time order; cancelled ones are left out."""
    start, end = day_bounds(day)
    rows = session.execute(
        select(Showtime, Hall.name, Hall.seat_count, Film)
        .join(Hall, Hall.id == Showtime.hall_id)
        .join(Film, Film.id == Showtime.film_id)
        .where(
            Hall.store_id == store_id,
            Showtime.status == ShowtimeStatus.scheduled,
            Showtime.starts_at >= start,
            Showtime.starts_at < end,
        )
        .order_by(Showtime.starts_at, Showtime.id)
    ).all()
    taken = _taken_counts(session, [showtime.id for showtime, *_ in rows], now)
    films: dict[int, FilmShowings] = {}
    for showtime, hall_name, seat_count, film in rows:
        entry = films.setdefault(
            film.id, FilmShowings(film.id, film.title, film.runtime_min, film.rating)
        )
        entry.showings.append(
            Showing(
                showtime_id=showtime.id,
                starts_at=showtime.starts_at,
                ends_at=showtime.ends_at,
                hall_name=hall_name,
                from_fen=min(showtime.prices_fen.values()),
                seats_left=max(seat_count - taken.get(showtime.id, 0), 0),
                on_sale=now < showtime.sales_close_at,
            )
        )
    return list(films.values())


def _taken_counts(session: Session, showtime_ids: list[int], now: datetime) -> dict[int, int]:
    if not showtime_ids:
        return {}
    live = (SeatHold.status == SeatHoldStatus.sold) | (SeatHold.expires_at > now)
    rows = session.execute(
        select(SeatHold.showtime_id, func.count())
        .where(SeatHold.showtime_id.in_(showtime_ids), live)
        .group_by(SeatHold.showtime_id)
    )
    return {showtime_id: int(count) for showtime_id, count in rows}


@dataclass(frozen=True)
class TicketOrder:
    order: Order
    hold: Hold
    film_title: str
    hall_name: str
    cinema_name: str
    starts_at: datetime


def _ticket_orders() -> Select[Order, Hold, str, str, str, datetime]:
    return (
        select(Order, Hold, Film.title, Hall.name, Store.name, Showtime.starts_at)
        .join(Hold, Hold.order_no == Order.order_no)
        .join(Showtime, Showtime.id == Hold.showtime_id)
        .join(Film, Film.id == Showtime.film_id)
        .join(Hall, Hall.id == Showtime.hall_id)
        .join(Store, Store.id == Hall.store_id)
    )


def _unpacked(row: Any) -> tuple[Order, Hold, str, str, str, datetime]:
    order, hold, film_title, hall_name, cinema_name, starts_at = row
    return order, hold, film_title, hall_name, cinema_name, starts_at


def ticket_orders(session: Session, openid: str, *, limit: int) -> list[TicketOrder]:
    """The user's cinema orders, newest first, with what they were for."""
    rows = session.execute(
        _ticket_orders()
        .where(Order.openid == openid, Order.kind == ORDER_KIND)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit)
    ).all()
    return [TicketOrder(*_unpacked(row)) for row in rows]


def ticket_order(session: Session, openid: str, order_no: str) -> TicketOrder | None:
    """One of the user's cinema orders; someone else's is None, as one that does not exist."""
    row = session.execute(
        _ticket_orders()
        .where(Order.order_no == order_no, Order.openid == openid)
        .execution_options(populate_existing=True)
    ).one_or_none()
    return None if row is None else TicketOrder(*_unpacked(row))
