from __future__ import annotations

import random
import time
from collections.abc import Collection

import pytest

from cinema.layout import SeatMap, parse_text_layout
from cinema.seating import Problem, Verdict, best_available, check_selection, placement_rank
from tests.cinema.drawing import draw

# Every case is drawn (legend in tests/cinema/drawing.py): X chosen, T taken, # blocked, _ aisle,
# | wall, [ ] chosen couple seat, W chosen wheelchair space, o a seat the choice strands. A case
# with an o is refused with exactly those seats; a case without is allowed.
ORPHAN_CASES = [
    # The buyer takes what is left.
    pytest.param(("|X|",), id="only-seat"),
    pytest.param(("|_X_|",), id="one-seat-between-aisles"),
    pytest.param(("|TXT|",), id="last-seat-between-taken"),
    pytest.param(("|XXXX.|",), id="four-of-five-leave-one-whatever"),
    # Three free seats and a party of two: one is left alone whichever they take.
    pytest.param(("|XX.|",), id="three-free-two-at-an-end"),
    pytest.param(("|.XX|",), id="three-free-two-at-the-other-end"),
    pytest.param(("|X.X|",), id="three-free-two-apart-middle-left"),
    pytest.param(("|T.XXT|",), id="three-free-between-taken"),
    pytest.param(("|#XX.#|",), id="three-free-between-blocked"),
    # The usual rule.
    pytest.param(("|..XX..|",), id="middle-of-six-leaves-pairs"),
    pytest.param(("|XX...|",), id="end-of-five"),
    pytest.param(("|oXX...|",), id="beside-the-wall-left"),
    pytest.param(("|...XXo|",), id="beside-the-wall-right"),
    pytest.param(("|..._oXX..|",), id="beside-an-aisle-left"),
    pytest.param(("|..XXo_...|",), id="beside-an-aisle-right"),
    pytest.param(("|ToXX..|",), id="beside-a-taken-seat"),
    pytest.param(("|..XXoT|",), id="beside-a-taken-seat-right"),
    pytest.param(("|#oXX..|",), id="blocked-seat-counts-as-a-wall"),
    pytest.param(("|#XX..|",), id="next-to-blocked-seat-is-fine"),
    pytest.param(("|oXXo|",), id="middle-of-four-strands-both"),
    pytest.param(("|oXXXXo|",), id="middle-four-of-six"),
    pytest.param(("|XoX....|",), id="gap-inside-the-choice"),
    pytest.param(("|X....X|",), id="two-ends-leave-a-run"),
    # A seat lone before the choice is not the buyer's doing.
    pytest.param(("|T.TXX..|",), id="lone-before-is-not-counted"),
    pytest.param(("|.ToXX..|",), id="lone-before-ignored-new-one-reported"),
    pytest.param(("|TXT..|",), id="buyer-takes-the-lone-seat"),
    pytest.param(("|T.T.XX|",), id="lone-before-plus-unavoidable"),
    # Never told to split up further; but scattering is not a way round the rule.
    pytest.param(("|XX.T...|",), id="pair-together-may-leave-one"),
    pytest.param(("|XoTXoTXo|",), id="scattered-three-strand-three"),
    pytest.param(("|XXTX.T..|",), id="three-in-two-groups-strand-one"),
    # Couple seats: sold as a unit; a pair stranding a standard seat counts.
    pytest.param(("|o[]()|",), id="couple-strands-a-seat"),
    pytest.param(("|.[]..|",), id="only-couple-seat-may-strand"),
    pytest.param(("|.[].|",), id="only-couple-seat-may-strand-both-ends"),
    pytest.param(("|()[]|",), id="couple-beside-couple"),
    pytest.param(("|.()[]|",), id="couple-leaves-couple-and-seat"),
    pytest.param(("|o[]X..|",), id="couple-and-seat-strand"),
    pytest.param(("|{}oX..|",), id="beside-a-taken-couple"),
    # Wheelchair spaces are seats like any other here.
    pytest.param(("|WX..|",), id="wheelchair-chosen-at-the-wall"),
    pytest.param(("|oWX..|",), id="wheelchair-chosen-strands"),
    pytest.param(("|XXw.|",), id="wheelchair-free-beside-free"),
    pytest.param(("|oXXv_|",), id="wheelchair-left-alone-counts"),
    # Rows and segments are judged on their own.
    pytest.param(("|XX..|", "|oXXo|"), id="second-row-refused-first-fine"),
    pytest.param(("|XX.|", "|....|"), id="judged-per-row-not-across-rows"),
    pytest.param(("|XX._....|",), id="judged-per-segment"),
    pytest.param(("|oXXo_XX..|",), id="two-segments-one-bad"),
]


