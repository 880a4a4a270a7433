"""Parallel claims over HTTP against real `tianfu serve` processes: on PostgreSQL two worker
processes on one database, on SQLite one (the embedded setup). Many users tap many times, each
tap a request of its own (its own client_request_id), from a thread pool spread over the
workers, against an offer with less stock than users and a limit of one per user.

Nothing may be oversold, nobody may get two, and every refusal must be a clean 409 with its
reason: no 500, no "database is locked".
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coupons.codes import normalise_code
from coupons.models import Claim, Offer, OfferUserCount
from lbs.h5_session import session_cookie_header
from tests.builders import make_merchant, make_offer, make_store
from tests.conftest import PostgresDatabases
from tests.workers import serve_workers
from tianfu import migrate
from tianfu.db import create_db_engine
from tianfu.settings import TianfuSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
SECRET_KEY = "claim-http-race-secret-key-0123456789abcdef"
THREADS = 32
REFUSALS = {"coupon_out_of_stock", "coupon_limit_reached"}


@dataclass(frozen=True)
class Size:
    requests: int
    users: int
    stock: int


FULL = Size(requests=2000, users=500, stock=300)
QUICK = Size(requests=400, users=100, stock=60)


@dataclass(frozen=True)
class Answer:
    openid: str
    status: int
    error: str | None
    code: str | None


def _offer(url: str, *, stock: int) -> int:
    engine = create_db_engine(url)
    try:
        migrate.upgrade(engine)
        with Session(engine) as session, session.begin():
            merchant = make_merchant(session)
            make_store(session, merchant=merchant)
            return make_offer(session, merchant=merchant, total_stock=stock, per_user_limit=1).id
    finally:
        engine.dispose()


def _requests(settings: TianfuSettings, size: Size) -> list[tuple[str, dict[str, str], bytes]]:
    """(openid, headers, body) of every tap, shuffled; cookies minted once per user."""
    users = [f"oHttpUser{n:04d}" for n in range(size.users)]
    cookies = {
        openid: session_cookie_header(settings, openid, clock=time.time).split(";", 1)[0]
        for openid in users
    }
    taps = []
    for n in range(size.requests):
        openid = users[n % size.users]
        body = f'{{"client_request_id": "{uuid.uuid4()}"}}'.encode()
        headers = {"Cookie": cookies[openid], "Content-Type": "application/json"}
        taps.append((openid, headers, body))
    random.Random(20261201).shuffle(taps)
    return taps


def _fire(bases: list[str], offer_id: int, settings: TianfuSettings, size: Size) -> list[Answer]:
    taps = _requests(settings, size)
    limits = httpx.Limits(max_connections=THREADS, max_keepalive_connections=THREADS)
    with httpx.Client(limits=limits, timeout=60) as http:

        def send(numbered: tuple[int, tuple[str, dict[str, str], bytes]]) -> Answer:
            n, (openid, headers, body) = numbered
            url = f"{bases[n % len(bases)]}/api/v1/offers/{offer_id}/claims"
            response = http.post(url, content=body, headers=headers)
            json = response.headers.get("content-type", "").startswith("application/json")
            payload = response.json() if json else {}
            return Answer(openid, response.status_code, payload.get("error"), payload.get("code"))

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            return list(pool.map(send, enumerate(taps)))


def _check(url: str, offer_id: int, size: Size, answers: list[Answer]) -> None:
    statuses = Counter(answer.status for answer in answers)
    assert statuses[201] == size.stock, statuses
    assert set(statuses) <= {201, 409}, statuses  # no 500, no repeat (every tap is new)
    refusals = Counter(answer.error for answer in answers if answer.status == 409)
    assert set(refusals) <= REFUSALS, refusals
    winners = Counter(answer.openid for answer in answers if answer.status == 201)
    assert max(winners.values()) == 1
    issued = {normalise_code(a.code) for a in answers if a.status == 201 and a.code}
    assert len(issued) == size.stock

    engine = create_db_engine(url)
    try:
        with Session(engine) as session:
            per_user = dict(
                session.execute(select(Claim.openid, func.count()).group_by(Claim.openid)).all()
            )
            codes = set(session.scalars(select(Claim.code)))
            offer = session.get_one(Offer, offer_id)
            counted = session.scalar(select(func.sum(OfferUserCount.claimed)))
    finally:
        engine.dispose()
    assert max(per_user.values()) == 1
    assert per_user.keys() == winners.keys()
    assert codes == issued  # every 201 was committed, and nothing else was
    assert offer.claimed_count == size.stock
    assert counted == size.stock


def _run(url: str, size: Size, *, workers: int) -> None:
    offer_id = _offer(url, stock=size.stock)
    settings = load_settings(database_url=url, secret_key=SECRET_KEY)
    env = {"TIANFU_SECRET_KEY": SECRET_KEY, "TIANFU_LOG_LEVEL": "warning"}
    with serve_workers(url, REPO, count=workers, env=env) as bases:
        answers = _fire(bases, offer_id, settings, size)
    _check(url, offer_id, size, answers)


@pytest.mark.postgres_only
@pytest.mark.parametrize("size", [pytest.param(FULL, marks=pytest.mark.slow), QUICK])
def test_two_workers_never_oversell_nor_give_anyone_two(
    postgres_databases: PostgresDatabases, size: Size
) -> None:
    _run(postgres_databases.create(), size, workers=2)


def test_one_worker_on_sqlite_never_oversells_nor_gives_anyone_two(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    record_property("backend", "sqlite")  # counted in the per-backend summary
    _run(f"sqlite:///{tmp_path / 'race.sqlite3'}", QUICK, workers=1)
