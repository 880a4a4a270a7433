"""Parallel seat holds over HTTP against real `tianfu serve` processes: on PostgreSQL two worker
processes on one database, on SQLite one (the embedded setup). Hundreds of users try several
times each for seats of one 300-seat showtime, mostly the same middle seats (`cinema.rush`),
from a thread pool spread over the workers.

Then, from the database: no seat has two rows, every 201 is a hold with exactly the seats it
answered (still held seat by seat, or ended with none left), every refusal left nothing behind
(as many holds as 201s), and nobody has two live holds. Finally the clock moves past the holds'
expiry and every seat of the hall is held again, in parties, without a refusal.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cinema import catalog, service
from cinema.audit import audit_showtime
from cinema.layout import Seat, SeatKind, SeatMap
from cinema.models import Hold, HoldStatus
from cinema.rush import Attempt, rush
from cinema.seed_halls import GRAND, ZONE_DELTA_FEN
from lbs.h5_session import session_cookie_header
from tests.builders import make_merchant, make_store
from tests.conftest import PostgresDatabases
from tests.workers import serve_workers
from tianfu import migrate
from tianfu.db import create_db_engine
from tianfu.orm import utcnow
from tianfu.settings import TianfuSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
SECRET_KEY = "hold-race-secret-key-0123456789abcdefghij"
THREADS = 32
REFUSALS = {
    409: {"seats_taken", "hold_in_progress"},
    422: {"seat_selection_invalid"},
}


@dataclass(frozen=True)
class Size:
    attempts: int
    users: int


FULL = Size(attempts=2000, users=500)
QUICK = Size(attempts=600, users=150)


@dataclass(frozen=True)
class Answer:
    attempt: Attempt
    status: int
    hold_id: int | None
    seats: tuple[str, ...]
    error: str | None


def _showtime(engine: Engine) -> int:
    migrate.upgrade(engine)
    with Session(engine) as session, session.begin():
        merchant = make_merchant(session, name="光影电影城", category_code="cinema")
        store = make_store(session, merchant=merchant, name="光影电影城(春熙路店)")
        hall = catalog.import_hall(session, store_id=store.id, name="1号厅 IMAX", text=GRAND.text)
        assert hall.seat_count == 300
        film = catalog.add_film(session, title="熊猫归来", runtime_min=118)
        showtime = catalog.schedule_showtime(
            session,
            hall_id=hall.id,
            film_id=film.id,
            starts_at=utcnow() + timedelta(hours=3),
            prices_fen={zone: 5000 + delta for zone, delta in ZONE_DELTA_FEN.items()},
        )
        return showtime.id


def _fire(
    bases: list[str], showtime_id: int, settings: TianfuSettings, attempts: list[Attempt]
) -> list[Answer]:
    cookies = {
        a.openid: session_cookie_header(settings, a.openid, clock=time.time).split(";", 1)[0]
        for a in attempts
    }
    limits = httpx.Limits(max_connections=THREADS, max_keepalive_connections=THREADS)
    with httpx.Client(limits=limits, timeout=60) as http:

        def send(numbered: tuple[int, Attempt]) -> Answer:
            n, attempt = numbered
            response = http.post(
                f"{bases[n % len(bases)]}/api/v1/showtimes/{showtime_id}/holds",
                json={"seats": list(attempt.seat_ids)},
                headers={"Cookie": cookies[attempt.openid]},
            )
            body = response.json()
            if response.status_code == 201:
                seats = tuple(seat["seat_id"] for seat in body["seats"])
                return Answer(attempt, 201, body["hold_id"], seats, None)
            return Answer(attempt, response.status_code, None, (), body.get("error"))

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            return list(pool.map(send, enumerate(attempts)))


def _check_answers(engine: Engine, showtime_id: int, answers: list[Answer]) -> None:
    statuses = Counter(answer.status for answer in answers)
    assert set(statuses) <= {201, *REFUSALS}, statuses  # no 500, no "database is locked"
    for answer in answers:
        if answer.status != 201:
            assert answer.error in REFUSALS[answer.status], answer
    # The rush is a real one: plenty held (a party is 2.5 seats on average, the hall 300 seats),
    # plenty refused for taken seats.
    assert statuses[201] >= 50, statuses
    assert statuses[409] >= len(answers) // 4, statuses
    with Session(engine) as session:
        holds = {
            h.id: h for h in session.scalars(select(Hold).where(Hold.showtime_id == showtime_id))
        }
        audit = audit_showtime(session, showtime_id, now=utcnow())
    assert audit.problems == []
    # Every refusal left nothing: the only holds are the 201s, each with what it answered.
    won = [answer for answer in answers if answer.status == 201]
    assert len(holds) == len(won)
    for answer in won:
        assert answer.hold_id is not None
        hold = holds[answer.hold_id]
        assert (hold.openid, tuple(hold.seat_ids)) == (answer.attempt.openid, answer.seats)
        assert sorted(answer.seats) == sorted(answer.attempt.seat_ids)
    live = [h for h in holds.values() if h.status is HoldStatus.held]
    assert audit.live_holds == len(live)
    assert audit.held_seats == sum(len(h.seats) for h in live)
    assert {h.status for h in holds.values()} <= {HoldStatus.held, HoldStatus.released}


def _parties(segment: tuple[Seat, ...]) -> list[list[Seat]]:
    """A segment cut into parties of at most six that strand nobody (no party leaves a single
    seat behind it) and keep couple seats whole."""
    parties, left = [], list(segment)
    while left:
        size = min(6, len(left))
        if len(left) - size == 1:
            size -= 2 if len(left) > 3 else 1
        if left[size - 1].kind is SeatKind.couple_left:
            size -= 1
        parties.append(left[:size])
        left = left[size:]
    return parties


def _everything_holdable_after_expiry(engine: Engine, showtime_id: int, seat_map: SeatMap) -> None:
    with Session(engine) as session:
        expiry = max(
            session.scalars(select(Hold.expires_at).where(Hold.showtime_id == showtime_id))
        )
    later = expiry + timedelta(seconds=1)
    n = 0
    for row in seat_map.rows:
        for segment in seat_map.segments(row.index):
            for party in _parties(segment):
                n += 1
                with Session(engine) as session, session.begin():
                    service.hold_seats(
                        session,
                        showtime_id=showtime_id,
                        openid=f"oLaterUser{n:05d}",
                        seat_ids=[seat.id for seat in party],
                        now=later,
                    )
    with Session(engine) as session:
        states = service.seat_states(session, showtime_id, later)
        assert states.taken == set(seat_map.seats)
        assert audit_showtime(session, showtime_id, now=later).problems == []


def _run(url: str, size: Size, *, workers: int) -> None:
    engine = create_db_engine(url)
    try:
        showtime_id = _showtime(engine)
        with Session(engine) as session:
            hall_id = catalog.get_showtime(session, showtime_id).hall_id
            seat_map = catalog.seat_map_of(session, hall_id)
        attempts = rush(seat_map, attempts=size.attempts, users=size.users, rng=random.Random(9))
        settings = load_settings(database_url=url, secret_key=SECRET_KEY)
        env = {"TIANFU_SECRET_KEY": SECRET_KEY, "TIANFU_LOG_LEVEL": "warning"}
        with serve_workers(url, REPO, count=workers, env=env) as bases:
            answers = _fire(bases, showtime_id, settings, attempts)
        _check_answers(engine, showtime_id, answers)
        _everything_holdable_after_expiry(engine, showtime_id, seat_map)
    finally:
        engine.dispose()


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "size", [pytest.param(FULL, marks=pytest.mark.slow, id="full"), pytest.param(QUICK, id="quick")]
)
def test_two_workers_never_hold_a_seat_twice_and_holds_are_all_or_nothing(
    postgres_databases: PostgresDatabases, size: Size
) -> None:
    _run(postgres_databases.create(), size, workers=2)


def test_one_worker_on_sqlite_never_holds_a_seat_twice(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    record_property("backend", "sqlite")  # counted in the per-backend summary
    _run(f"sqlite:///{tmp_path / 'race.sqlite3'}", QUICK, workers=1)
