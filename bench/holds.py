"""Seat holds over HTTP against `tianfu serve --workers 2` on PostgreSQL, against the bare
INSERT of the same seats into the guard table through psycopg in the same run.

    .venv/bin/python bench/holds.py            # 3 rounds of the scenario, 8 bare passes
    .venv/bin/python bench/holds.py --quick    # 1 round, 3 bare passes (under 1 min)

The scenario is issue 9's concurrency test: 2,000 hold attempts by 500 WeChat users (four each,
shuffled) on one 300-seat showtime (the IMAX hall of `cinema.seed_halls`), each attempt a party's
block of one to four adjacent seats drawn near the middle of the hall (`cinema.rush`), so most
attempts want seats someone else has; sent by bench/webhook.py's asyncio HTTP/1.1 load generator
on 32 keep-alive connections to two uvicorn worker processes on a fresh PostgreSQL + PostGIS
database. Session cookies and request bytes are prepared before the clock starts. Each request is
a whole hold: the signed session, one transaction (expired rows of the chosen seats deleted, the
user's previous hold released, the seating rules judged against what others hold, the hold row,
one INSERT of every seat), or a refusal: 409 seats_taken / hold_in_progress, 422
seat_selection_invalid (the rules, against a hall filling up). A fresh showtime per round; after
each round the answers and the database are checked (`cinema.audit`): no seat twice, every 201
a hold with exactly its seats, as many holds as 201s, nobody with two live holds.

The ceiling is what PostgreSQL itself allows that contention: the same 2,000 attempts in the same
order, each one multi-row ``INSERT INTO seat_holds … VALUES (…), (…)`` of its seats under the
UNIQUE (showtime_id, seat_id) constraint, in autocommit on 32 connections (asyncio, psycopg 3);
a taken seat fails the statement, as it fails a hold. Each pass on a showtime of its own,
measured before and after the HTTP rounds and averaged.

Target: hold throughput at least 7 % of the ceiling (ratio=). Why not the claims bench's 25 %:
a refused bare attempt is one statement that the unique index refuses at once, the cheapest
thing PostgreSQL does, and most attempts of this rush are refused; a hold that is refused is
still a session check, a transaction with two reads (the showtime, the seats taken) and the
seating rules in Python, and one that succeeds is ten round trips (a savepoint, the expired rows,
the previous hold, the hold row, one INSERT of its seats), all behind FastAPI and JSON. On the
shared two-core development machine (the load generator, both workers and the database on the
same cores, other jobs beside them) rounds measured 0.078 to 0.101 of the ceiling, 220 to 290
holds/s against 2,700 to 3,200 bare attempts/s, with a hold p99 of 400 to 560 ms at 32
connections (the workers' CPU, not lock waits: a hold waits on another only while that one's
INSERT is uncommitted). 0.07 is that, less the noise of a shared machine: below it a hold has
grown a round trip or a scan it should not have. The last line is
``RESULT holds attempts=… rps=… p99_ms=… ceiling_aps=… wrong=… ratio=… target=0.07 PASS|FAIL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import print_table, throwaway_database
from bench.claims import start_server
from bench.webhook import CONCURRENCY, Run, free_port, load, prepare_database
from bench.webhook import wait_until_both_workers_ready as wait_until_ready
from cinema import catalog
from cinema.audit import audit_showtime
from cinema.layout import SeatMap, parse_text_layout
from cinema.models import Hold, HoldStatus
from cinema.rush import Attempt, rush
from cinema.seed_halls import GRAND, ZONE_DELTA_FEN
from lbs.h5_session import session_cookie_header
from merchants.models import Merchant, MerchantStatus
from merchants.opening_hours import OpeningHours
from merchants.service import category_by_code, create_store
from tianfu.db import create_db_engine
from tianfu.orm import utcnow
from tianfu.settings import load_settings

TARGET_RATIO = 0.07
SECRET_KEY = "bench-claims-secret-key-0123456789abcdefghij"  # bench.claims.start_server's
REFUSALS = {409: {"seats_taken", "hold_in_progress"}, 422: {"seat_selection_invalid"}}


@dataclass(frozen=True)
class Plan:
    attempts: int
    users: int
    rounds: int
    ceiling_passes: int
    warmup: int


FULL = Plan(2000, 500, rounds=3, ceiling_passes=8, warmup=600)
QUICK = Plan(2000, 500, rounds=1, ceiling_passes=3, warmup=300)


class Cinema:
    """A cinema with the 300-seat hall; a showtime of its own for every round and bare pass."""

    def __init__(self, url: str) -> None:
        self.engine = create_db_engine(url)
        self.seat_map: SeatMap = parse_text_layout(GRAND.text)
        self.starts_at = utcnow() + timedelta(hours=6)
        with Session(self.engine) as session, session.begin():
            merchant = Merchant(
                name="光影电影城",
                category_id=category_by_code(session, "cinema").id,
                status=MerchantStatus.approved,
            )
            session.add(merchant)
            session.flush()
            store = create_store(
                session, merchant_id=merchant.id, name="光影电影城(春熙路店)",
                address="成都市锦江区红星路三段1号", lat_gcj02=30.6577, lng_gcj02=104.0807,
                opening_hours=OpeningHours.always_open(),
            )  # fmt: skip
            self.hall_id = catalog.import_hall(
                session, store_id=store.id, name="1号厅 IMAX", text=GRAND.text
            ).id
            self.film_id = catalog.add_film(session, title="熊猫归来", runtime_min=118).id

    def showtime(self) -> int:
        self.starts_at += timedelta(hours=3)  # one hall: showtimes one after another
        with Session(self.engine) as session, session.begin():
            return catalog.schedule_showtime(
                session,
                hall_id=self.hall_id,
                film_id=self.film_id,
                starts_at=self.starts_at,
                prices_fen={zone: 5000 + delta for zone, delta in ZONE_DELTA_FEN.items()},
            ).id

    def bare_hold(self, showtime_id: int) -> int:
        """The hold row the ceiling's seat rows point to (one for all: no constraint on it)."""
        with Session(self.engine) as session, session.begin():
            hold = Hold(
                showtime_id=showtime_id, openid="oCeiling", seats=[], amount_fen=0,
                status=HoldStatus.released, expires_at=utcnow(),
            )  # fmt: skip
            session.add(hold)
            session.flush()
            return hold.id

    def check_round(self, showtime_id: int, run: Run) -> list[str]:
        problems = []
        statuses = Counter(status for status, _ in run.responses)
        for status, body in run.responses:
            if status != 201 and json.loads(body).get("error") not in REFUSALS.get(status, ()):
                problems.append(f"answer {status} {body[:120]!r}")
        with Session(self.engine) as session:
            holds = session.scalars(select(Hold.id).where(Hold.showtime_id == showtime_id)).all()
            problems += audit_showtime(session, showtime_id, now=utcnow()).problems
        if len(holds) != statuses[201]:
            problems.append(f"{len(holds)} holds for {statuses[201]} answers 201")
        return problems


