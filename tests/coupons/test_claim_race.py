"""Parallel claims and redemptions against real databases, through the service layer.

PostgreSQL: two worker processes (spawned, each with its own engine and a thread pool) fire at
one offer at once, as two uvicorn workers would. SQLite, the embedded single-process setup: one
process, many threads. Each request is one transaction of its own, committed, as a request
would be.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from coupons import claims
from coupons.models import Claim, ClaimStatus, Offer, OfferUserCount
from tests.builders import make_merchant, make_offer, make_store
from tests.conftest import PostgresDatabases
from tianfu import migrate
from tianfu.db import create_db_engine
from tianfu.errors import TianfuError

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
THREADS = 12


@dataclass(frozen=True)
class Size:
    claims: int
    users: int
    stock: int


FULL = Size(claims=2000, users=500, stock=300)
QUICK = Size(claims=400, users=100, stock=60)


@dataclass(frozen=True)
class Town:
    url: str
    offer_id: int
    store_id: int


def _town(url: str, *, stock: int) -> Town:
    engine = create_db_engine(url)
    try:
        migrate.upgrade(engine)
        with Session(engine) as session, session.begin():
            merchant = make_merchant(session)
            store = make_store(session, merchant=merchant)
            offer = make_offer(session, merchant=merchant, total_stock=stock, per_user_limit=1)
            return Town(url, offer.id, store.id)
    finally:
        engine.dispose()


# -- what every worker runs (module level, so a spawned process can import it) ----------------


def _claim_once(engine: Engine, offer_id: int, openid: str, request_id: str) -> str:
    try:
        with Session(engine) as session, session.begin():
            claims.claim(
                session, offer_id=offer_id, openid=openid, client_request_id=request_id, now=NOW
            )
    except TianfuError as exc:
        return exc.code
    return "ok"


def _redeem_once(engine: Engine, code: str, store_id: int) -> str:
    try:
        with Session(engine) as session, session.begin():
            claims.redeem(session, code=code, store_id=store_id, now=NOW)
    except TianfuError as exc:
        return exc.code
    return "ok"


def fire(url: str, task: str, target: Any, jobs: list[Any], ready: Any = None) -> Counter[str]:
    """Run `jobs` on THREADS threads with an engine of this process's own; every thread holds a
    connection before the start signal, so the requests really overlap."""
    engine = create_db_engine(url, pool_size=THREADS, max_overflow=0)
    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            warm = [engine.connect() for _ in range(THREADS)]
            for connection in warm:
                connection.close()
            if ready is not None:
                ready.wait()  # the other process is ready too
            if task == "claim":
                outcomes = pool.map(lambda job: _claim_once(engine, target, *job), jobs)
            else:
                outcomes = pool.map(lambda store_id: _redeem_once(engine, target, store_id), jobs)
            return Counter(outcomes)
    finally:
        engine.dispose()


def _worker(url: str, task: str, target: Any, jobs: list[Any], ready: Any, results: Any) -> None:
    results.put(dict(fire(url, task, target, jobs, ready)))


def _in_two_processes(url: str, task: str, target: Any, jobs: list[Any]) -> Counter[str]:
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(2)
    results = context.Queue()
    halves = [jobs[0::2], jobs[1::2]]
    workers = [
        context.Process(target=_worker, args=(url, task, target, half, ready, results))
        for half in halves
    ]
    for worker in workers:
        worker.start()
    try:
        total: Counter[str] = Counter()
        for _ in workers:
            total.update(results.get(timeout=120))
    finally:
        for worker in workers:
            worker.join(timeout=30)
    assert [worker.exitcode for worker in workers] == [0, 0]
    return total


# -- scenarios ----------------------------------------------------------------------------------


def _claim_jobs(size: Size) -> list[tuple[str, str]]:
    rng = random.Random(20261128)
    users = [f"oUser{n:04d}" for n in range(size.users)]
    # Every user tries several times, each tap a new request id; then the order is shuffled.
    jobs = [(users[n % size.users], f"tap-{n}") for n in range(size.claims)]
    rng.shuffle(jobs)
    return jobs


def _check_claims(town: Town, size: Size, outcomes: Counter[str]) -> None:
    assert outcomes["ok"] == size.stock, outcomes
    assert set(outcomes) <= {"ok", "coupon_out_of_stock", "coupon_limit_reached"}, outcomes
    assert sum(outcomes.values()) == size.claims
    engine = create_db_engine(town.url)
    try:
        with Session(engine) as session:
            per_user = session.execute(
                select(Claim.openid, func.count()).group_by(Claim.openid)
            ).all()
            offer = session.get_one(Offer, town.offer_id)
            counted = session.scalar(select(func.sum(OfferUserCount.claimed)))
    finally:
        engine.dispose()
    assert len(per_user) == size.stock
    assert max(count for _, count in per_user) == 1
    assert (offer.claimed_count, offer.claimed_fen) == (size.stock, size.stock * 1000)
    assert counted == size.stock


def _issue_one_code(town: Town) -> str:
    engine = create_db_engine(town.url)
    try:
        with Session(engine) as session, session.begin():
            return claims.claim(
                session, offer_id=town.offer_id, openid="oHolder", client_request_id="1", now=NOW
            ).code
    finally:
        engine.dispose()


def _check_redeemed_once(town: Town, code: str, outcomes: Counter[str]) -> None:
    assert outcomes == Counter({"ok": 1, "coupon_already_redeemed": sum(outcomes.values()) - 1})
    engine = create_db_engine(town.url)
    try:
        with Session(engine) as session:
            coupon = session.scalars(select(Claim).where(Claim.code == code)).one()
    finally:
        engine.dispose()
    assert coupon.status is ClaimStatus.redeemed


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> str:
    return postgres_databases.create()


@pytest.mark.postgres_only
@pytest.mark.parametrize("size", [pytest.param(FULL, marks=pytest.mark.slow), QUICK])
def test_two_processes_never_oversell_nor_exceed_the_user_limit(
    postgres_url: str, size: Size
) -> None:
    town = _town(postgres_url, stock=size.stock)
    started = time.monotonic()
    outcomes = _in_two_processes(town.url, "claim", town.offer_id, _claim_jobs(size))
    elapsed = time.monotonic() - started
    _check_claims(town, size, outcomes)
    assert elapsed < 60


@pytest.mark.parametrize("size", [pytest.param(FULL, marks=pytest.mark.slow), QUICK])
def test_threads_on_sqlite_never_oversell_nor_exceed_the_user_limit(
    tmp_path: Path, size: Size, record_property: Callable[[str, object], None]
) -> None:
    record_property("backend", "sqlite")  # counted in the per-backend summary
    town = _town(f"sqlite:///{tmp_path / 'race.sqlite3'}", stock=size.stock)
    outcomes = fire(town.url, "claim", town.offer_id, _claim_jobs(size))
    _check_claims(town, size, outcomes)


@pytest.mark.postgres_only
def test_one_code_redeemed_by_two_processes_at_once_is_redeemed_once(postgres_url: str) -> None:
    town = _town(postgres_url, stock=10)
    code = _issue_one_code(town)
    outcomes = _in_two_processes(town.url, "redeem", code, [town.store_id] * 60)
    _check_redeemed_once(town, code, outcomes)


def test_one_code_redeemed_by_threads_on_sqlite_is_redeemed_once(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    record_property("backend", "sqlite")
    town = _town(f"sqlite:///{tmp_path / 'race.sqlite3'}", stock=10)
    code = _issue_one_code(town)
    outcomes = fire(town.url, "redeem", code, [town.store_id] * 60)
    _check_redeemed_once(town, code, outcomes)


def test_sqlite_threads_claiming_at_once_all_commit(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    # Every claim here writes (enough stock for all), so a transaction that read before taking
    # SQLite's write lock would fail with "database is locked" (SQLITE_BUSY_SNAPSHOT).
    record_property("backend", "sqlite")
    town = _town(f"sqlite:///{tmp_path / 'race.sqlite3'}", stock=300)
    jobs = [(f"oUser{n:04d}", "tap") for n in range(300)]
    assert fire(town.url, "claim", town.offer_id, jobs) == Counter({"ok": 300})


def test_one_request_sent_many_times_at_once_issues_one_coupon(empty_database_url: str) -> None:
    # A per-user limit above 1, so only the request id keeps the repeats from issuing more.
    town = _town(empty_database_url, stock=100)
    engine = create_db_engine(town.url, pool_size=THREADS, max_overflow=0)
    with Session(engine) as session, session.begin():
        session.get_one(Offer, town.offer_id).per_user_limit = 5

    def send(_: int) -> int:
        with Session(engine) as session, session.begin():
            return claims.claim(
                session, offer_id=town.offer_id, openid="oTap", client_request_id="r1", now=NOW
            ).id

    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            ids = set(pool.map(send, range(40)))
        with Session(engine) as session:
            offer = session.get_one(Offer, town.offer_id)
            assert (len(ids), offer.claimed_count) == (1, 1)
    finally:
        engine.dispose()
