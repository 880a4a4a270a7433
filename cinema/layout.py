"""Halls as seat maps, and their import from a text or JSON layout: pure, no database.

A hall is a grid: rows from the front (nearest the screen, index 0) to the back, and in each row
cells from the left as the audience faces the screen. A cell is a seat or a gap (aisle, stairs,
a pillar, padding). Rows line up by cell position, so a shorter or staggered row is padded with
gaps; the hall's width is its widest row.

Text layout, one line per row, front row first::

    # Hall 2 (the screen is above the first line)
    B: A | s s s _ s s s s _ s s s |
    B: B | s s s _ s s s s _ s s s |
       C | s s x _ s s s s _ w _ _ |
    V: D | ( ) ( ) _ ( ) ( ) _ _ _ |

* ``ZONE:`` (optional) puts the whole row in a price zone: the key is looked up in ``zones``
  (a key missing there is an error) or, without ``zones``, is the zone name itself. A row without
  it is in :data:`DEFAULT_ZONE`. Zones per seat need the JSON form.
* ``LABEL`` is the row label printed on the seats: one to three capital letters. A seat's id is
  label + number ("F7"); a label ending in a digit would make row "1" seat 12 and row "11" seat 2
  the same id.
* Between the bars every non-blank character is one cell; blanks are for the reader only, so
  ``sss_ss`` and ``s s s _ s s`` are the same row. ``s`` seat, ``w`` wheelchair space,
  ``x`` blocked seat (it exists and has a number but is never sold), ``(`` ``)`` the left and right
  half of a couple seat (sold as a pair: a ``(`` is immediately followed by its ``)``), ``_`` gap.
* Seats are numbered 1, 2, … from the left, counting seats (blocked ones included) and skipping
  gaps. A seat's column is its cell position, gaps included.
* Blank lines and lines starting with ``#`` are ignored. At most 40 rows of at most 60 cells, and
  every row has at least one seat.

JSON form (what :func:`to_json` writes; :func:`parse_json_layout` reads it back equal)::

    {"rows": [{"label": "A", "zone": "B",
               "cells": [{"kind": "standard", "zone": "B", "sellable": true, "number": 1}, null]}]}

``null`` is a gap. In a cell every key is optional: ``kind`` (a :class:`SeatKind` value, default
standard), ``zone`` (default the row's ``zone``, else :data:`DEFAULT_ZONE`), ``sellable`` (default
true) and ``number`` (default: counted from the left as in the text form; explicit numbers allow
halls numbered otherwise). The two halves of a couple seat share zone and sellability.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "DEFAULT_ZONE",
    "MAX_COLUMNS",
    "MAX_ROWS",
    "Edge",
    "Row",
    "Seat",
    "SeatKind",
    "SeatMap",
    "SeatMapError",
    "parse_json_layout",
    "parse_text_layout",
    "to_json",
]

MAX_ROWS = 40
MAX_COLUMNS = 60
DEFAULT_ZONE = "default"
_LABEL = re.compile(r"[A-Z]{1,3}")
_ROW_LINE = re.compile(r"(?:(?P<zone>[^\s:|]+)\s*:)?\s*(?P<label>[^\s|]*)\s*\|(?P<cells>[^|]*)\|")


class SeatMapError(ValueError):
    """A layout that cannot be a hall; the message names the line or row."""


class SeatKind(StrEnum):
    standard = "standard"
    couple_left = "couple_left"
    couple_right = "couple_right"
    wheelchair = "wheelchair"


class Edge(StrEnum):
    """What lies beside a seat that has no seat next to it."""

    aisle = "aisle"  # a gap cell
    wall = "wall"  # the end of the row


@dataclass(frozen=True)
class Seat:
    row_label: str
    number: int  # as printed on the seat
    row_index: int  # 0 = front row
    column: int  # cell position in the row, gaps included
    kind: SeatKind = SeatKind.standard
    zone: str = DEFAULT_ZONE
    sellable: bool = True  # False: blocked

    @property
    def id(self) -> str:
        return f"{self.row_label}{self.number}"

    @property
    def is_couple(self) -> bool:
        return self.kind in (SeatKind.couple_left, SeatKind.couple_right)


@dataclass(frozen=True)
class Row:
    index: int
    label: str
    cells: tuple[Seat | None, ...]  # None = gap

    @property
    def seats(self) -> tuple[Seat, ...]:
        return tuple(cell for cell in self.cells if cell is not None)


@dataclass(frozen=True)
class SeatMap:
    rows: tuple[Row, ...]
    # Derived indexes, built once (lookups are on the hot path of best_available).
    _by_id: dict[str, Seat] = field(init=False, repr=False, compare=False, hash=False)
    _segments: dict[str, tuple[Seat, ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )
    _partners: dict[str, Seat] = field(init=False, repr=False, compare=False, hash=False)
    _positions: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _check_rows(self.rows)
        by_id: dict[str, Seat] = {}
        segments: dict[str, tuple[Seat, ...]] = {}
        for row in self.rows:
            by_id.update((seat.id, seat) for seat in row.seats)
            for run in _runs(row):
                segments.update((seat.id, run) for seat in run)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_segments", segments)
        partners: dict[str, Seat] = {}
        for row in self.rows:
            for left, right in zip(row.cells, row.cells[1:], strict=False):
                if left is not None and right is not None and left.kind is SeatKind.couple_left:
                    partners[left.id], partners[right.id] = right, left
        object.__setattr__(self, "_partners", partners)
        object.__setattr__(self, "_positions", {seat_id: n for n, seat_id in enumerate(by_id)})

    @property
    def seats(self) -> Mapping[str, Seat]:
        """Every seat by id, front row first, left to right."""
        return MappingProxyType(self._by_id)

    @property
    def width(self) -> int:
        return max(len(row.cells) for row in self.rows)

    def seat(self, seat_id: str) -> Seat:
        return self._by_id[seat_id]

    def neighbour(self, seat_id: str, step: int) -> Seat | Edge:
        """The cell beside a seat (``step`` -1 left, +1 right): a seat, an aisle or the wall."""
        if step not in (-1, 1):
            raise ValueError("step is -1 (left) or +1 (right)")
        seat = self._by_id[seat_id]
        cells = self.rows[seat.row_index].cells
        column = seat.column + step
        if not 0 <= column < len(cells):
            return Edge.wall
        return cells[column] or Edge.aisle

    def segment(self, seat_id: str) -> tuple[Seat, ...]:
        """The run of adjacent seats holding this one, between gaps and the row's ends."""
        return self._segments[seat_id]

    def segments(self, row_index: int) -> tuple[tuple[Seat, ...], ...]:
        return _runs(self.rows[row_index])

    def partner(self, seat_id: str) -> Seat | None:
        """The other half of a couple seat; None for any other seat."""
        if seat_id not in self._by_id:
            raise KeyError(seat_id)
        return self._partners.get(seat_id)

    def position(self, seat_id: str) -> int:
        """The seat's place in the hall's order (front row first, left to right)."""
        return self._positions[seat_id]


