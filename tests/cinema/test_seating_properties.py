"""The orphan rule and best-available against brute force over small random halls.

The brute force shares nothing with cinema.seating but the layout: it enumerates every set of
free seats of a segment and judges each from scratch with the module docstring's definitions.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

from hypothesis import given
from hypothesis import strategies as st

from cinema.layout import Seat, SeatKind, SeatMap, parse_json_layout, parse_text_layout, to_json
from cinema.seating import best_available, check_selection, placement_rank

# A couple seat is one token of two cells; plain seats are the most common.
TOKENS = ["s", "s", "s", "s", "w", "x", "_", "( )"]
Unit = tuple[Seat, ...]  # one seat, or the two halves of a couple seat


@st.composite
def halls(draw: st.DrawFn) -> SeatMap:
    lines = []
    for index in range(draw(st.integers(min_value=1, max_value=3))):
        tokens = draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=8))
        if set(tokens) == {"_"}:
            tokens.append("s")
        lines.append(f"{chr(ord('A') + index)} | {' '.join(tokens)} |")
    return parse_text_layout("\n".join(lines))


def units(seats: Sequence[Seat]) -> list[Unit]:
    out: list[Unit] = []
    for seat in seats:
        if seat.kind is SeatKind.couple_right:
            out[-1] = (*out[-1], seat)
        else:
            out.append((seat,))
    return out


def ids(chosen_units: Collection[Unit]) -> set[str]:
    return {seat.id for unit in chosen_units for seat in unit}


def free_units(seat_map: SeatMap, taken: set[str]) -> list[Unit]:
    every = units(list(seat_map.seats.values()))
    return [u for u in every if all(s.sellable and s.id not in taken for s in u)]


def lone(free: Sequence[bool], i: int) -> bool:
    left = free[i - 1] if i > 0 else False
    right = free[i + 1] if i + 1 < len(free) else False
    return free[i] and not left and not right


def stranded(segment: Sequence[Seat], taken: set[str], chosen: set[str]) -> list[str]:
    before = [s.sellable and s.id not in taken for s in segment]
    after = [f and s.id not in chosen for f, s in zip(before, segment, strict=True)]
    return [s.id for i, s in enumerate(segment) if lone(after, i) and not lone(before, i)]


def shape(segment: Sequence[Seat], chosen: set[str]) -> tuple[int, int, int]:
    """(couple seats, other seats, groups of adjacent chosen seats) of a choice in a segment."""
    mine = [s.id in chosen for s in segment]
    couples = sum(m and s.kind is SeatKind.couple_left for m, s in zip(mine, segment, strict=True))
    others = sum(m and not s.is_couple for m, s in zip(mine, segment, strict=True))
    groups = sum(m and not (i > 0 and mine[i - 1]) for i, m in enumerate(mine))
    return couples, others, groups


def alternatives(segment: Sequence[Seat], taken: set[str], chosen: set[str]) -> list[set[str]]:
    """Every set of free seats of the segment of the choice's size and kind, no more split."""
    couples, others, groups = shape(segment, chosen)
    free = [u for u in units(segment) if all(s.sellable and s.id not in taken for s in u)]
    found = []
    for size in range(len(free) + 1):
        for combo in itertools.combinations(free, size):
            alt = ids(combo)
            c, o, g = shape(segment, alt)
            if (c, o) == (couples, others) and g <= groups:
                found.append(alt)
    return found


def expected_orphans(seat_map: SeatMap, taken: set[str], chosen: set[str]) -> list[str]:
    reported: list[str] = []
    segments = {seat_map.segment(seat_id)[0].id: seat_map.segment(seat_id) for seat_id in chosen}
    for segment in sorted(segments.values(), key=lambda seg: (seg[0].row_index, seg[0].column)):
        mine = stranded(segment, taken, chosen)
        fewest = min(len(stranded(segment, taken, a)) for a in alternatives(segment, taken, chosen))
        if len(mine) > fewest:
            reported += mine
    return reported


