"""Seat holds on both databases: all or nothing, one live hold per user, expiry, the rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from cinema import errors, service
from cinema.models import Hold, HoldStatus, SeatHold, SeatHoldStatus, Showtime, ShowtimeStatus
from cinema.seating import Verdict
from tests.cinema.builders import NOW, make_showtime

ALICE = "oAlice00000000000000000000001"
BOB = "oBob0000000000000000000000001"


def _hold(session: Session, showtime: Showtime, openid: str, *seats: str, at: int = 0) -> Hold:
    return service.hold_seats(
        session,
        showtime_id=showtime.id,
        openid=openid,
        seat_ids=list(seats),
        now=NOW + timedelta(seconds=at),
        ttl_s=900,
    )


def _holds_of(session: Session, openid: str) -> list[Hold]:
    return list(
        session.scalars(
            select(Hold)
            .where(Hold.openid == openid)
            .order_by(Hold.id)
            .execution_options(populate_existing=True)
        )
    )


def test_a_hold_takes_its_seats_until_it_expires(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    hold = _hold(db_session, showtime, ALICE, "A2", "A1", "B1")
    assert hold.status is HoldStatus.held
    assert hold.seat_ids == ["A1", "A2", "B1"]  # in the hall's order
    assert hold.amount_fen == 3900 + 3900 + 5900
    assert hold.expires_at == NOW + timedelta(seconds=900)
    states = service.seat_states(db_session, showtime.id, NOW)
    assert states.taken == {"A1", "A2", "B1"}
    assert set(states.held_by.values()) == {ALICE}
    assert not states.sold


def test_a_hold_on_a_taken_seat_is_refused_whole(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    _hold(db_session, showtime, ALICE, "A1", "A2")
    with pytest.raises(errors.SeatsTakenError, match="A2 座已售出或已被他人锁定") as refused:
        _hold(db_session, showtime, BOB, "A2", "A3")
    assert refused.value.seat_ids == ("A2",)
    assert refused.value.status_code == 409
    assert _holds_of(db_session, BOB) == []
    assert service.seat_states(db_session, showtime.id, NOW).held_by == {"A1": ALICE, "A2": ALICE}


def test_the_unique_constraint_decides_when_the_check_saw_nothing(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two holders racing both pass the check; the INSERT of the second meets the first's row
    and the whole hold goes: no row for the free seat, no hold."""
    showtime = make_showtime(db_session)
    _hold(db_session, showtime, ALICE, "B3", "B4")
    monkeypatch.setattr(service, "check_selection", lambda *a, **k: Verdict(True, ()))
    with pytest.raises(errors.SeatsTakenError) as refused:
        _hold(db_session, showtime, BOB, "B1", "B2", "B3")
    assert refused.value.seat_ids == ("B3",)
    assert _holds_of(db_session, BOB) == []
    seats = db_session.scalars(select(SeatHold.seat_id).where(SeatHold.openid == BOB)).all()
    assert seats == []


