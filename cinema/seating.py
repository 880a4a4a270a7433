"""Which seats one order may take, and the best-available suggestion: pure, no database.

:func:`check_selection` reports every problem, not just the first, seat problems in the hall's
seat order. ``taken`` is what is sold or held by others; a couple seat with either half taken is
taken as a whole (it is sold as a pair). Codes:

* ``no_seats`` nothing chosen; ``duplicate`` a seat chosen twice; ``too_many`` more than
  ``max_seats`` distinct seats (a couple seat is two);
* per seat, the first that applies: ``unknown_seat``, ``not_sellable`` (blocked), ``taken``,
  ``couple_split`` (one half of a couple seat without the other);
* ``orphan``, judged only when none of the above applies, as follows.

The orphan rule, per row segment (a run of adjacent seats between gaps and the row's ends;
different segments and different rows are judged separately):

* *free*: a sellable seat neither taken nor chosen. Anything else beside a seat (a taken or
  chosen seat, a blocked seat, a gap, the end of the row) is *unavailable*.
* *lone*: a free seat with both neighbours unavailable.
* The choice *strands* a seat that is lone once the chosen seats are taken but was not lone
  before. A seat already lone before (say between two sold seats) is not the buyer's doing and is
  never held against them; they may of course buy it.
* A choice that strands ``k > 0`` seats in a segment is refused if some *alternative* strands
  fewer. An alternative is any set of free seats in that segment with as many couple seats and as
  many other seats (standard or wheelchair) as the choice has there, in no more *groups* (runs of
  adjacent chosen seats) than the choice: a party is never told to split up further than it
  already has. So a choice is allowed when it strands nothing, or when nothing of its size, kind
  and togetherness avoids it (a party of two in ``T...T``, the only couple seat beside a single
  standard seat): the rule never blocks the last sale, as the alternative that strands fewest is
  itself always allowed.

Why "fewer" rather than "every alternative strands a seat": the latter would let a party of three
turn ``..T..T..`` into ``X.TX.TX.`` (three seats stranded) when ``XXTX.T..`` strands one. Why
"no more groups": two friends taking ``XX.T...`` would otherwise be refused because ``X..TX..``
strands nothing. Why "as many couple seats": a couple buying the pair in ``s()s`` is not refused
because two strangers could buy the two ends instead.

:func:`best_available` (what it may suggest, and the ranking) is described there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cinema.layout import Edge, Seat, SeatKind, SeatMap

__all__ = [
    "MAX_SEATS",
    "Problem",
    "ProblemCode",
    "Verdict",
    "best_available",
    "check_selection",
    "placement_rank",
]

MAX_SEATS = 6
_SIDE_ZH = {Edge.aisle: "过道", Edge.wall: "墙"}


ProblemCode = Literal[
    "no_seats",
    "duplicate",
    "too_many",
    "unknown_seat",
    "not_sellable",
    "taken",
    "couple_split",
    "orphan",
]


@dataclass(frozen=True)
class Problem:
    seat_id: str | None  # None for problems of the whole order (no_seats, too_many)
    code: ProblemCode
    message_zh: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problems: tuple[Problem, ...]

    def __post_init__(self) -> None:
        if self.ok == bool(self.problems):
            raise ValueError("a verdict is ok exactly when it has no problems")


def check_selection(
    seat_map: SeatMap,
    *,
    chosen: Collection[str],
    taken: Collection[str],
    max_seats: int = MAX_SEATS,
) -> Verdict:
    """Judge one order's seats against the hall and what others hold (see the module docstring)."""
    if isinstance(chosen, str) or isinstance(taken, str):
        # A bare "F7" is a collection of the seats "F" and "7".
        raise TypeError("chosen and taken are collections of seat ids, not one string")
    unavailable = _unavailable(seat_map, taken)
    problems = _order_problems(chosen, max_seats) + _seat_problems(seat_map, chosen, unavailable)
    if not problems:
        problems = _orphan_problems(seat_map, set(chosen), unavailable)
    return Verdict(ok=not problems, problems=tuple(problems))


