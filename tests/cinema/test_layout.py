from __future__ import annotations

import json
from typing import Any

import pytest

from cinema.layout import (
    DEFAULT_ZONE,
    Edge,
    Row,
    Seat,
    SeatKind,
    SeatMap,
    SeatMapError,
    parse_json_layout,
    parse_text_layout,
    to_json,
)

HALL = """
# Hall 2 (the screen is above the first line)
B: A | s s s _ s s s s _ s s s |
B: B | s s s _ s s s s _ s s s |

   C | s s x _ s s s s _ w _ _ |
V: D | ( ) ( ) _ ( ) ( ) _ _ |
"""
ZONES = {"B": "普通区", "V": "情侣区"}


@pytest.fixture
def hall() -> SeatMap:
    return parse_text_layout(HALL, zones=ZONES)


def test_rows_front_first_with_their_labels(hall: SeatMap) -> None:
    assert [(row.index, row.label, len(row.cells)) for row in hall.rows] == [
        (0, "A", 12),
        (1, "B", 12),
        (2, "C", 12),
        (3, "D", 11),
    ]
    assert hall.width == 12
    assert len(hall.seats) == 10 + 10 + 8 + 8


def test_seats_are_numbered_from_the_left_skipping_gaps(hall: SeatMap) -> None:
    assert [seat.id for seat in hall.rows[0].seats] == [f"A{n}" for n in range(1, 11)]
    assert [(seat.number, seat.column) for seat in hall.rows[0].seats][2:5] == [
        (3, 2),
        (4, 4),
        (5, 5),
    ]
    assert hall.rows[0].cells[3] is None


def test_seat_fields(hall: SeatMap) -> None:
    assert hall.seat("C3") == Seat("C", 3, 2, 2, SeatKind.standard, DEFAULT_ZONE, sellable=False)
    assert hall.seat("C8") == Seat("C", 8, 2, 9, SeatKind.wheelchair, DEFAULT_ZONE)
    assert hall.seat("D1") == Seat("D", 1, 3, 0, SeatKind.couple_left, "情侣区")
    assert hall.seat("D2").kind is SeatKind.couple_right
    assert hall.seat("A1").zone == "普通区"
    assert hall.seat("D5").is_couple
    assert not hall.seat("C8").is_couple


def test_seats_are_in_hall_order(hall: SeatMap) -> None:
    ids = list(hall.seats)
    assert ids[:3] == ["A1", "A2", "A3"]
    assert ids[-1] == "D8"


@pytest.mark.parametrize(
    ("seat_id", "left", "right"),
    [
        pytest.param("A1", Edge.wall, "A2", id="first-seat-wall"),
        pytest.param("A3", "A2", Edge.aisle, id="before-aisle"),
        pytest.param("A4", Edge.aisle, "A5", id="after-aisle"),
        pytest.param("A10", "A9", Edge.wall, id="last-seat-wall"),
        pytest.param("C2", "C1", "C3", id="blocked-seat-is-a-seat"),
        pytest.param("C8", Edge.aisle, Edge.aisle, id="wheelchair-between-gaps"),
        pytest.param("D8", "D7", Edge.aisle, id="short-row-padded-with-gaps"),
    ],
)
def test_neighbours(hall: SeatMap, seat_id: str, left: str | Edge, right: str | Edge) -> None:
    def show(cell: Seat | Edge) -> str | Edge:
        return cell.id if isinstance(cell, Seat) else cell

    assert (show(hall.neighbour(seat_id, -1)), show(hall.neighbour(seat_id, 1))) == (left, right)


def test_neighbour_step_is_one_seat(hall: SeatMap) -> None:
    with pytest.raises(ValueError, match="step"):
        hall.neighbour("A1", 2)


def test_segments_run_between_gaps_and_walls(hall: SeatMap) -> None:
    assert [[seat.id for seat in run] for run in hall.segments(2)] == [
        ["C1", "C2", "C3"],
        ["C4", "C5", "C6", "C7"],
        ["C8"],
    ]
    assert [seat.id for seat in hall.segment("A6")] == ["A4", "A5", "A6", "A7"]


@pytest.mark.parametrize(
    ("seat_id", "partner"),
    [
        pytest.param("D1", "D2", id="left-half"),
        pytest.param("D2", "D1", id="right-half"),
        pytest.param("D7", "D8", id="after-aisle"),
        pytest.param("A1", None, id="standard"),
        pytest.param("C8", None, id="wheelchair"),
    ],
)
def test_couple_partner(hall: SeatMap, seat_id: str, partner: str | None) -> None:
    found = hall.partner(seat_id)
    assert (found.id if found else None) == partner


