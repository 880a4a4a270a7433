"""The per-worker caches behind a location reply: opening verdicts judged once a minute per
schedule, and store cards read for the whole neighbourhood at once; neither may answer
differently from reading afresh."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from lbs.nearby import OpenVerdicts, StoreCards
from merchants.opening_hours import OpeningHours
from merchants.service import set_opening_hours
from merchants.store_index import LiveStoreIndex
from tests.builders import make_store

CHUNXI_ROAD = (30.6577, 104.0807)
# 22:00 in Shanghai (UTC+8) is 14:00 UTC.
TEN_PM_SHANGHAI = datetime(2026, 3, 4, 14, 0, tzinfo=UTC)


@pytest.fixture
def live_index(db_session: Session) -> LiveStoreIndex:
    # Bound to the test's connection: the index sees the test's rows and is rolled back with it.
    factory = sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    return LiveStoreIndex(factory)


@pytest.fixture
def statements(db_session: Session) -> Iterator[list[str]]:
    seen: list[str] = []
    connection = db_session.connection()

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(connection, "before_cursor_execute", record)
    yield seen
    event.remove(connection, "before_cursor_execute", record)


def _stores(db_session: Session, count: int) -> list[int]:
    lat, lng = CHUNXI_ROAD
    return [
        make_store(db_session, lat=lat + n * 0.0001, lng=lng, name=f"店{n}").id
        for n in range(count)
    ]


def test_open_verdicts_agree_with_the_index_either_side_of_a_closing_minute(
    db_session: Session, live_index: LiveStoreIndex
) -> None:
    late, early, closed_wednesdays = _stores(db_session, 3)
    set_opening_hours(db_session, late, opening_hours=OpeningHours.daily(("10:00", "22:00")))
    set_opening_hours(db_session, early, opening_hours=OpeningHours.daily(("08:00", "09:00")))
    set_opening_hours(
        db_session,
        closed_wednesdays,
        opening_hours=OpeningHours.daily(("10:00", "22:00"), closed_weekdays=["wed"]),
    )
    live_index.build()
    verdicts = OpenVerdicts(live_index)
    ids = [late, early, closed_wednesdays]
    moments = [
        TEN_PM_SHANGHAI - timedelta(minutes=1),
        TEN_PM_SHANGHAI - timedelta(microseconds=1),  # same minute, judged from the cache
        TEN_PM_SHANGHAI,  # the next minute: closed
        TEN_PM_SHANGHAI + timedelta(seconds=59),
        TEN_PM_SHANGHAI - timedelta(hours=13, minutes=30),  # 08:30 Shanghai
        TEN_PM_SHANGHAI - timedelta(minutes=1),  # an earlier minute again, after a later one
    ]
    for moment in moments:
        assert verdicts.open_ids(ids, moment) == live_index.open_at(ids, moment), moment
    assert verdicts.open_ids(ids, TEN_PM_SHANGHAI - timedelta(microseconds=1)) == {late}


def test_a_store_whose_hours_change_is_judged_by_its_new_hours_within_the_minute(
    db_session: Session, live_index: LiveStoreIndex
) -> None:
    (store_id,) = _stores(db_session, 1)
    set_opening_hours(db_session, store_id, opening_hours=OpeningHours.daily(("10:00", "22:00")))
    live_index.build()
    verdicts = OpenVerdicts(live_index)
    moment = TEN_PM_SHANGHAI - timedelta(minutes=30)
    assert verdicts.open_ids([store_id], moment) == {store_id}

    set_opening_hours(db_session, store_id, opening_hours=OpeningHours.daily(("08:00", "09:00")))
    live_index.poll_once()
    assert verdicts.open_ids([store_id], moment + timedelta(seconds=1)) == set()


def test_store_cards_read_the_neighbourhood_in_the_query_they_make_anyway(
    db_session: Session, live_index: LiveStoreIndex, statements: list[str]
) -> None:
    first, second, third = _stores(db_session, 3)
    live_index.build()
    cards = StoreCards(live_index)

    before = len(statements)
    rows = cards.rows(db_session, [first], prefetch=[first, second, third])
    assert len(statements) == before + 1
    assert set(rows) == {first}  # only what was asked for is answered
    assert rows[first].name == "店0"

    before = len(statements)
    rows = cards.rows(db_session, [third, second], prefetch=[first, second, third])
    assert len(statements) == before  # all read already: no query
    assert [rows[third].name, rows[second].name] == ["店2", "店1"]


def test_store_cards_read_again_after_any_store_change(
    db_session: Session, live_index: LiveStoreIndex, statements: list[str]
) -> None:
    first, second = _stores(db_session, 2)
    live_index.build()
    cards = StoreCards(live_index)
    cards.rows(db_session, [first], prefetch=[first, second])

    set_opening_hours(db_session, first, opening_hours=OpeningHours.daily(("08:00", "09:00")))
    live_index.poll_once()
    before = len(statements)
    rows = cards.rows(db_session, [second], prefetch=[first, second])
    assert len(statements) == before + 1
    assert set(rows) == {second}
