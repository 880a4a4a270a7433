"""Seat holds: who may take which seats of a showtime, decided by the database.

A hold first reads what is taken (sold seats and live holds; an expired hold is free) and judges
the choice by :func:`cinema.seating.check_selection`: most refusals in a rush end there, after
one read and no write. A choice that passes is written in one savepoint, in this order:

1. the expired held rows of the chosen seats are deleted (``… WHERE expires_at <= now``: a row
   that is still live, or already gone, is left alone);
2. the user's previous live hold on this showtime, if any, is marked released (it is replaced);
3. the hold's row is inserted; a partial unique index allows one live hold per user, so two
   taps racing cannot both leave one;
4. every chosen seat not already the user's is inserted into ``seat_holds`` in one INSERT. The
   unique (showtime_id, seat_id) constraint is what really decides: if another transaction took
   any of the seats since the read, in this worker or another, the INSERT fails, the savepoint
   rolls back steps 1-4 and nothing is held (``SeatsTakenError`` names the seats);
5. the user's previous seat rows are moved to the new hold where chosen again, deleted otherwise.

Rows are locked in a fixed order to keep PostgreSQL deadlocks rare: others' expired rows first,
then inserts in the hall's seat order, then only the user's own rows. The rare deadlock that is
left (a row expiring between two transactions' clocks) is retried once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, delete, insert, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from cinema import errors
from cinema.catalog import seat_map_of
from cinema.layout import SeatMap
from cinema.models import (
    Hall,
    Hold,
    HoldStatus,
    SeatHold,
    SeatHoldStatus,
    Showtime,
    ShowtimeStatus,
)
from cinema.seating import check_selection
from payments.service import lock_for_write

# PaymentSettings.order_ttl_s's default: a hold lasts as long as an unpaid order. Callers pass
# the configured figure (the API does).
DEFAULT_HOLD_TTL_S = 900
_SEATS = cast(Table, SeatHold.__table__)
_HOLDS = cast(Table, Hold.__table__)
_DEADLOCK = "40P01"  # PostgreSQL's deadlock_detected
# How each backend names the one-live-hold-per-user index in its error (SQLite by its columns).
_LIVE_HOLD_INDEX = ("uq_holds_live_showtime_id_openid", "holds.openid")


@dataclass(frozen=True)
class SeatStates:
    sold: frozenset[str]
    held_by: Mapping[str, str]  # seat id -> openid, live holds only

    @property
    def taken(self) -> frozenset[str]:
        return self.sold | frozenset(self.held_by)


def seat_states(session: Session, showtime_id: int, now: datetime) -> SeatStates:
    """What is taken now: sold seats and live holds (expired rows count as free)."""
    rows = session.execute(
        select(SeatHold.seat_id, SeatHold.status, SeatHold.openid).where(
            SeatHold.showtime_id == showtime_id, _live(now)
        )
    ).all()
    sold = frozenset(seat for seat, status, _ in rows if status is SeatHoldStatus.sold)
    held = {seat: openid for seat, status, openid in rows if status is SeatHoldStatus.held}
    return SeatStates(sold=sold, held_by=held)


def _live(now: datetime) -> Any:
    return or_(SeatHold.status == SeatHoldStatus.sold, SeatHold.expires_at > now)


def hold_seats(
    session: Session,
    *,
    showtime_id: int,
    openid: str,
    seat_ids: Sequence[str],
    now: datetime,
    ttl_s: int = DEFAULT_HOLD_TTL_S,
    on_replaced_order: Callable[[Session, str, datetime], object] | None = None,
) -> Hold:
    """Hold these seats for ``ttl_s`` seconds, all of them or none (see the module docstring).
    ``on_replaced_order`` is called with the order number of a hold this one replaces, if that
    hold had an order (cinema.booking closes it when nobody tried to pay it)."""
    if isinstance(seat_ids, str):
        raise TypeError("seat_ids is a sequence of seat ids, not one string")
    if ttl_s < 1:
        raise ValueError("ttl_s must be at least 1")
    lock_for_write(session)  # SQLite: one writer from the first read on
    row = session.execute(
        select(Showtime, Hall.updated_at)
        .join(Hall, Hall.id == Showtime.hall_id)
        .where(Showtime.id == showtime_id)
    ).one_or_none()
    if row is None:
        raise errors.ShowtimeNotFoundError(f"场次 {showtime_id} 不存在")
    showtime, version = row
    if showtime.status is not ShowtimeStatus.scheduled or now >= showtime.sales_close_at:
        raise errors.SalesClosedError("本场次已停止售票")
    seat_map = seat_map_of(session, showtime.hall_id, version=version)
    mine = _judge(session, showtime, seat_map, openid, seat_ids, now)
    seats = _priced(showtime, seat_map, seat_ids)
    for retry in (True, False):
        hold = Hold(
            showtime_id=showtime.id,
            openid=openid,
            seats=seats,
            amount_fen=sum(seat["price_fen"] for seat in seats),
            status=HoldStatus.held,
            expires_at=now + timedelta(seconds=ttl_s),
            created_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():
                replaced_orders = _write(session, hold, mine, now)
            if on_replaced_order is not None:
                for order_no in replaced_orders:
                    on_replaced_order(session, order_no, now)
            return hold
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != _DEADLOCK:
                raise
            if not retry:
                raise errors.HoldInProgressError("选座的人太多了，请稍后重试") from exc
        except IntegrityError as exc:
            if any(name in str(exc.orig) for name in _LIVE_HOLD_INDEX):
                raise errors.HoldInProgressError(
                    "您在本场次的另一次选座正在进行，请稍后重试"
                ) from exc
            # The savepoint is gone: this reads what the winners committed.
            states = seat_states(session, showtime.id, now)
            taken = [
                seat_id
                for seat_id in seat_ids
                if seat_id in states.sold or states.held_by.get(seat_id, openid) != openid
            ]
            raise errors.SeatsTakenError(_in_hall_order(seat_map, taken)) from exc
    raise AssertionError("unreachable")


def _judge(
    session: Session,
    showtime: Showtime,
    seat_map: SeatMap,
    openid: str,
    seat_ids: Sequence[str],
    now: datetime,
) -> dict[str, int]:
    """Refuse a choice the rules refuse against what others hold now; else the seats the user
    holds already (seat id -> hold id), which a new hold may take over."""
    rows = session.execute(
        select(SeatHold.seat_id, SeatHold.hold_id, SeatHold.openid, SeatHold.status).where(
            SeatHold.showtime_id == showtime.id, _live(now)
        )
    ).all()
    mine = {
        seat: hold_id
        for seat, hold_id, holder, status in rows
        if holder == openid and status is SeatHoldStatus.held
    }
    taken = {seat for seat, _, _, _ in rows if seat not in mine}
    verdict = check_selection(seat_map, chosen=seat_ids, taken=taken)
    if verdict.ok:
        return mine
    blocked = [p.seat_id for p in verdict.problems if p.code == "taken" and p.seat_id]
    if blocked:
        raise errors.SeatsTakenError(blocked)
    raise errors.SeatSelectionInvalidError(
        "；".join(p.message_zh for p in verdict.problems),
        problems=[(p.seat_id, p.code) for p in verdict.problems],
    )


def _priced(showtime: Showtime, seat_map: SeatMap, seat_ids: Sequence[str]) -> list[dict[str, Any]]:
    seats = []
    for seat_id in _in_hall_order(seat_map, seat_ids):
        zone = seat_map.seat(seat_id).zone
        price = showtime.prices_fen.get(zone)
        if price is None:
            raise errors.SeatSelectionInvalidError(f"{seat_id} 座本场不售")
        seats.append({"seat_id": seat_id, "zone": zone, "price_fen": int(price)})
    return seats


def _write(session: Session, hold: Hold, mine: Mapping[str, int], now: datetime) -> list[str]:
    """Steps 1-5 of the module docstring; the order numbers of the holds replaced."""
    chosen = hold.seat_ids
    session.execute(
        delete(_SEATS).where(
            _SEATS.c.showtime_id == hold.showtime_id,
            _SEATS.c.seat_id.in_(chosen),
            _SEATS.c.status == SeatHoldStatus.held,
            _SEATS.c.expires_at <= now,
        )
    )
    ended = _end_live_holds(session, hold.showtime_id, hold.openid, now)
    previous = [hold_id for hold_id, _ in ended]
    session.add(hold)
    session.flush()
    again = [seat_id for seat_id in chosen if mine.get(seat_id) in previous]
    new = [seat_id for seat_id in chosen if seat_id not in again]
    if new:
        # One statement for every seat: it inserts them all or fails as a whole.
        session.execute(insert(_SEATS).values([_seat_row(hold, seat_id) for seat_id in new]))
    if previous:
        _move_own_rows(session, previous, hold, again)
    return [order_no for _, order_no in ended if order_no is not None]


def _seat_row(hold: Hold, seat_id: str) -> dict[str, Any]:
    return {
        "showtime_id": hold.showtime_id,
        "seat_id": seat_id,
        "hold_id": hold.id,
        "openid": hold.openid,
        "status": SeatHoldStatus.held,
        "expires_at": hold.expires_at,
    }


def _end_live_holds(
    session: Session, showtime_id: int, openid: str, now: datetime
) -> list[tuple[int, str | None]]:
    """The user's holds still marked held on this showtime, now released (or expired): their
    ids and order numbers."""
    result = session.execute(
        update(_HOLDS)
        .where(
            _HOLDS.c.showtime_id == showtime_id,
            _HOLDS.c.openid == openid,
            _HOLDS.c.status == HoldStatus.held,
        )
        .values(
            status=case(
                (_HOLDS.c.expires_at <= now, HoldStatus.expired.value),
                else_=HoldStatus.released.value,
            ),
            updated_at=now,
        )
        .returning(_HOLDS.c.id, _HOLDS.c.order_no)
    )
    return [(hold_id, order_no) for hold_id, order_no in result]


def _move_own_rows(session: Session, previous: list[int], hold: Hold, again: list[str]) -> None:
    if again:
        moved = session.execute(
            update(_SEATS)
            .where(
                _SEATS.c.hold_id.in_(previous),
                _SEATS.c.seat_id.in_(again),
                _SEATS.c.status == SeatHoldStatus.held,
            )
            .values(hold_id=hold.id, expires_at=hold.expires_at)
        )
        if _rowcount(moved) != len(again):  # one ran out since the read: start again
            raise errors.HoldInProgressError("座位状态刚刚变化，请重试")
    session.execute(
        delete(_SEATS).where(_SEATS.c.hold_id.in_(previous), _SEATS.c.status == SeatHoldStatus.held)
    )


def _in_hall_order(seat_map: SeatMap, seat_ids: Iterable[str]) -> list[str]:
    seats = seat_map.seats
    return sorted(
        set(seat_ids),
        key=lambda seat_id: seat_map.position(seat_id) if seat_id in seats else len(seats),
    )


# -- ending holds -----------------------------------------------------------------------------


def get_hold(session: Session, hold_id: int, *, openid: str | None = None) -> Hold:
    statement = select(Hold).where(Hold.id == hold_id)
    if openid is not None:
        statement = statement.where(Hold.openid == openid)
    hold = session.scalars(statement.execution_options(populate_existing=True)).one_or_none()
    if hold is None:
        raise errors.HoldNotFoundError(f"锁座 {hold_id} 不存在")
    return hold


def end_hold(session: Session, *, hold: Hold, status: HoldStatus, now: datetime) -> bool:
    """Move a live hold to released or expired and give its seats back; False if it was not
    held any more (converted, or ended already)."""
    moved = session.execute(
        update(_HOLDS)
        .where(_HOLDS.c.id == hold.id, _HOLDS.c.status == HoldStatus.held)
        .values(status=status, updated_at=now)
    )
    if _rowcount(moved) != 1:
        return False
    session.execute(
        delete(_SEATS).where(_SEATS.c.hold_id == hold.id, _SEATS.c.status == SeatHoldStatus.held)
    )
    return True


def release_hold(session: Session, *, hold_id: int, openid: str, now: datetime) -> Hold:
    """The user gives the seats back before paying (an order made for them closes by itself)."""
    lock_for_write(session)
    hold = get_hold(session, hold_id, openid=openid)
    end_hold(session, hold=hold, status=HoldStatus.released, now=now)
    return get_hold(session, hold_id)


def expire_holds(session: Session, now: datetime) -> int:
    """Mark holds past their time expired and delete their seat rows (housekeeping only: an
    expired row already counts as free, and the next holder of its seat deletes it)."""
    lock_for_write(session)
    result = session.execute(
        update(_HOLDS)
        .where(_HOLDS.c.status == HoldStatus.held, _HOLDS.c.expires_at <= now)
        .values(status=HoldStatus.expired, updated_at=now)
    )
    session.execute(
        delete(_SEATS).where(_SEATS.c.status == SeatHoldStatus.held, _SEATS.c.expires_at <= now)
    )
    return _rowcount(result)


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