def test_blanks_between_cells_are_for_reading_only() -> None:
    assert parse_text_layout("A | sss_()w |") == parse_text_layout("A|s s s _ ( ) w|")


def test_zone_key_is_the_name_without_a_mapping() -> None:
    seat_map = parse_text_layout("VIP: A | s s |\nB | s |")
    assert [seat.zone for seat in seat_map.seats.values()] == ["VIP", "VIP", DEFAULT_ZONE]


def test_seat_map_is_hashable_and_compares_by_value(hall: SeatMap) -> None:
    again = parse_text_layout(HALL, zones=ZONES)
    assert again == hall
    assert hash(again) == hash(hall)
    assert again != parse_text_layout(HALL)  # zones differ


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "at least one row", id="no-rows"),
        pytest.param("# only a comment\n", "at least one row", id="only-comments"),
        pytest.param(
            "A | s ( s |", r"line 1: row A: couple seat A2 has no right half", id="lone-("
        ),
        pytest.param("A | s s ) |", "line 1: row A: couple seat A3 has no left half", id="lone-)"),
        pytest.param("A | ( _ ) |", "couple seat A1 has no right half", id="couple-across-gap"),
        pytest.param("A | ) ( |", "couple seat A1 has no left half", id="couple-backwards"),
        pytest.param("A | ( ( ) |", "couple seat A1 has no right half", id="couple-((-)"),
        pytest.param("A | s |\n\nA | s |", "line 3: row A already on line 1", id="duplicate"),
        pytest.param("A | s ? s |", "line 1: row A: unknown symbol '\\?' in cell 2", id="symbol"),
        pytest.param("A | S |", "unknown symbol 'S'", id="capital-s"),
        pytest.param("A | _ _ |", "line 1: row A: no seats", id="only-gaps"),
        pytest.param("A | |", "row A: no seats", id="empty-row"),
        pytest.param("A | s |\nB s s", "line 2: expected", id="no-bars"),
        pytest.param("A | s | s |", "line 1: expected", id="three-bars"),
        pytest.param("| s |", "row label '' is not", id="no-label"),
        pytest.param("a | s |", "row label 'a'", id="lowercase-label"),
        pytest.param("A1 | s |", "row label 'A1'", id="label-ending-in-digit"),
        pytest.param("ABCD | s |", "row label 'ABCD'", id="label-too-long"),
        pytest.param("A | " + "s" * 61 + " |", "line 1: row A: 61 cells, at most 60", id="61-cols"),
        pytest.param(
            "\n".join(f"{chr(65 + i // 26)}{chr(65 + i % 26)} | s |" for i in range(41)),
            "line 41: more than 40 rows",
            id="41-rows",
        ),
    ],
)
def test_bad_text_layout_is_refused(text: str, message: str) -> None:
    with pytest.raises(SeatMapError, match=message):
        parse_text_layout(text)


def test_limits_themselves_are_allowed() -> None:
    rows = "\n".join(f"{chr(65 + i // 26)}{chr(65 + i % 26)} | {'s' * 60} |" for i in range(40))
    assert len(parse_text_layout(rows).seats) == 2400


def test_zone_key_missing_from_the_mapping_is_refused() -> None:
    with pytest.raises(SeatMapError, match=r"line 2: row B: zone 'X' is not among \['B', 'V'\]"):
        parse_text_layout("B: A | s |\nX: B | s |", zones=ZONES)


def test_seat_map_error_is_a_value_error() -> None:
    assert issubclass(SeatMapError, ValueError)


# --- JSON ------------------------------------------------------------------------------------


def test_json_round_trip(hall: SeatMap) -> None:
    data = to_json(hall)
    assert parse_json_layout(data) == hall
    assert parse_json_layout(json.loads(json.dumps(data, ensure_ascii=False))) == hall


def test_json_written_in_full(hall: SeatMap) -> None:
    rows: Any = to_json(hall)["rows"]
    assert rows[3]["label"] == "D"
    assert rows[3]["cells"][:3] == [
        {"kind": "couple_left", "zone": "情侣区", "sellable": True, "number": 1},
        {"kind": "couple_right", "zone": "情侣区", "sellable": True, "number": 2},
        {"kind": "couple_left", "zone": "情侣区", "sellable": True, "number": 3},
    ]
    assert rows[3]["cells"][4] is None