def hold_request(showtime_id: int, cookie: str, seat_ids: tuple[str, ...]) -> bytes:
    body = json.dumps({"seats": list(seat_ids)}).encode()
    head = (
        f"POST /api/v1/showtimes/{showtime_id}/holds HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: {cookie}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def requests(showtime_id: int, attempts: list[Attempt], jar: dict[str, str]) -> list[bytes]:
    return [hold_request(showtime_id, jar[a.openid], a.seat_ids) for a in attempts]


# -- the ceiling -------------------------------------------------------------------------------


async def _ceiling(conninfo: str, showtime_id: int, hold_id: int, attempts: list[Attempt]) -> Run:
    pending = list(reversed(attempts))
    latencies: list[float] = []
    taken = [0]
    expires_at = utcnow() + timedelta(hours=1)

    async def connection() -> None:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            while pending:
                attempt = pending.pop()
                values = ", ".join(["(%s, %s, %s, %s, 'held', %s)"] * len(attempt.seat_ids))
                params: list[object] = []
                for seat_id in attempt.seat_ids:
                    params += [showtime_id, seat_id, hold_id, attempt.openid, expires_at]
                started = time.perf_counter()
                try:
                    await conn.execute(
                        "INSERT INTO seat_holds (showtime_id, seat_id, hold_id, openid, status, "
                        f"expires_at) VALUES {values}",
                        params,
                    )
                except psycopg.errors.UniqueViolation:
                    taken[0] += 1
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(CONCURRENCY)))
    return Run(time.perf_counter() - started, latencies, [(taken[0], b"")])


