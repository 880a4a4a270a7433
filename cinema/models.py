"""Halls, films, showtimes, seat holds and tickets.

What keeps a seat from being sold twice is in the schema (STYLE.md §7): `seat_holds` has one row
per seat of a showtime that is held or sold, under UNIQUE (showtime_id, seat_id). A hold inserts
all its seats in one statement in one transaction, so a conflict on any seat rolls the whole hold
back, on both backends and across any number of worker processes. A held row carries its
`expires_at`; an expired row no longer counts as taken and is deleted (conditionally, `… WHERE
expires_at <= now`) by whoever next wants that seat, in the same transaction as their INSERT, so
the unique constraint stays the single judge of who has a seat. A sold row has no expiry.

`holds` records each hold as the user made it (its seats and prices, its fate, its order);
`seat_holds` is only the guard. A partial unique index allows one live hold per user and
showtime: a second one replaces the first (`cinema.service.hold_seats`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tianfu.orm import Base, TimestampMixin, UTCDateTime, enum_column, model_repr, utcnow


class ShowtimeStatus(StrEnum):
    scheduled = "scheduled"
    cancelled = "cancelled"


class HoldStatus(StrEnum):
    held = "held"  # live until expires_at
    converted = "converted"  # paid: its seats are sold and ticketed
    released = "released"  # given up (the user chose again, or the order closed unpaid)
    expired = "expired"  # ran out of time unpaid


class SeatHoldStatus(StrEnum):
    held = "held"
    sold = "sold"


class TicketStatus(StrEnum):
    valid = "valid"
    used = "used"  # verified at the entrance, once


class Hall(TimestampMixin, Base):
    """A screening room of a cinema (a store of category cinema) and its seat map."""

    __tablename__ = "halls"
    __table_args__ = (UniqueConstraint("store_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    # cinema.layout.to_json(): every seat written out (kind, zone, sellable, number).
    layout: Mapped[dict[str, Any]] = mapped_column(JSON)
    seat_count: Mapped[int] = mapped_column(Integer)  # sellable seats (blocked ones not counted)

    def __repr__(self) -> str:
        return model_repr(self, "id", "name", "seat_count")


class Film(Base):
    __tablename__ = "films"
    __table_args__ = (CheckConstraint("runtime_min > 0", name="runtime_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    runtime_min: Mapped[int] = mapped_column(Integer)
    # Shown beside the title: the audience score ("9.1"); the mainland has no age classification.
    rating: Mapped[str] = mapped_column(String(16), default="")
    # A reference in some other system (a distributor's catalogue, the demo seed).
    external_ref: Mapped[str | None] = mapped_column(String(64), unique=True)

    def __repr__(self) -> str:
        return model_repr(self, "id", "title")


class Showtime(Base):
    __tablename__ = "showtimes"
    __table_args__ = (
        UniqueConstraint("hall_id", "starts_at"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index("ix_showtimes_starts_at", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hall_id: Mapped[int] = mapped_column(ForeignKey("halls.id", ondelete="RESTRICT"))
    film_id: Mapped[int] = mapped_column(ForeignKey("films.id", ondelete="RESTRICT"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # No new holds from here on (a few minutes before the start).
    sales_close_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Zone name -> price of one seat in fen (a couple seat is two seats, each at its zone's price).
    prices_fen: Mapped[dict[str, int]] = mapped_column(JSON)
    status: Mapped[ShowtimeStatus] = mapped_column(
        enum_column(ShowtimeStatus, "showtime_status"), default=ShowtimeStatus.scheduled
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return model_repr(self, "id", "hall_id", "starts_at")


class Hold(TimestampMixin, Base):
    """One user's hold on some seats of one showtime, as it was made, and what became of it."""

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_not_negative"),
        # One live hold per user and showtime: two taps racing cannot leave the user two.
        Index(
            "uq_holds_live_showtime_id_openid",
            "showtime_id",
            "openid",
            unique=True,
            sqlite_where=text("status = 'held'"),
            postgresql_where=text("status = 'held'"),
        ),
        Index("ix_holds_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    showtime_id: Mapped[int] = mapped_column(ForeignKey("showtimes.id", ondelete="RESTRICT"))
    openid: Mapped[str] = mapped_column(String(64))
    # [{"seat_id": "F7", "zone": "golden", "price_fen": 5900}, …] in the hall's seat order, at
    # the prices of the moment the seats were held.
    seats: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    amount_fen: Mapped[int] = mapped_column(Integer)
    status: Mapped[HoldStatus] = mapped_column(
        enum_column(HoldStatus, "hold_status"), default=HoldStatus.held
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    order_no: Mapped[str | None] = mapped_column(String(24), unique=True)  # once checked out

    @property
    def seat_ids(self) -> list[str]:
        return [str(seat["seat_id"]) for seat in self.seats]

    def __repr__(self) -> str:
        return model_repr(self, "id", "showtime_id", "status")


class SeatHold(Base):
    """The double-booking guard: a row per seat of a showtime that is held or sold."""

    __tablename__ = "seat_holds"
    __table_args__ = (
        UniqueConstraint("showtime_id", "seat_id"),
        CheckConstraint(
            "(status = 'held' AND expires_at IS NOT NULL) "
            "OR (status = 'sold' AND expires_at IS NULL)",
            name="expiry_iff_held",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    showtime_id: Mapped[int] = mapped_column(ForeignKey("showtimes.id", ondelete="RESTRICT"))
    seat_id: Mapped[str] = mapped_column(String(8))
    hold_id: Mapped[int] = mapped_column(ForeignKey("holds.id", ondelete="RESTRICT"), index=True)
    openid: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    status: Mapped[SeatHoldStatus] = mapped_column(enum_column(SeatHoldStatus, "seat_hold_status"))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # NULL once sold

    def __repr__(self) -> str:
        return model_repr(self, "showtime_id", "seat_id", "status")


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # Issuing is once per order and seat, whatever calls it twice.
        UniqueConstraint("order_id", "seat_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # cinema.tickets.new_ticket_code(): 16 characters from `secrets`, shown and put in the QR.
    code: Mapped[str] = mapped_column(String(16), unique=True)
    showtime_id: Mapped[int] = mapped_column(
        ForeignKey("showtimes.id", ondelete="RESTRICT"), index=True
    )
    seat_id: Mapped[str] = mapped_column(String(8))
    hold_id: Mapped[int] = mapped_column(ForeignKey("holds.id", ondelete="RESTRICT"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    openid: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[TicketStatus] = mapped_column(
        enum_column(TicketStatus, "ticket_status"), default=TicketStatus.valid
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_by: Mapped[str | None] = mapped_column(String(64))  # who let the holder in

    def __repr__(self) -> str:
        return model_repr(self, "code", "seat_id", "status")