@st.composite
def situations(draw: st.DrawFn) -> tuple[SeatMap, set[str], set[str]]:
    """A hall, whole units taken, and a choice of at most six free seats in whole units."""
    seat_map = draw(halls())
    every = units(list(seat_map.seats.values()))
    taken = ids(draw(st.sets(st.sampled_from(every))))
    free = free_units(seat_map, taken)
    chosen: set[str] = set()
    if free:
        for unit in draw(st.lists(st.sampled_from(free), unique=True, min_size=1, max_size=6)):
            if len(chosen) + len(unit) <= 6:
                chosen |= ids([unit])
    return seat_map, taken, chosen


@given(situations())
def test_orphan_rule_matches_brute_force(case: tuple[SeatMap, set[str], set[str]]) -> None:
    seat_map, taken, chosen = case
    verdict = check_selection(seat_map, chosen=chosen, taken=taken)
    if not chosen:
        assert [p.code for p in verdict.problems] == ["no_seats"]
        return
    expected = expected_orphans(seat_map, taken, chosen)
    assert [(p.seat_id, p.code) for p in verdict.problems] == [(s, "orphan") for s in expected]
    assert verdict.ok == (not expected)


@given(situations())
def test_an_allowed_choice_strands_only_what_no_alternative_avoids(
    case: tuple[SeatMap, set[str], set[str]],
) -> None:
    seat_map, taken, chosen = case
    if not chosen or not check_selection(seat_map, chosen=chosen, taken=taken).ok:
        return
    for seat_id in chosen:
        segment = seat_map.segment(seat_id)
        if stranded(segment, taken, chosen):
            assert all(stranded(segment, taken, a) for a in alternatives(segment, taken, chosen))


@given(situations())
def test_the_rule_never_blocks_the_last_sale(case: tuple[SeatMap, set[str], set[str]]) -> None:
    # Whatever a refused party wanted in a segment, some choice of that size, kind and
    # togetherness there is allowed.
    seat_map, taken, chosen = case
    for seat_id in chosen:
        segment = seat_map.segment(seat_id)
        mine = chosen & {s.id for s in segment}
        assert any(
            check_selection(seat_map, chosen=alt, taken=taken).ok
            for alt in alternatives(segment, taken, mine)
        )


def suggestible(block: Sequence[Seat]) -> bool:
    """Standard seats only, or whole couple seats only."""
    kinds = {s.kind for s in block}
    if kinds <= {SeatKind.standard}:
        return True
    whole = block[0].kind is SeatKind.couple_left and block[-1].kind is SeatKind.couple_right
    return kinds <= {SeatKind.couple_left, SeatKind.couple_right} and whole


def blocks(seat_map: SeatMap, taken: set[str], count: int) -> list[tuple[str, ...]]:
    """Every block best_available may suggest, by its docstring, that check_selection allows."""
    found = []
    for row in seat_map.rows:
        for segment in seat_map.segments(row.index):
            for start in range(len(segment) - count + 1):
                block = segment[start : start + count]
                chosen = tuple(s.id for s in block)
                if suggestible(block) and check_selection(seat_map, chosen=chosen, taken=taken).ok:
                    found.append(chosen)
    return found


@given(halls(), st.data(), st.integers(min_value=1, max_value=6))
def test_best_available_is_the_best_allowed_block(
    seat_map: SeatMap, data: st.DataObject, count: int
) -> None:
    taken = ids(data.draw(st.sets(st.sampled_from(units(list(seat_map.seats.values()))))))
    found = best_available(seat_map, count=count, taken=taken)
    candidates = blocks(seat_map, taken, count)
    if found is None:
        assert candidates == []
        return
    assert check_selection(seat_map, chosen=found, taken=taken).ok
    assert found == min(candidates, key=lambda block: placement_rank(seat_map, block))


@given(halls())
def test_json_round_trip(seat_map: SeatMap) -> None:
    assert parse_json_layout(to_json(seat_map)) == seat_map