def _unavailable(seat_map: SeatMap, taken: Iterable[str]) -> frozenset[str]:
    """Taken seat ids that exist, with the other half of each taken couple seat."""
    ids: set[str] = set()
    seats = seat_map.seats
    for seat_id in taken:
        if seat_id in seats:  # ids of seats this hall does not have are ignored
            partner = seat_map.partner(seat_id)
            ids.update([seat_id] if partner is None else [seat_id, partner.id])
    return frozenset(ids)


def _order_problems(chosen: Collection[str], max_seats: int) -> list[Problem]:
    if not chosen:
        return [Problem(None, "no_seats", "请至少选择一个座位")]
    counts = Counter(chosen)
    problems = [
        Problem(seat_id, "duplicate", f"{seat_id} 座重复选择了")
        for seat_id, count in counts.items()
        if count > 1
    ]
    if len(counts) > max_seats:
        message = f"每单最多选 {max_seats} 个座位，您选了 {len(counts)} 个"
        problems.append(Problem(None, "too_many", message))
    return problems


def _seat_problems(
    seat_map: SeatMap, chosen: Collection[str], unavailable: frozenset[str]
) -> list[Problem]:
    seats = seat_map.seats
    # Unknown ids first, in the order given; then the hall's order.
    distinct = sorted(
        dict.fromkeys(chosen),
        key=lambda seat_id: seat_map.position(seat_id) if seat_id in seats else -1,
    )
    problems: list[Problem] = []
    for seat_id in distinct:
        if seat_id not in seat_map.seats:
            problems.append(Problem(seat_id, "unknown_seat", f"{seat_id} 座不存在，请重新选择"))
            continue
        partner = seat_map.partner(seat_id)
        if not seat_map.seat(seat_id).sellable:
            problems.append(Problem(seat_id, "not_sellable", f"{seat_id} 座不可售，请换一个座位"))
        elif seat_id in unavailable:
            message = f"{seat_id} 座已售出或已被他人锁定，请换一个座位"
            problems.append(Problem(seat_id, "taken", message))
        elif partner is not None and partner.id not in chosen:
            message = f"{seat_id} 座是情侣座，须与 {partner.id} 座一起购买"
            problems.append(Problem(seat_id, "couple_split", message))
    return problems


def _orphan_problems(
    seat_map: SeatMap, chosen: set[str], unavailable: frozenset[str]
) -> list[Problem]:
    touched: dict[str, tuple[Seat, ...]] = {}  # keyed by the segment's first seat, in hall order
    for seat_id in sorted(
        chosen, key=lambda s: (seat_map.seat(s).row_index, seat_map.seat(s).column)
    ):
        segment = seat_map.segment(seat_id)
        touched.setdefault(segment[0].id, segment)
    problems: list[Problem] = []
    for segment in touched.values():
        before = _free(segment, unavailable)
        after = _free(segment, unavailable | chosen)
        stranded = _stranded(before, after)
        if not stranded:
            continue
        if len(stranded) > _fewest_stranded(segment, before, *_shape(segment, chosen)):
            problems.extend(_orphan(seat_map, segment, i, chosen) for i in stranded)
    return problems


def _shape(segment: Sequence[Seat], chosen: Collection[str]) -> tuple[int, int, int]:
    """(couple seats, other seats, groups of adjacent chosen seats) of a choice in a segment."""
    mine = [seat.id in chosen for seat in segment]
    couples = sum(m and s.kind is SeatKind.couple_left for m, s in zip(mine, segment, strict=True))
    others = sum(m and not s.is_couple for m, s in zip(mine, segment, strict=True))
    groups = sum(m and not (i and mine[i - 1]) for i, m in enumerate(mine))
    return couples, others, groups


