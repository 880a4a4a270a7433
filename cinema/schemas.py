"""What the cinema API takes and gives."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from cinema.layout import SeatKind, SeatMap
from cinema.models import Hold, HoldStatus

SeatState = Literal["free", "sold", "held", "mine", "blocked"]


class HoldCreate(BaseModel):
    # Seat ids as printed ("F7"); a couple seat is both halves. The seating rules allow six.
    seats: list[str] = Field(min_length=1, max_length=12)


class CheckoutCreate(BaseModel):
    coupon_code: str | None = Field(default=None, max_length=20)
    points: int = Field(default=0, ge=0, le=10_000_000)


class BestSeatsRead(BaseModel):
    count: int
    seats: list[str]  # empty: no block of that many adjacent seats is left


class HeldSeatRead(BaseModel):
    seat_id: str
    zone: str
    price_fen: int


class HoldRead(BaseModel):
    hold_id: int
    showtime_id: int
    status: HoldStatus
    seats: list[HeldSeatRead]
    amount_fen: int
    expires_at: datetime
    order_no: str | None

    @classmethod
    def of(cls, hold: Hold) -> HoldRead:
        return cls(
            hold_id=hold.id,
            showtime_id=hold.showtime_id,
            status=hold.status,
            seats=[HeldSeatRead.model_validate(seat) for seat in hold.seats],
            amount_fen=hold.amount_fen,
            expires_at=hold.expires_at,
            order_no=hold.order_no,
        )


def seat_state(
    seat_id: str,
    sellable: bool,
    *,
    sold: frozenset[str],
    held_by: Mapping[str, str],
    openid: str,
) -> SeatState:
    """A seat as one user sees it: blocked, sold, free, or held (by them: "mine")."""
    if not sellable:
        return "blocked"
    if seat_id in sold:
        return "sold"
    holder = held_by.get(seat_id)
    if holder is None:
        return "free"
    return "mine" if holder == openid else "held"


class SeatCell(BaseModel):
    seat_id: str
    number: int
    kind: SeatKind
    zone: str
    state: SeatState


class SeatRowRead(BaseModel):
    label: str
    cells: list[SeatCell | None]  # None: an aisle or a gap


class ShowtimeSeatsRead(BaseModel):
    showtime_id: int
    film_title: str
    hall_name: str
    starts_at: datetime
    sales_close_at: datetime
    on_sale: bool
    prices_fen: dict[str, int]
    rows: list[SeatRowRead]

    @staticmethod
    def rows_of(
        seat_map: SeatMap, *, sold: frozenset[str], held_by: dict[str, str], openid: str
    ) -> list[SeatRowRead]:
        return [
            SeatRowRead(
                label=row.label,
                cells=[
                    None
                    if seat is None
                    else SeatCell(
                        seat_id=seat.id,
                        number=seat.number,
                        kind=seat.kind,
                        zone=seat.zone,
                        state=seat_state(
                            seat.id, seat.sellable, sold=sold, held_by=held_by, openid=openid
                        ),
                    )
                    for seat in row.cells
                ],
            )
            for row in seat_map.rows
        ]
