from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coupons import points
from coupons.errors import (
    InvalidPointsError,
    PointsEntryNotFoundError,
    PointsInsufficientError,
    PointsSourceConflictError,
)
from coupons.models import PointsEntry, PointsKind
from tianfu import migrate
from tianfu.db import create_db_engine

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
USER = "oPoints"


def _earn(session: Session, amount: int, source_key: str, openid: str = USER) -> PointsEntry:
    return points.earn(session, openid=openid, points=amount, source_key=source_key, now=NOW)


def _spend(session: Session, amount: int, source_key: str, openid: str = USER) -> PointsEntry:
    return points.spend(session, openid=openid, points=amount, source_key=source_key, now=NOW)


def test_earning_and_spending_move_the_balance_and_the_ledger(db_session: Session) -> None:
    assert points.balance(db_session, USER) == 0
    _earn(db_session, 500, "order:1:earn")
    spent = _spend(db_session, 120, "checkout:7")
    assert (spent.delta, spent.balance_after, spent.kind) == (-120, 380, PointsKind.spend)
    assert points.balance(db_session, USER) == 380
    assert [e.source_key for e in points.history(db_session, USER)] == [
        "checkout:7",
        "order:1:earn",
    ]
    assert len(points.history(db_session, USER, limit=1)) == 1


def test_a_source_event_is_applied_once(db_session: Session) -> None:
    first = _earn(db_session, 500, "order:1:earn")
    again = _earn(db_session, 500, "order:1:earn")
    assert again.id == first.id
    assert points.balance(db_session, USER) == 500


def test_a_source_key_reused_for_another_change_is_refused(db_session: Session) -> None:
    _earn(db_session, 500, "order:1:earn")
    with pytest.raises(PointsSourceConflictError):
        _earn(db_session, 600, "order:1:earn")
    with pytest.raises(PointsSourceConflictError):
        _earn(db_session, 500, "order:1:earn", openid="oSomeoneElse")


def test_spending_more_than_the_balance_is_refused(db_session: Session) -> None:
    _earn(db_session, 100, "order:1:earn")
    with pytest.raises(PointsInsufficientError, match="还差1积分"):
        _spend(db_session, 101, "checkout:1")
    assert points.balance(db_session, USER) == 100
    assert len(points.history(db_session, USER)) == 1


def test_a_reversal_applies_once(db_session: Session) -> None:
    _earn(db_session, 300, "order:1:earn")
    reversal = points.reverse(db_session, source_key_of_original="order:1:earn", now=NOW)
    assert (reversal.delta, reversal.kind) == (-300, PointsKind.reverse)
    again = points.reverse(db_session, source_key_of_original="order:1:earn", now=NOW)
    assert again.id == reversal.id
    assert points.balance(db_session, USER) == 0
    with pytest.raises(InvalidPointsError):
        points.reverse(db_session, source_key_of_original=reversal.source_key, now=NOW)


def test_reversing_a_spend_gives_the_points_back(db_session: Session) -> None:
    _earn(db_session, 300, "order:1:earn")
    _spend(db_session, 200, "checkout:1")
    points.reverse(db_session, source_key_of_original="checkout:1", now=NOW)
    assert points.balance(db_session, USER) == 300


def test_reversing_points_already_spent_is_refused_not_made_negative(db_session: Session) -> None:
    _earn(db_session, 300, "order:1:earn")
    _spend(db_session, 200, "checkout:1")
    with pytest.raises(PointsInsufficientError):
        points.reverse(db_session, source_key_of_original="order:1:earn", now=NOW)
    assert points.balance(db_session, USER) == 100


def test_reversing_an_unknown_entry_is_refused(db_session: Session) -> None:
    with pytest.raises(PointsEntryNotFoundError):
        points.reverse(db_session, source_key_of_original="order:404:earn", now=NOW)


@pytest.mark.parametrize(("amount", "key"), [(0, "k"), (-5, "k"), (5, ""), (5, "k" * 121)])
def test_malformed_requests_are_refused(db_session: Session, amount: int, key: str) -> None:
    with pytest.raises(InvalidPointsError):
        _earn(db_session, amount, key)


def test_points_are_earned_on_whole_yuan_rounded_down() -> None:
    assert points.points_for_payment(9999, 2) == 198
    assert points.points_for_payment(99, 5) == 0
    assert points.points_for_payment(-100, 5) == 0


def test_the_database_refuses_a_negative_balance(db_session: Session) -> None:
    _earn(db_session, 10, "order:1:earn")
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.execute(
            text("UPDATE points_accounts SET balance = -1 WHERE openid = :u"), {"u": USER}
        )


# -- concurrency, on a database of the test's own -----------------------------------------------


@pytest.fixture
def committed_engine(empty_database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(empty_database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _in_threads(engine: Engine, jobs: list[Callable[[Session], object]]) -> list[str]:
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[Session], object]) -> str:
        barrier.wait()
        try:
            with Session(engine) as session, session.begin():
                job(session)
        except PointsInsufficientError:
            return "refused"
        return "ok"

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def test_concurrent_repeats_of_one_source_apply_once(committed_engine: Engine) -> None:
    outcomes = _in_threads(
        committed_engine, [lambda s: _earn(s, 100, "order:1:earn") for _ in range(12)]
    )
    assert outcomes == ["ok"] * 12
    with Session(committed_engine) as session:
        assert points.balance(session, USER) == 100
        assert session.scalar(select(func.count()).select_from(PointsEntry)) == 1


def _spender(source_key: str) -> Callable[[Session], object]:
    return lambda session: _spend(session, 30, source_key)


def test_concurrent_spends_never_overdraw(committed_engine: Engine) -> None:
    with Session(committed_engine) as session, session.begin():
        _earn(session, 100, "order:1:earn")
    outcomes = _in_threads(committed_engine, [_spender(f"checkout:{n}") for n in range(12)])
    assert outcomes.count("ok") == 3
    with Session(committed_engine) as session:
        assert points.balance(session, USER) == 10
        balances = session.scalars(select(PointsEntry.balance_after).order_by(PointsEntry.id))
        assert list(balances) == [100, 70, 40, 10]