def _runs(row: Row) -> tuple[tuple[Seat, ...], ...]:
    runs: list[tuple[Seat, ...]] = []
    current: list[Seat] = []
    for cell in (*row.cells, None):
        if cell is not None:
            current.append(cell)
        elif current:
            runs.append(tuple(current))
            current = []
    return tuple(runs)


def _check_rows(rows: tuple[Row, ...]) -> None:
    if not rows:
        raise SeatMapError("a hall needs at least one row")
    if len(rows) > MAX_ROWS:
        raise SeatMapError(f"row {rows[MAX_ROWS].label}: more than {MAX_ROWS} rows")
    labels: set[str] = set()
    for index, row in enumerate(rows):
        if row.label in labels:
            raise SeatMapError(f"row {row.label}: duplicate row label")
        labels.add(row.label)
        if row.index != index:
            raise SeatMapError(f"row {row.label}: index {row.index}, expected {index}")
        _check_row(row)


def _check_row(row: Row) -> None:
    """Everything a single row must satisfy; messages start with the row."""
    where = f"row {row.label}"
    if not _LABEL.fullmatch(row.label):
        raise SeatMapError(f"{where}: a row label is one to three capital letters")
    if len(row.cells) > MAX_COLUMNS:
        raise SeatMapError(f"{where}: {len(row.cells)} cells, at most {MAX_COLUMNS}")
    if not row.seats:
        raise SeatMapError(f"{where}: no seats")
    numbers: set[int] = set()
    for column, seat in enumerate(row.cells):
        if seat is None:
            continue
        if (seat.row_label, seat.row_index, seat.column) != (row.label, row.index, column):
            raise SeatMapError(f"{where}: seat {seat.id} is not where it says it is")
        if seat.number < 1 or seat.number in numbers:
            raise SeatMapError(f"{where}: seat number {seat.number} is not a new positive number")
        numbers.add(seat.number)
        if not seat.zone:
            raise SeatMapError(f"{where}: seat {seat.id} has an empty zone")
        _check_couple(row, column, seat)