def ceiling(conninfo: str, cinema: Cinema, attempts: list[Attempt]) -> Run:
    showtime_id = cinema.showtime()
    return asyncio.run(_ceiling(conninfo, showtime_id, cinema.bare_hold(showtime_id), attempts))


# -- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    rounds: list[Run]
    ceilings: list[Run]
    held: list[int]
    problems: list[str]


def measure(conninfo: str, url: str, plan: Plan) -> Results:
    rng = random.Random(20261209)
    cinema = Cinema(url)
    settings = load_settings(database_url=url, secret_key=SECRET_KEY)
    scenarios = [
        rush(cinema.seat_map, attempts=plan.attempts, users=plan.users, rng=rng)
        for _ in range(plan.rounds + 1)
    ]
    users = {a.openid for scenario in scenarios for a in scenario}
    jar = {
        openid: session_cookie_header(settings, openid, clock=time.time).split(";", 1)[0]
        for openid in users
    }
    rounds: list[Run] = []
    held: list[int] = []
    problems: list[str] = []
    ceilings = [ceiling(conninfo, cinema, scenarios[0]) for _ in range(plan.ceiling_passes)]
    port = free_port()
    server = start_server(url, port, Path.cwd())
    try:
        wait_until_ready(port, server)
        load(port, requests(cinema.showtime(), scenarios[0][: plan.warmup], jar))
        for scenario in scenarios[1:]:
            showtime_id = cinema.showtime()
            run = load(port, requests(showtime_id, scenario, jar))
            rounds.append(run)
            held.append(sum(status == 201 for status, _ in run.responses))
            problems += cinema.check_round(showtime_id, run)
    finally:
        server.terminate()
        server.wait(timeout=20)
    ceilings += [ceiling(conninfo, cinema, scenarios[0]) for _ in range(plan.ceiling_passes)]
    cinema.engine.dispose()
    return Results(rounds, ceilings, held, problems)


def ms(run: Run, q: float) -> float:
    return float(np.percentile(np.asarray(run.latencies_s), q) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, fewer bare passes")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    with throwaway_database("tianfu_bench_holds") as conninfo:
        url = prepare_database(conninfo, 0)
        results = measure(conninfo, url, plan)

    # The median round: one round slowed by another process's burst does not set the figure.
    median = sorted(results.rounds, key=lambda run: run.rps)[len(results.rounds) // 2]
    ceiling_aps = statistics.fmean(run.rps for run in results.ceilings)
    ceiling_p99 = statistics.fmean(ms(run, 99) for run in results.ceilings)
    ratio = median.rps / ceiling_aps
    n = len(results.ceilings) // 2
    print_table(
        f"{CONCURRENCY} connections, 2 workers, PostgreSQL, {plan.attempts} attempts on 300 seats",
        [
            ("what", "attempts", "per s", "p50 ms", "p99 ms", "succeeded"),
            *(
                (f"holds over HTTP, round {k}", str(len(run.latencies_s)), f"{run.rps:.0f}",
                 f"{ms(run, 50):.1f}", f"{ms(run, 99):.1f}", str(won))
                for k, (run, won) in enumerate(zip(results.rounds, results.held, strict=True), 1)
            ),
            *(
                (f"bare INSERT, pass {k} ({'before' if k <= n else 'after'})",
                 str(len(run.latencies_s)), f"{run.rps:.0f}", f"{ms(run, 50):.2f}",
                 f"{ms(run, 99):.2f}", str(len(run.latencies_s) - run.responses[0][0]))
                for k, run in enumerate(results.ceilings, 1)
            ),
        ],
    )  # fmt: skip
    for problem in results.problems:
        print(f"WRONG: {problem}")
    passed = ratio >= TARGET_RATIO and not results.problems
    print(
        f"RESULT holds attempts={plan.attempts} users={plan.users} seats=300 "
        f"rps={median.rps:.0f} p50_ms={ms(median, 50):.1f} p99_ms={ms(median, 99):.1f} "
        f"held={statistics.median(results.held):.0f} ceiling_aps={ceiling_aps:.0f} "
        f"ceiling_p99_ms={ceiling_p99:.2f} wrong={len(results.problems)} "
        f"ratio={ratio:.3f} target={TARGET_RATIO} {'PASS' if passed else 'FAIL'}"
    )
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
