"""Seating cases drawn as rows of characters, so a reader sees the case.

One string per row, front row first (labels A, B, …), between wall bars::

    |  the end of the row (a wall)       _  aisle or gap
    .  free seat                         X  seat in the choice
    T  seat taken (sold, held by others) #  blocked seat
    o  free seat the choice strands      w W  wheelchair space, free / chosen
                                         v  free wheelchair space the choice strands
    ( )  free couple seat   [ ]  chosen couple seat   { }  taken couple seat

Seats are numbered from the left, gaps skipped, as in the text layout: ``"|..XX_..|"`` is
A1 A2 free, A3 A4 chosen, an aisle, A5 A6 free.
"""

from __future__ import annotations

from dataclasses import dataclass

from cinema.layout import SeatMap, parse_text_layout

_LAYOUT = {".": "s", "X": "s", "T": "s", "o": "s", "#": "x", "_": "_", "w": "w", "W": "w", "v": "w"}
_LAYOUT |= dict.fromkeys("([{", "(") | dict.fromkeys(")]}", ")")
_CHOSEN = frozenset("X[]W")
_TAKEN = frozenset("T{}")


@dataclass(frozen=True)
class Drawn:
    seat_map: SeatMap
    chosen: tuple[str, ...]
    taken: frozenset[str]
    stranded: tuple[str, ...]  # the seats marked o


def draw(*rows: str) -> Drawn:
    chosen: list[str] = []
    taken: set[str] = set()
    stranded: list[str] = []
    lines: list[str] = []
    for index, row in enumerate(rows):
        if not (row.startswith("|") and row.endswith("|")):
            raise ValueError(f"a drawn row runs from wall to wall: {row!r}")
        label = chr(ord("A") + index)
        number = 0
        for symbol in row[1:-1]:
            if _LAYOUT[symbol] == "_":
                continue
            number += 1
            seat_id = f"{label}{number}"
            if symbol in _CHOSEN:
                chosen.append(seat_id)
            elif symbol in _TAKEN:
                taken.add(seat_id)
            elif symbol in "ov":
                stranded.append(seat_id)
        lines.append(f"{label} | {' '.join(_LAYOUT[symbol] for symbol in row[1:-1])} |")
    seat_map = parse_text_layout("\n".join(lines))
    return Drawn(seat_map, tuple(chosen), frozenset(taken), tuple(stranded))