def _check_couple(row: Row, column: int, seat: Seat) -> None:
    where = f"row {row.label}"
    left = row.cells[column - 1] if column > 0 else None
    right = row.cells[column + 1] if column + 1 < len(row.cells) else None
    if seat.kind is SeatKind.couple_left and (right is None or right.kind != SeatKind.couple_right):
        raise SeatMapError(f"{where}: couple seat {seat.id} has no right half next to it")
    if seat.kind is SeatKind.couple_right and (left is None or left.kind != SeatKind.couple_left):
        raise SeatMapError(f"{where}: couple seat {seat.id} has no left half next to it")
    if seat.kind is not SeatKind.couple_right or left is None:
        return
    if (left.zone, left.sellable) != (seat.zone, seat.sellable):  # checked once, at the right half
        raise SeatMapError(f"{where}: couple seat {left.id}+{seat.id} halves differ")


# --- text ------------------------------------------------------------------------------------

_SYMBOLS: dict[str, tuple[SeatKind, bool]] = {
    "s": (SeatKind.standard, True),
    "w": (SeatKind.wheelchair, True),
    "x": (SeatKind.standard, False),
    "(": (SeatKind.couple_left, True),
    ")": (SeatKind.couple_right, True),
}


def parse_text_layout(text: str, *, zones: Mapping[str, str] | None = None) -> SeatMap:
    """Read the text layout described in the module docstring."""
    rows: list[Row] = []
    seen: dict[str, int] = {}  # row label -> line number
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = _text_row(line, len(rows), zones)
        except SeatMapError as error:
            raise SeatMapError(f"line {number}: {error}") from None
        if row.label in seen:
            raise SeatMapError(f"line {number}: row {row.label} already on line {seen[row.label]}")
        if len(rows) == MAX_ROWS:
            raise SeatMapError(f"line {number}: more than {MAX_ROWS} rows")
        seen[row.label] = number
        rows.append(row)
    return SeatMap(tuple(rows))


def _text_row(line: str, index: int, zones: Mapping[str, str] | None) -> Row:
    match = _ROW_LINE.fullmatch(line.strip())
    if match is None:
        raise SeatMapError("expected '[ZONE:] LABEL | cells |'")
    label, key = match["label"], match["zone"]
    if not _LABEL.fullmatch(label):
        raise SeatMapError(f"row label {label!r} is not one to three capital letters")
    zone = DEFAULT_ZONE if key is None else key if zones is None else zones.get(key)
    if zone is None:
        raise SeatMapError(f"row {label}: zone {key!r} is not among {sorted(zones or {})}")
    cells: list[Seat | None] = []
    for column, symbol in enumerate("".join(match["cells"].split())):
        if symbol == "_":
            cells.append(None)
        elif symbol in _SYMBOLS:
            kind, sellable = _SYMBOLS[symbol]
            number = sum(cell is not None for cell in cells) + 1
            cells.append(Seat(label, number, index, column, kind, zone, sellable))
        else:
            raise SeatMapError(f"row {label}: unknown symbol {symbol!r} in cell {column + 1}")
    row = Row(index, label, tuple(cells))
    _check_row(row)
    return row


