"""The seat map as the H5 page draws it: where each seat goes in the SVG, and what it looks like.

Pure geometry over a :class:`cinema.layout.SeatMap`; no database. The hall is drawn as the
audience sees it: the screen at the top, row A nearest to it, seats left to right. Every cell is
``CELL`` units wide, so aisles keep their width and rows line up; a couple seat's two halves are
drawn touching, as one sofa. The page scales the SVG to a finger-friendly size and lets a wide
hall scroll sideways inside its box rather than shrinking seats below a fingertip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cinema.layout import SeatKind, SeatMap
from cinema.schemas import SeatState, seat_state

CELL = 30  # SVG units per cell, across and down
SEAT_W, SEAT_H = 24, 22
LABEL_W = 24  # the row labels' column, on both sides
SCREEN_H = 34  # the screen's arc and its caption, above row A
# The phone draws one cell this many CSS pixels wide, at least: a fingertip is about 40 px, and
# a seat this size with its neighbour's gap is still tapped reliably (the page can zoom).
MIN_CELL_PX = 30

ZONE_COLOURS = 5  # the page's stylesheet colours zones zone-0 … zone-4, cheapest first

ZONE_ZH = {
    "front": "前排",
    "standard": "普通区",
    "golden": "黄金区",
    "couple": "情侣座",
    "vip": "VIP",
    "vip_couple": "VIP情侣座",
    "default": "普通区",
}
STATE_ZH = {
    "free": "可选",
    "sold": "已售",
    "held": "已锁定",
    "mine": "我的锁座",
    "blocked": "不可售",
}
_KIND_ZH = {
    SeatKind.wheelchair: " 轮椅位",
    SeatKind.couple_left: " 情侣座",
    SeatKind.couple_right: " 情侣座",
}


def zone_zh(zone: str) -> str:
    """A zone's name for people: the known ones in Chinese, any other as the hall names it."""
    return ZONE_ZH.get(zone, zone)


@dataclass(frozen=True)
class SeatShape:
    seat_id: str
    x: int
    y: int
    width: int
    kind: SeatKind
    zone: str
    state: SeatState
    price_fen: int | None  # None: not sold at this showtime
    partner: str | None  # the other half of a couple seat

    @property
    def is_couple(self) -> bool:
        return self.partner is not None

    @property
    def label_zh(self) -> str:
        """What a screen reader says for the seat: "F排7座 黄金区 可选"."""
        row = self.seat_id.rstrip("0123456789")
        number = self.seat_id[len(row) :]
        extra = _KIND_ZH.get(self.kind, "")
        return f"{row}排{number}座{extra} {zone_zh(self.zone)} {STATE_ZH[self.state]}"


@dataclass(frozen=True)
class RowLabel:
    label: str
    y: int


@dataclass(frozen=True)
class SeatMapView:
    width: int  # SVG units
    height: int
    min_width_px: int
    seats: tuple[SeatShape, ...]
    rows: tuple[RowLabel, ...]
    screen_path: str  # the screen's arc


def seat_map_view(
    seat_map: SeatMap,
    *,
    sold: frozenset[str],
    held_by: Mapping[str, str],
    openid: str,
    prices_fen: Mapping[str, int],
) -> SeatMapView:
    columns = seat_map.width
    width = 2 * LABEL_W + columns * CELL
    height = SCREEN_H + len(seat_map.rows) * CELL + 6
    seats = []
    for row in seat_map.rows:
        y = SCREEN_H + row.index * CELL + (CELL - SEAT_H) // 2
        for seat in row.seats:
            x = LABEL_W + seat.column * CELL + (CELL - SEAT_W) // 2
            seat_width = SEAT_W
            if seat.kind is SeatKind.couple_left:
                seat_width = CELL  # reaches its right half: one sofa
            elif seat.kind is SeatKind.couple_right:
                x -= (CELL - SEAT_W) // 2
                seat_width = SEAT_W + (CELL - SEAT_W) // 2
            seats.append(
                SeatShape(
                    seat_id=seat.id,
                    x=x,
                    y=y,
                    width=seat_width,
                    kind=seat.kind,
                    zone=seat.zone,
                    state=seat_state(
                        seat.id, seat.sellable, sold=sold, held_by=held_by, openid=openid
                    ),
                    price_fen=prices_fen.get(seat.zone),
                    partner=partner.id if (partner := seat_map.partner(seat.id)) else None,
                )
            )
    rows = tuple(
        RowLabel(row.label, SCREEN_H + row.index * CELL + CELL // 2) for row in seat_map.rows
    )
    left, right = LABEL_W + CELL, width - LABEL_W - CELL
    screen = f"M {left} 16 Q {width // 2} 2 {right} 16"
    return SeatMapView(
        width=width,
        height=height,
        min_width_px=(columns + 2) * MIN_CELL_PX,
        seats=tuple(seats),
        rows=rows,
        screen_path=screen,
    )