def _free(segment: Sequence[Seat], unavailable: Collection[str]) -> tuple[bool, ...]:
    return tuple(seat.sellable and seat.id not in unavailable for seat in segment)


def _lone(free: Sequence[bool], i: int) -> bool:
    # Outside the segment is a gap or the end of the row: unavailable.
    left = i > 0 and free[i - 1]
    right = i + 1 < len(free) and free[i + 1]
    return free[i] and not left and not right


def _stranded(before: Sequence[bool], after: Sequence[bool]) -> list[int]:
    return [i for i in range(len(after)) if _lone(after, i) and not _lone(before, i)]


_State = tuple[int, int, int, bool, int]  # couples, others, groups, seat before chosen, run


def _fewest_stranded(
    segment: Sequence[Seat], free: Sequence[bool], couples: int, others: int, groups: int
) -> int:
    """The fewest seats stranded by any alternative (module docstring) to a choice of this shape.

    One pass over the seats, left to right, keeping the fewest stranded so far for each state
    (couples used, others used, groups used, whether the seat before was chosen, run). ``run``
    says what closing the current run of free seats would cost: 0 no run, 1 a run of one seat
    that was not lone before (closing it strands it), 2 nothing (a longer run, or a seat lone
    already). A couple seat is one step of two cells, chosen whole or not at all.
    """
    was_lone = [_lone(free, i) for i in range(len(free))]
    states: dict[_State, int] = {(0, 0, 0, False, 0): 0}
    i = 0
    while i < len(segment):
        cells = range(i, i + (2 if segment[i].kind is SeatKind.couple_left else 1))
        nxt: dict[_State, int] = {}
        for (c, o, g, joined, run), cost in states.items():
            run2, cost2 = _advance(free, was_lone, run, cost, cells, chosen=False)
            _keep(nxt, (c, o, g, False, run2), cost2)
            c2, o2 = (c + 1, o) if len(cells) == 2 else (c, o + 1)
            g2 = g if joined else g + 1
            if all(free[j] for j in cells) and c2 <= couples and o2 <= others and g2 <= groups:
                run2, cost2 = _advance(free, was_lone, run, cost, cells, chosen=True)
                _keep(nxt, (c2, o2, g2, True, run2), cost2)
        states = nxt
        i = cells.stop
    return min(
        cost + (run == 1)
        for (c, o, _, _, run), cost in states.items()
        if (c, o) == (couples, others)
    )


def _advance(
    free: Sequence[bool], was_lone: Sequence[bool], run: int, cost: int, cells: range, chosen: bool
) -> tuple[int, int]:
    for i in cells:
        if free[i] and not chosen:
            run = 2 if run or was_lone[i] else 1
        else:
            run, cost = 0, cost + (run == 1)
    return run, cost


def _keep(states: dict[_State, int], state: _State, cost: int) -> None:
    states[state] = min(cost, states.get(state, cost))


def _orphan(seat_map: SeatMap, segment: Sequence[Seat], i: int, chosen: set[str]) -> Problem:
    seat = segment[i]
    sides: list[str] = []
    for step, side_zh in ((-1, "左侧"), (1, "右侧")):
        if 0 <= i + step < len(segment):
            other = segment[i + step]
            if other.id in chosen:
                continue  # the buyer knows what they chose; say what lies on the other side
            what = "已售座位" if other.sellable else "不可售座位"
        else:
            edge = seat_map.neighbour(seat.id, step)
            assert isinstance(edge, Edge)  # the segment ends here
            what = _SIDE_ZH[edge]
        sides.append(f"{side_zh}是{what}")
    reason = "，".join(sides) or "两侧都是您选的座位"
    return Problem(seat.id, "orphan", f"{seat.id} 座会被单独空出（{reason}），请换一个座位或连选")


# --- best available --------------------------------------------------------------------------

Rank = tuple[int, int, int, int, int]