@pytest.mark.parametrize("rows", ORPHAN_CASES)
def test_orphan_rule(rows: tuple[str, ...]) -> None:
    case = draw(*rows)
    verdict = check_selection(case.seat_map, chosen=case.chosen, taken=case.taken)
    assert [(p.seat_id, p.code) for p in verdict.problems] == [(s, "orphan") for s in case.stranded]
    assert verdict.ok == (not case.stranded)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param(
            "|..._oXX..|", "A4 座会被单独空出（左侧是过道），请换一个座位或连选", id="aisle"
        ),
        pytest.param(
            "|..XXo_...|", "A5 座会被单独空出（右侧是过道），请换一个座位或连选", id="aisle-r"
        ),
        pytest.param("|oXX...|", "A1 座会被单独空出（左侧是墙），请换一个座位或连选", id="wall"),
        pytest.param(
            "|...XXo|", "A6 座会被单独空出（右侧是墙），请换一个座位或连选", id="wall-right"
        ),
        pytest.param(
            "|ToXX..|", "A2 座会被单独空出（左侧是已售座位），请换一个座位或连选", id="taken"
        ),
        pytest.param(
            "|#oXX..|", "A2 座会被单独空出（左侧是不可售座位），请换一个座位或连选", id="blocked"
        ),
        pytest.param(
            "|XoX...|", "A2 座会被单独空出（两侧都是您选的座位），请换一个座位或连选", id="both"
        ),
    ],
)
def test_orphan_message_names_the_seat_and_the_other_side(row: str, message: str) -> None:
    case = draw(row)
    verdict = check_selection(case.seat_map, chosen=case.chosen, taken=case.taken)
    assert [p.message_zh for p in verdict.problems] == [message]


HALL = draw("|....#_()()|", "|........_.|")  # A1-A4, A5 blocked, A6+A7 and A8+A9 couples


def problems(chosen: Collection[str], taken: Collection[str] = (), **kw: int) -> list[Problem]:
    return list(check_selection(HALL.seat_map, chosen=chosen, taken=taken, **kw).problems)


@pytest.mark.parametrize(
    ("chosen", "taken", "expected"),
    [
        pytest.param([], [], [(None, "no_seats", "请至少选择一个座位")], id="nothing-chosen"),
        pytest.param(
            ["B1", "B2", "B3", "B4", "B5", "B6", "B7"],
            [],
            [(None, "too_many", "每单最多选 6 个座位，您选了 7 个")],
            id="seven-seats",
        ),
        pytest.param(
            ["A6", "A7", "A8", "A9", "A1", "A2", "A3"],
            [],
            [(None, "too_many", "每单最多选 6 个座位，您选了 7 个")],
            id="couple-seat-counts-two",
        ),
        pytest.param(["A1", "A1"], [], [("A1", "duplicate", "A1 座重复选择了")], id="duplicate"),
        pytest.param(["Z1"], [], [("Z1", "unknown_seat", "Z1 座不存在，请重新选择")], id="unknown"),
        pytest.param(
            ["A5"], [], [("A5", "not_sellable", "A5 座不可售，请换一个座位")], id="blocked"
        ),
        pytest.param(
            ["B1"], ["B1"], [("B1", "taken", "B1 座已售出或已被他人锁定，请换一个座位")], id="taken"
        ),
        pytest.param(
            ["A6"],
            [],
            [("A6", "couple_split", "A6 座是情侣座，须与 A7 座一起购买")],
            id="left-half",
        ),
        pytest.param(
            ["A9"],
            [],
            [("A9", "couple_split", "A9 座是情侣座，须与 A8 座一起购买")],
            id="right-half",
        ),
        pytest.param(
            ["A6", "A7"],
            ["A7"],
            [
                ("A6", "taken", "A6 座已售出或已被他人锁定，请换一个座位"),
                ("A7", "taken", "A7 座已售出或已被他人锁定，请换一个座位"),
            ],
            id="couple-with-one-half-taken-is-taken",
        ),
        pytest.param(
            ["B2", "Z9", "A5", "A8"],
            [],
            [
                ("Z9", "unknown_seat", "Z9 座不存在，请重新选择"),
                ("A5", "not_sellable", "A5 座不可售，请换一个座位"),
                ("A8", "couple_split", "A8 座是情侣座，须与 A9 座一起购买"),
            ],
            id="every-problem-unknown-first-then-hall-order-no-orphan-check",
        ),
    ],
)
def test_selection_problems(
    chosen: list[str], taken: list[str], expected: list[tuple[str | None, str, str]]
) -> None:
    assert [(p.seat_id, p.code, p.message_zh) for p in problems(chosen, taken)] == expected


