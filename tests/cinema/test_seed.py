"""The demo cinemas on both backends: halls for a few demo cinemas, a week of showtimes, and
re-running adding only what is missing."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cinema.catalog import seat_map_of
from cinema.layout import SeatKind
from cinema.models import Hall, Showtime
from cinema.seed import DAYS, seed_cinemas
from merchants.models import Store
from merchants.opening_hours import SHANGHAI
from tianfu.seed import seed_demo

SEED = 20261128
DAY = date(2031, 3, 3)  # a Monday, far from the run's own week that seed_demo writes


def _showtimes_from(session: Session, day: date) -> list[Showtime]:
    start = datetime.combine(day, time(0), SHANGHAI)
    return list(
        session.scalars(
            select(Showtime)
            .where(Showtime.starts_at >= start, Showtime.starts_at < start + timedelta(days=DAYS))
            .order_by(Showtime.hall_id, Showtime.starts_at)
        )
    )


def test_the_demo_has_cinemas_with_realistic_halls(db_session: Session) -> None:
    seed_demo(db_session, stores=600, seed=SEED)  # writes the halls (and this week's shows)
    halls = db_session.execute(select(Hall, Store.name).join(Store)).all()
    cinemas = {name for _, name in halls}
    assert len(cinemas) == 4
    assert all("影" in name for name in cinemas)
    for hall, _ in halls:
        seat_map = seat_map_of(db_session, hall.id)
        kinds = {seat.kind for seat in seat_map.seats.values()}
        assert {SeatKind.couple_left, SeatKind.wheelchair} <= kinds, hall.name
        assert 8 <= len(seat_map.rows) <= 12
        assert len({seat.zone for seat in seat_map.seats.values()}) >= 2
    grand = [hall for hall, _ in halls if hall.name == "1号厅 IMAX"]
    assert len(grand) == 4
    assert {hall.seat_count for hall in grand} == {300}


def test_a_week_of_showtimes_then_only_what_is_missing(db_session: Session) -> None:
    seed_demo(db_session, stores=600, seed=SEED)
    first = seed_cinemas(db_session, seed=SEED, today=DAY)
    assert (first.cinemas, first.halls_created, first.films_created) == (4, 0, 0)
    shows = _showtimes_from(db_session, DAY)
    assert len(shows) == first.showtimes_created > 4 * 3 * DAYS * 4
    by_hall: dict[int, list[Showtime]] = defaultdict(list)
    for show in shows:
        by_hall[show.hall_id].append(show)
        local = show.starts_at.astimezone(SHANGHAI).time()
        assert time(10, 0) <= local <= time(23, 15)
        assert show.sales_close_at == show.starts_at - timedelta(minutes=10)
        zones = {s.zone for s in seat_map_of(db_session, show.hall_id).seats.values()}
        assert set(show.prices_fen) == zones
        prices = show.prices_fen
        assert prices.get("golden", 1) > prices.get("front", 0)
        assert prices.get("vip_couple", 1) > prices.get("vip", 0)
    for hall_shows in by_hall.values():
        for earlier, later in itertools.pairwise(hall_shows):
            assert later.starts_at >= earlier.ends_at + timedelta(minutes=15)

    again = seed_cinemas(db_session, seed=SEED, today=DAY)
    assert (again.halls_created, again.films_created, again.showtimes_created) == (0, 0, 0)
    next_day = seed_cinemas(db_session, seed=SEED, today=DAY + timedelta(days=1))
    new_day = datetime.combine(DAY + timedelta(days=DAYS), time(0), SHANGHAI)
    added = db_session.scalar(
        select(func.count())
        .select_from(Showtime)
        .where(Showtime.starts_at >= new_day, Showtime.starts_at < new_day + timedelta(days=1))
    )
    assert added
    assert next_day.showtimes_created == added