def test_json_defaults_match_the_text_form() -> None:
    data = {
        "rows": [
            {"label": "A", "zone": "B", "cells": [{}, {}, None, {"kind": "wheelchair"}]},
            {
                "label": "B",
                "cells": [{"sellable": False}, {"kind": "couple_left"}, {"kind": "couple_right"}],
            },
        ]
    }
    assert parse_json_layout(data) == parse_text_layout("B: A | s s _ w |\nB | x ( ) |")


def test_json_seat_numbers_and_zones_may_be_explicit() -> None:
    # Numbered from the right, with a better zone in the middle seat.
    cells = [{"number": 3}, {"number": 2, "zone": "黄金"}, {"number": 1}]
    seat_map = parse_json_layout({"rows": [{"label": "F", "cells": cells}]})
    assert [(seat.id, seat.zone) for seat in seat_map.rows[0].seats] == [
        ("F3", DEFAULT_ZONE),
        ("F2", "黄金"),
        ("F1", DEFAULT_ZONE),
    ]
    assert parse_json_layout(to_json(seat_map)) == seat_map


def row(*cells: object, label: object = "A") -> dict[str, object]:
    return {"rows": [{"label": label, "cells": list(cells)}]}


COUPLE = {"kind": "couple_left"}, {"kind": "couple_right"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({}, "a list 'rows'", id="no-rows"),
        pytest.param({"rows": {}}, "a list 'rows'", id="rows-not-a-list"),
        pytest.param({"rows": []}, "at least one row", id="zero-rows"),
        pytest.param({"rows": [[]]}, r"rows\[0\]: expected an object", id="row-not-an-object"),
        pytest.param(row({}, label="a"), r"rows\[0\]: row label 'a'", id="bad-label"),
        pytest.param(row({}, label=None), "row label None", id="no-label"),
        pytest.param({"rows": [{"label": "A", "cells": "ss"}]}, "a list 'cells'", id="cells-str"),
        pytest.param(
            {"rows": [{"label": "A", "zone": 1, "cells": []}]}, "string 'zone'", id="zone"
        ),
        pytest.param(row({}, {"kind": "sofa"}), "row A cell 2: bad kind", id="unknown-kind"),
        pytest.param(row({"kind": ["standard"]}), "bad kind", id="kind-not-a-string"),
        pytest.param(row({"sellable": "yes"}), "bad kind, zone or sellable", id="sellable-str"),
        pytest.param(row({"zone": ""}), "seat A1 has an empty zone", id="empty-zone"),
        pytest.param(row({"number": True}), "number must be an integer", id="number-bool"),
        pytest.param(row({"number": "1"}), "number must be an integer", id="number-str"),
        pytest.param(row({"number": 0}), "seat number 0", id="number-zero"),
        pytest.param(row({}, {"number": 1}), "seat number 1 is not a new", id="number-repeats"),
        pytest.param(row({"colour": "red"}), "cell 1: expected null or an object", id="extra-key"),
        pytest.param(row("s"), "cell 1: expected null or an object", id="cell-str"),
        pytest.param(row(None, None), "row A: no seats", id="only-gaps"),
        pytest.param(row(COUPLE[0]), "couple seat A1 has no right half", id="lone-left"),
        pytest.param(row(COUPLE[0], None, COUPLE[1]), "no right half", id="couple-across-gap"),
        pytest.param(
            row(COUPLE[0], {"kind": "couple_right", "zone": "V"}),
            "couple seat A1\\+A2 halves differ",
            id="couple-zones-differ",
        ),
        pytest.param(
            row(COUPLE[0], {"kind": "couple_right", "sellable": False}),
            "halves differ",
            id="couple-half-blocked",
        ),
        pytest.param(row(*[{}] * 61), "61 cells, at most 60", id="61-cols"),
        pytest.param(
            {"rows": [{"label": "A", "cells": [{}]}] * 2}, "duplicate row label", id="dup"
        ),
        pytest.param(
            {"rows": [{"label": f"A{chr(65 + i)}", "cells": [{}]} for i in range(26)] * 2},
            r"rows\[40\]: more than 40 rows",
            id="41-rows",
        ),
    ],
)
def test_bad_json_layout_is_refused(data: Any, message: str) -> None:
    with pytest.raises(SeatMapError, match=message):
        parse_json_layout(data)


# --- direct construction ---------------------------------------------------------------------


def test_a_seat_map_built_by_hand_is_checked_too() -> None:
    misplaced = Seat("A", 1, 0, column=1)
    with pytest.raises(SeatMapError, match="seat A1 is not where it says it is"):
        SeatMap((Row(0, "A", (misplaced,)),))
    with pytest.raises(SeatMapError, match="index 1, expected 0"):
        SeatMap((Row(1, "A", (Seat("A", 1, 1, 0),)),))