def test_a_whole_couple_seat_is_fine() -> None:
    assert problems(["A8", "A9"]) == []


def test_max_seats_can_be_lowered() -> None:
    assert [p.code for p in problems(["B1", "B2", "B3"], max_seats=2)] == ["too_many"]
    assert problems(["B1", "B2"], max_seats=2) == []


def test_taken_ids_the_hall_does_not_have_are_ignored() -> None:
    assert problems(["B1", "B2"], ["Z1", "B9"]) == []


def test_a_bare_string_is_refused() -> None:
    with pytest.raises(TypeError, match="not one string"):
        check_selection(HALL.seat_map, chosen="B1", taken=())
    with pytest.raises(TypeError, match="not one string"):
        best_available(HALL.seat_map, count=1, taken="B1")


def test_verdict_is_consistent() -> None:
    assert check_selection(HALL.seat_map, chosen=["B1", "B2"], taken=()) == Verdict(True, ())
    with pytest.raises(ValueError, match="exactly when"):
        Verdict(ok=True, problems=(Problem(None, "no_seats", "请至少选择一个座位"),))


# --- best available --------------------------------------------------------------------------

# X marks the expected suggestion (free in the hall), T the taken seats; None: nothing to suggest.
BEST_CASES = [
    pytest.param(2, ("|..XX...|",), id="centre-tie-goes-left"),
    pytest.param(3, ("|..XXX..|",), id="centre-of-seven"),
    pytest.param(1, ("|...X...|",), id="single-seat-centre"),
    pytest.param(2, ("|...TXX..|",), id="beside-a-taken-centre-seat"),
    pytest.param(3, ("|.TXXX....|",), id="centre-block-would-strand"),
    pytest.param(2, ("|TXX.T|",), id="unavoidable-lone-seat"),
    pytest.param(
        2, ("|......|", "|......|", "|..XX..|", "|......|"), id="sweet-spot-two-thirds-back"
    ),
    pytest.param(
        2, ("|......|", "|......|", "|TTTTTT|", "|..XX..|"), id="sweet-row-full-back-wins-tie"
    ),
    pytest.param(
        2, ("|......|", "|......|", "|TTXX.T|", "|......|"), id="allowed-lone-seat-no-penalty"
    ),
    pytest.param(2, ("|..._XX.._...|",), id="across-no-aisle"),
    pytest.param(4, ("|XXXX_.|",), id="only-one-block-fits"),
    pytest.param(2, ("|ww..XX..ww|",), id="wheelchair-never-suggested"),
    pytest.param(2, ("|[]()|",), id="couple-seat-for-two"),
    pytest.param(4, ("|[][]()|",), id="two-couple-seats-for-four"),
    pytest.param(2, ("|()XX|",), id="standard-beats-couple-at-equal-place"),
    pytest.param(2, ("|.._[]_..|",), id="couple-seat-in-the-middle-wins"),
]