# --- JSON ------------------------------------------------------------------------------------

_CELL_KEYS = frozenset({"kind", "zone", "sellable", "number"})
_KINDS = tuple(kind.value for kind in SeatKind)  # a tuple: `in` compares, so no hashing of junk


def parse_json_layout(data: Mapping[str, object]) -> SeatMap:
    """Read the JSON form described in the module docstring (already decoded)."""
    rows_data = data.get("rows") if isinstance(data, Mapping) else None
    if not isinstance(rows_data, list):
        raise SeatMapError("expected an object with a list 'rows'")
    if len(rows_data) > MAX_ROWS:
        raise SeatMapError(f"rows[{MAX_ROWS}]: more than {MAX_ROWS} rows")
    rows: list[Row] = []
    for index, row_data in enumerate(rows_data):
        where = f"rows[{index}]"
        if not isinstance(row_data, Mapping):
            raise SeatMapError(f"{where}: expected an object")
        try:
            rows.append(_json_row(row_data, index))
        except SeatMapError as error:
            raise SeatMapError(f"{where}: {error}") from None
    return SeatMap(tuple(rows))


def _json_row(data: Mapping[str, object], index: int) -> Row:
    label, zone, cells_data = data.get("label"), data.get("zone", DEFAULT_ZONE), data.get("cells")
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise SeatMapError(f"row label {label!r} is not one to three capital letters")
    if not isinstance(zone, str) or not isinstance(cells_data, list):
        raise SeatMapError(f"row {label}: expected a string 'zone' and a list 'cells'")
    cells: list[Seat | None] = []
    for column, cell in enumerate(cells_data):
        if cell is None:
            cells.append(None)
            continue
        counted = sum(c is not None for c in cells) + 1
        cells.append(_json_seat(cell, label, index, column, zone, counted))
    row = Row(index, label, tuple(cells))
    _check_row(row)
    return row


def _json_seat(cell: object, label: str, index: int, column: int, zone: str, counted: int) -> Seat:
    where = f"row {label} cell {column + 1}"
    if not isinstance(cell, Mapping) or not set(cell) <= _CELL_KEYS:
        raise SeatMapError(f"{where}: expected null or an object with keys {sorted(_CELL_KEYS)}")
    kind, zone = cell.get("kind", "standard"), cell.get("zone", zone)
    sellable, number = cell.get("sellable", True), cell.get("number", counted)
    if kind not in _KINDS or not isinstance(zone, str) or not isinstance(sellable, bool):
        raise SeatMapError(f"{where}: bad kind, zone or sellable")
    # bool is an int in Python; a true "number" is a typo, not seat 1.
    if not isinstance(number, int) or isinstance(number, bool):
        raise SeatMapError(f"{where}: number must be an integer")
    return Seat(label, number, index, column, SeatKind(str(kind)), zone, sellable)


def to_json(seat_map: SeatMap) -> dict[str, object]:
    """The JSON form, every seat written out in full."""
    return {
        "rows": [
            {"label": row.label, "cells": [_seat_json(cell) for cell in row.cells]}
            for row in seat_map.rows
        ]
    }


def _seat_json(seat: Seat | None) -> dict[str, object] | None:
    if seat is None:
        return None
    return {
        "kind": seat.kind.value,
        "zone": seat.zone,
        "sellable": seat.sellable,
        "number": seat.number,
    }
