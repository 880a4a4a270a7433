"""Hall layouts for the demo seed, the race test and the bench, in the text form of
cinema.layout: what Chengdu multiplexes build, give or take a row.

Zones by row: ``front`` (the first rows, craning necks, cheaper), ``standard``, ``golden`` (the
middle rows, dearer), ``couple`` (the back row of paired seats, priced per seat), and in the VIP
hall ``vip`` and ``vip_couple``.
Wheelchair spaces sit at the row ends nearest the entrance; a blocked seat is the projection
technician's or sits behind a pillar.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HallTemplate:
    key: str
    name_suffix: str  # after "N号厅": the format the cinema advertises
    text: str
    surcharge_fen: int  # on every seat, for the screen and sound of this hall


def _rows(labels: str, zone: str, cells: str) -> str:
    return "\n".join(f"{zone}: {label} | {cells} |" for label in labels)


# 300 seats: eleven rows of 26 in three blocks, wheelchair spaces at the front left, and a back
# row of seven couple seats. The hall the race test and the bench fill.
GRAND = HallTemplate(
    key="grand",
    name_suffix=" IMAX",
    text="\n".join(
        [
            "# IMAX: screen above row A",
            "front: A | w w s s _ s s s s s s s s s s s s s s s s s s _ s s s s |",
            _rows("BC", "front", "s s s s _ s s s s s s s s s s s s s s s s s s _ s s s s"),
            _rows("DE", "standard", "s s s s _ s s s s s s s s s s s s s s s s s s _ s s s s"),
            _rows("FGHI", "golden", "s s s s _ s s s s s s s s s s s s s s s s s s _ s s s s"),
            _rows("JK", "standard", "s s s s _ s s s s s s s s s s s s s s s s s s _ s s s s"),
            "couple: L | ( ) ( ) _ ( ) ( ) ( ) _ ( ) ( ) |",
        ]
    ),
    surcharge_fen=2000,
)

# 155 seats: nine rows of 16 (one blocked behind the console), couple seats at the back.
MEDIUM = HallTemplate(
    key="medium",
    name_suffix="",
    text="\n".join(
        [
            _rows("AB", "front", "s s s _ s s s s s s s s s s _ s s s"),
            _rows("CD", "standard", "s s s _ s s s s s s s s s s _ s s s"),
            "golden: E | s s s _ s s s s s s s s s s _ s s x |",
            _rows("FG", "golden", "s s s _ s s s s s s s s s s _ s s s"),
            _rows("H", "standard", "s s s _ s s s s s s s s s s _ s s s"),
            "standard: I | w w s _ s s s s s s s s s s _ s w w |",
            "couple: J | ( ) ( ) _ ( ) ( ) _ ( ) ( ) |",
        ]
    ),
    surcharge_fen=0,
)

# 208 seats on a laser projector: eleven rows of 18, five couple seats.
LASER = HallTemplate(
    key="laser",
    name_suffix=" 激光厅",
    text="\n".join(
        [
            "front: A | w w s s _ s s s s s s s s s s _ s s s s |",
            _rows("BC", "front", "s s s s _ s s s s s s s s s s _ s s s s"),
            _rows("DE", "standard", "s s s s _ s s s s s s s s s s _ s s s s"),
            _rows("FGH", "golden", "s s s s _ s s s s s s s s s s _ s s s s"),
            _rows("IJK", "standard", "s s s s _ s s s s s s s s s s _ s s s s"),
            "couple: L | ( ) ( ) _ ( ) _ ( ) ( ) |",
        ]
    ),
    surcharge_fen=1000,
)

# 60 seats: seven rows of eight recliners and two couple sofas at the back, all VIP.
VIP = HallTemplate(
    key="vip",
    name_suffix=" VIP厅",
    text="\n".join(
        [
            "vip: A | w s s _ s s s s s |",
            _rows("BCDEFG", "vip", "s s s _ s s s s s"),
            "vip_couple: H | ( ) _ ( ) |",
        ]
    ),
    surcharge_fen=0,
)

TEMPLATES = {template.key: template for template in (GRAND, MEDIUM, LASER, VIP)}

# Added to a showtime's base price per seat, by zone.
ZONE_DELTA_FEN = {
    "front": -1000,
    "standard": 0,
    "golden": 1000,
    "couple": 1500,
    "vip": 4000,
    "vip_couple": 5000,
}