@pytest.mark.parametrize(("count", "rows"), BEST_CASES)
def test_best_available(count: int, rows: tuple[str, ...]) -> None:
    case = draw(*rows)
    expected = case.chosen or None
    assert best_available(case.seat_map, count=count, taken=case.taken) == expected


@pytest.mark.parametrize(
    ("count", "row"),
    [
        pytest.param(2, "|TTTT|", id="sold-out"),
        pytest.param(3, "|..()|", id="would-mix-couple-and-standard"),
        pytest.param(3, "|()()|", id="odd-count-splits-a-couple"),
        pytest.param(2, "|ww|", id="only-wheelchair-spaces"),
        pytest.param(2, "|.T.|", id="no-two-adjacent"),
        pytest.param(2, "|._.|", id="not-across-an-aisle"),
        pytest.param(7, "|..........|", id="more-than-max-seats"),
        pytest.param(2, "|.#.|", id="not-across-a-blocked-seat"),
    ],
)
def test_best_available_none(count: int, row: str) -> None:
    case = draw(row)
    assert best_available(case.seat_map, count=count, taken=case.taken) is None


def test_best_available_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        best_available(HALL.seat_map, count=0, taken=())


def test_best_available_passes_check_selection() -> None:
    case = draw("|.TTT......|", "|T..T..T.T.|", "|..T.......|")
    for count in range(1, 7):
        seats = best_available(case.seat_map, count=count, taken=case.taken)
        assert seats is not None
        assert check_selection(case.seat_map, chosen=seats, taken=case.taken).ok


@pytest.mark.parametrize(
    ("seats", "rank"),
    [
        # 7 rows: the sweet spot is row index 4 (E); 11 cells: the centre is column 5.
        pytest.param(["E6"], (0, 0, 0, -4, 5), id="dead-centre"),
        pytest.param(["E5", "E6", "E7"], (0, 0, 0, -4, 4), id="centred-block"),
        pytest.param(["E5", "E6"], (3, 0, 0, -4, 4), id="half-a-seat-off"),
        pytest.param(["E7"], (6, 0, 0, -4, 6), id="one-seat-off"),
        pytest.param(["F6"], (12, 0, 3, -5, 5), id="one-row-back"),
        pytest.param(["D6"], (12, 0, 3, -3, 5), id="one-row-forward"),
        pytest.param(["E8"], (12, 0, 0, -4, 7), id="two-seats-off-equals-one-row"),
        pytest.param(["A1"], (4 * 12 + 3 * 10, 0, 12, 0, 0), id="front-corner"),
    ],
)
def test_placement_rank(seats: list[str], rank: tuple[int, ...]) -> None:
    seat_map = parse_text_layout("\n".join(f"{label} | {'s' * 11} |" for label in "ABCDEFG"))
    assert placement_rank(seat_map, seats) == rank


def test_placement_rank_wants_one_row() -> None:
    seat_map = parse_text_layout("A | ss |\nB | ss |")
    with pytest.raises(ValueError, match="one row"):
        placement_rank(seat_map, ["A1", "B1"])
    with pytest.raises(ValueError, match="one row"):
        placement_rank(seat_map, [])


def big_hall() -> SeatMap:
    """300 seats: 15 rows of 4 + 12 + 4 seats with two aisles."""
    labels = [chr(ord("A") + i) for i in range(15)]
    return parse_text_layout("\n".join(f"{label} | ssss_ssssssssssss_ssss |" for label in labels))


@pytest.mark.parametrize("share_taken", [0.0, 0.5, 0.9])
def test_best_available_is_fast_on_a_300_seat_hall(share_taken: float) -> None:
    seat_map = big_hall()
    assert len(seat_map.seats) == 300
    rng = random.Random(9)
    taken = frozenset(s for s in seat_map.seats if rng.random() < share_taken)
    for count in range(1, 7):
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            best_available(seat_map, count=count, taken=taken)
            timings.append(time.perf_counter() - start)
        # Best of five, so a busy machine does not fail it; typical runs are a few times faster.
        assert min(timings) < 0.010, (count, min(timings))