def best_available(
    seat_map: SeatMap, *, count: int, taken: Collection[str], max_seats: int = MAX_SEATS
) -> tuple[str, ...] | None:
    """``count`` adjacent seats to suggest, nearest the middle of the hall; None if there are none.

    A suggestion is a block of ``count`` adjacent free seats in one segment that
    :func:`check_selection` allows, made either of standard seats only or of whole couple seats
    only (so an even ``count``): couple seats are a product for couples, priced apart, and are
    not mixed into a party's block. Wheelchair spaces are never suggested; they are chosen on
    purpose. Among the blocks the smallest :func:`placement_rank` wins.
    """
    if isinstance(taken, str):
        raise TypeError("taken is a collection of seat ids, not one string")
    if count < 1:
        raise ValueError("count must be at least 1")
    if count > max_seats:
        return None
    unavailable = _unavailable(seat_map, taken)
    rows, width = len(seat_map.rows), seat_map.width
    best: tuple[Rank, Sequence[Seat]] | None = None
    for row in seat_map.rows:
        for segment in seat_map.segments(row.index):
            free = _free(segment, unavailable)
            fewest: dict[bool, int] = {}  # per segment: couple blocks, standard blocks
            for start in range(len(segment) - count + 1):
                block = segment[start : start + count]
                if not _suggestible(block, free[start : start + count]):
                    continue
                rank = _rank(block, rows, width)
                if best is not None and rank >= best[0]:
                    continue
                stranded = _block_stranded(free, start, count)
                couple = block[0].is_couple
                if stranded and couple not in fewest:
                    couples, others = (count // 2, 0) if couple else (0, count)
                    fewest[couple] = _fewest_stranded(segment, free, couples, others, 1)
                if stranded and stranded > fewest[couple]:
                    continue
                best = (rank, block)
    return None if best is None else tuple(seat.id for seat in best[1])


def _suggestible(block: Sequence[Seat], free: Sequence[bool]) -> bool:
    kinds = {seat.kind for seat in block}
    return (
        all(free)
        and SeatKind.wheelchair not in kinds
        and block[0].kind is not SeatKind.couple_right  # would split a couple seat
        and block[-1].kind is not SeatKind.couple_left
        and (kinds <= {SeatKind.standard} or SeatKind.standard not in kinds)
    )


def _block_stranded(free: Sequence[bool], start: int, count: int) -> int:
    # Only the seat just outside either end can become lone, and it was not lone before: the
    # block's seat beside it was free.
    end = start + count
    left = start >= 1 and free[start - 1] and not (start >= 2 and free[start - 2])
    right = end < len(free) and free[end] and not (end + 1 < len(free) and free[end + 1])
    return int(left) + int(right)


def placement_rank(seat_map: SeatMap, seat_ids: Sequence[str]) -> Rank:
    """How good a block of seats in one row is to suggest; smaller is better.

    First ``12 * (row offset + column offset / 2)`` in whole numbers: the row offset is the
    distance in rows from the sweet spot, two thirds of the way from the front row to the back
    one; the column offset is the distance in seats from the middle of the block to the middle
    of the hall's widest row. A row is about twice as deep as a seat is wide, so one row off is
    worth two seats off. Ties go to standard seats before couple seats, then to the smaller row
    offset, then to the row further back, then to the block further left.
    """
    seats = sorted((seat_map.seat(seat_id) for seat_id in seat_ids), key=lambda s: s.column)
    if not seats or len({seat.row_index for seat in seats}) != 1:
        raise ValueError("a placement is one or more seats in one row")
    return _rank(seats, len(seat_map.rows), seat_map.width)


def _rank(block: Sequence[Seat], rows: int, width: int) -> Rank:
    row = block[0].row_index
    row_thirds = abs(3 * row - 2 * (rows - 1))
    column_halves = abs(block[0].column + block[-1].column - (width - 1))
    score = 4 * row_thirds + 3 * column_halves  # 12 * (row_thirds / 3 + column_halves / 4)
    return (score, int(block[0].is_couple), row_thirds, -row, block[0].column)
