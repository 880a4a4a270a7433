"""A synthetic rush on one showtime: who tries to hold which seats, in what order. Pure.

Used by the race test and `bench/holds.py` (and fit for rehearsing a premiere against a staging
server). Every user tries several times; each try is a party's block of adjacent seats (one to
four standard seats, or one or two couple seats on the couple row), in a row drawn near the
sweet spot two thirds of the way back and placed near the middle of a block of seats, so many
tries want the same seats. A block never strands a seat in an empty segment, so on an empty
hall every try is allowed and the refusals under load come from the contention.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cinema.layout import Seat, SeatKind, SeatMap

# Party sizes and how often they come: pairs most of all.
PARTIES = ((1, 0.10), (2, 0.50), (3, 0.20), (4, 0.20))


@dataclass(frozen=True)
class Attempt:
    openid: str
    seat_ids: tuple[str, ...]


def rush(seat_map: SeatMap, *, attempts: int, users: int, rng: random.Random) -> list[Attempt]:
    """`attempts` tries by `users` users (openids `oRushUser00000`…), shuffled."""
    tries = [Attempt(f"oRushUser{n % users:05d}", _block(seat_map, rng)) for n in range(attempts)]
    rng.shuffle(tries)
    return tries


def _block(seat_map: SeatMap, rng: random.Random) -> tuple[str, ...]:
    rows = len(seat_map.rows)
    sweet = 2 * (rows - 1) / 3
    while True:
        row = round(rng.gauss(sweet, rows / 4))
        if not 0 <= row < rows:
            continue
        size = rng.choices([p for p, _ in PARTIES], weights=[w for _, w in PARTIES])[0]
        segment = _segment(seat_map, row, rng)
        if segment[0].is_couple:
            size = 2 if size <= 2 else 4  # one couple seat, or two side by side
        if size > len(segment) or len(segment) - size == 1:
            continue
        block = _place(segment, size, rng)
        if block is not None:
            return tuple(seat.id for seat in block)


def _segment(seat_map: SeatMap, row: int, rng: random.Random) -> tuple[Seat, ...]:
    segments = seat_map.segments(row)
    return rng.choices(segments, weights=[len(s) ** 2 for s in segments])[0]


def _place(segment: tuple[Seat, ...], size: int, rng: random.Random) -> tuple[Seat, ...] | None:
    # Starts that leave no single seat at either end, nearer the middle more often.
    starts = [
        start
        for start in range(len(segment) - size + 1)
        if start != 1
        and len(segment) - start - size != 1
        and segment[start].kind is not SeatKind.couple_right
    ]
    if not starts:
        return None
    middle = (len(segment) - size) / 2
    weights = [1 / (1 + abs(start - middle)) for start in starts]
    start = rng.choices(starts, weights=weights)[0]
    return segment[start : start + size]