def test_the_database_refuses_a_second_row_for_a_seat(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    hold = _hold(db_session, showtime, ALICE, "A1", "A2")
    duplicate = {
        "showtime_id": showtime.id,
        "seat_id": "A1",
        "hold_id": hold.id,
        "openid": BOB,
        "status": SeatHoldStatus.sold,
        "expires_at": None,
    }
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.execute(insert(SeatHold), [duplicate])


def test_holding_again_replaces_the_users_own_hold(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    first = _hold(db_session, showtime, ALICE, "A1", "A2")
    second = _hold(db_session, showtime, ALICE, "A2", "A3", "A4", at=60)
    assert [h.status for h in _holds_of(db_session, ALICE)] == [
        HoldStatus.released,
        HoldStatus.held,
    ]
    assert {h.id for h in _holds_of(db_session, ALICE)} == {first.id, second.id}
    rows = db_session.execute(
        select(SeatHold.seat_id, SeatHold.hold_id, SeatHold.expires_at).where(
            SeatHold.showtime_id == showtime.id
        )
    ).all()
    expires = NOW + timedelta(seconds=960)
    assert sorted(rows) == [(seat, second.id, expires) for seat in ("A2", "A3", "A4")]


def test_a_refused_new_hold_keeps_the_previous_one(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    mine = _hold(db_session, showtime, ALICE, "A1", "A2")
    _hold(db_session, showtime, BOB, "B1", "B2")
    with pytest.raises(errors.SeatsTakenError):
        _hold(db_session, showtime, ALICE, "B2", "B3")
    assert [h.id for h in _holds_of(db_session, ALICE)] == [mine.id]
    assert _holds_of(db_session, ALICE)[0].status is HoldStatus.held
    assert service.seat_states(db_session, showtime.id, NOW).held_by["A1"] == ALICE


def test_expired_holds_give_their_seats_back(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    _hold(db_session, showtime, ALICE, "A1", "A2")
    assert service.seat_states(db_session, showtime.id, NOW + timedelta(seconds=899)).taken
    later = NOW + timedelta(seconds=900)
    assert not service.seat_states(db_session, showtime.id, later).taken
    taken_over = _hold(db_session, showtime, BOB, "A1", "A2", at=900)
    assert taken_over.status is HoldStatus.held
    assert service.expire_holds(db_session, later) == 1
    assert [h.status for h in _holds_of(db_session, ALICE)] == [HoldStatus.expired]
    assert service.seat_states(db_session, showtime.id, later).held_by == {"A1": BOB, "A2": BOB}


def test_expire_holds_deletes_the_rows_of_expired_holds(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    _hold(db_session, showtime, ALICE, "A1", "A2")
    assert service.expire_holds(db_session, NOW + timedelta(seconds=899)) == 0
    assert service.expire_holds(db_session, NOW + timedelta(seconds=900)) == 1
    assert (
        db_session.scalars(select(SeatHold).where(SeatHold.showtime_id == showtime.id)).all() == []
    )


def test_releasing_a_hold_frees_its_seats(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    hold = _hold(db_session, showtime, ALICE, "D1", "D2")
    released = service.release_hold(db_session, hold_id=hold.id, openid=ALICE, now=NOW)
    assert released.status is HoldStatus.released
    assert not service.seat_states(db_session, showtime.id, NOW).taken
    with pytest.raises(errors.HoldNotFoundError):
        service.release_hold(db_session, hold_id=hold.id, openid=BOB, now=NOW)


def test_holds_stop_when_sales_close(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    closing_s = int((showtime.sales_close_at - NOW).total_seconds())
    assert closing_s == 3 * 3600 - 600  # ten minutes before the start
    _hold(db_session, showtime, ALICE, "A1", "A2", at=closing_s - 1)
    with pytest.raises(errors.SalesClosedError, match="停止售票"):
        _hold(db_session, showtime, BOB, "B1", "B2", at=closing_s)
    showtime.status = ShowtimeStatus.cancelled
    db_session.flush()
    with pytest.raises(errors.SalesClosedError):
        _hold(db_session, showtime, BOB, "B1", "B2")


def test_a_choice_that_strands_a_seat_is_refused_with_the_reason(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    with pytest.raises(errors.SeatSelectionInvalidError, match="A1 座会被单独空出") as refused:
        _hold(db_session, showtime, ALICE, "A2", "A3")
    assert refused.value.status_code == 422
    assert ("A1", "orphan") in refused.value.problems
    assert ("A4", "orphan") in refused.value.problems
    assert _holds_of(db_session, ALICE) == []


@pytest.mark.parametrize(
    ("seats", "code"),
    [
        (["D1"], "couple_split"),
        (["C2"], "not_sellable"),
        (["Z9"], "unknown_seat"),
        (["A1", "A2", "A3", "A4", "B1", "B2", "B3"], "too_many"),
    ],
)
def test_the_seating_rules_are_surfaced(db_session: Session, seats: list[str], code: str) -> None:
    showtime = make_showtime(db_session)
    with pytest.raises(errors.SeatSelectionInvalidError) as refused:
        _hold(db_session, showtime, ALICE, *seats)
    assert code in {problem_code for _, problem_code in refused.value.problems}


def test_a_couple_seat_and_wheelchair_spaces_are_held_like_any_seat(db_session: Session) -> None:
    showtime = make_showtime(db_session)
    couple = _hold(db_session, showtime, ALICE, "D1", "D2")
    assert couple.amount_fen == 2 * 6900
    wheelchair = _hold(db_session, showtime, BOB, "C5", "C6")
    assert wheelchair.amount_fen == 2 * 4500


def test_an_unknown_showtime_is_not_found(db_session: Session) -> None:
    with pytest.raises(errors.ShowtimeNotFoundError):
        service.hold_seats(db_session, showtime_id=999_999, openid=ALICE, seat_ids=["A1"], now=NOW)


def test_a_second_live_hold_of_the_same_user_is_refused_by_the_index(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two taps of one user racing: the second does not see the first's hold to release it,
    and the partial unique index refuses it a second live hold."""
    showtime = make_showtime(db_session)
    first = _hold(db_session, showtime, ALICE, "A1", "A2")
    monkeypatch.setattr(service, "_end_live_holds", lambda *a, **k: [])
    with pytest.raises(errors.HoldInProgressError):
        _hold(db_session, showtime, ALICE, "B1", "B2")
    assert [h.id for h in _holds_of(db_session, ALICE)] == [first.id]
    assert service.seat_states(db_session, showtime.id, NOW).held_by == {"A1": ALICE, "A2": ALICE}


class _DeadlockError(Exception):
    sqlstate = "40P01"  # what psycopg's DeadlockDetected carries


def test_a_deadlock_is_retried_once_then_refused(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    showtime = make_showtime(db_session)
    write = service._write
    calls: list[int] = []

    def deadlocking(times: int) -> Callable[..., None]:
        def _write(*args: Any) -> None:
            calls.append(1)
            if len(calls) <= times:
                raise OperationalError("INSERT INTO seat_holds …", {}, _DeadlockError())
            write(*args)

        return _write

    monkeypatch.setattr(service, "_write", deadlocking(1))
    assert _hold(db_session, showtime, ALICE, "A1", "A2").status is HoldStatus.held
    calls.clear()
    monkeypatch.setattr(service, "_write", deadlocking(2))
    with pytest.raises(errors.HoldInProgressError, match="请稍后重试"):
        _hold(db_session, showtime, BOB, "B1", "B2")
    assert _holds_of(db_session, BOB) == []
