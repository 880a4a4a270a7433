"""Coupon claims over HTTP against `tianfu serve --workers 2` on PostgreSQL, against the bare
conditional UPDATE of one stock row through psycopg in the same run.

    .venv/bin/python bench/claims.py            # 3 rounds of the scenario, 40k bare UPDATEs
    .venv/bin/python bench/claims.py --quick    # 1 round, 10k bare UPDATEs (under 1 min)

The scenario is issue 5's concurrency test: 2,000 claim requests by 500 WeChat users (four taps
each, every tap its own client_request_id, shuffled) against an offer with a stock of 300 and a
limit of one per user, sent by an asyncio HTTP/1.1 load generator with 32 keep-alive connections
(bench/webhook.py's) to two uvicorn worker processes on a fresh PostgreSQL + PostGIS database.
Session cookies and request bytes are prepared before the clock starts. Each request is the
whole claim: the signed session, one transaction, the per-user counter upsert, the claim row and
the conditional UPDATE of the offer row, or a refusal (409) once the user or the stock is done.
Each round uses a fresh offer. After every round the answers and the database are checked:
exactly `stock` coupons (201s, rows, claimed_count), nobody over the limit, every other answer
a 409 coupon_out_of_stock or coupon_limit_reached.

Also reported, not judged: the issuing rate, from a run where every request is a new user's
first claim on an offer with ample stock, so every request writes its coupon.

The ceiling is what PostgreSQL itself allows one hot offer:
``UPDATE offers SET claimed_count = claimed_count + 1 WHERE id = %s AND claimed_count <
total_stock`` in autocommit on 32 connections (asyncio, psycopg 3, prepared after five runs), on a
separate offer with a huge stock, measured before and after the HTTP runs and averaged. Every
one of those UPDATEs queues for the same row lock, as claims on one offer do.

Target (issue 5): claim throughput at least 25 % of the ceiling (ratio=). The last line is
``RESULT claims rps=… p50_ms=… p99_ms=… ceiling_ups=… issue_rps=… … ratio=… target=0.25 PASS|FAIL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import print_table, throwaway_database
from bench.webhook import (
    CONCURRENCY,
    Run,
    free_port,
    load,
    prepare_database,
    wait_until_both_workers_ready,
)
from coupons.models import Claim, Offer
from coupons.rules import OfferKind
from coupons.schemas import OfferCreate
from coupons.service import approve, create_offer, submit_for_review
from lbs.h5_session import session_cookie_header
from merchants.models import Merchant, MerchantStatus
from merchants.opening_hours import OpeningHours
from merchants.service import category_by_code, create_store
from tianfu.db import create_db_engine
from tianfu.settings import load_settings

SECRET_KEY = "bench-claims-secret-key-0123456789abcdefghij"
TARGET_RATIO = 0.25
REFUSALS = {"coupon_out_of_stock", "coupon_limit_reached"}
CEILING_UPDATE = (
    "UPDATE offers SET claimed_count = claimed_count + 1 WHERE id = %s "
    "AND claimed_count < total_stock"
)
# Far more than any run takes (the bare UPDATEs included), and its budget (x 10 yuan) still fits
# the 32-bit fen column.
HUGE_STOCK = 1_000_000


@dataclass(frozen=True)
class Plan:
    requests: int
    users: int
    stock: int
    rounds: int
    issue_requests: int
    ceiling_updates: int
    warmup: int


FULL = Plan(2000, 500, 300, rounds=3, issue_requests=3000, ceiling_updates=40_000, warmup=600)
QUICK = Plan(2000, 500, 300, rounds=1, issue_requests=600, ceiling_updates=10_000, warmup=300)


# -- the database ------------------------------------------------------------------------------


class Shop:
    """A merchant with one store, and offers made through the real lifecycle (maker-checker)."""

    def __init__(self, url: str) -> None:
        self.engine = create_db_engine(url)
        with Session(self.engine) as session, session.begin():
            merchant = Merchant(
                name="蜀味老灶火锅",
                category_id=category_by_code(session, "hotpot").id,
                status=MerchantStatus.approved,
            )
            session.add(merchant)
            session.flush()
            create_store(
                session, merchant_id=merchant.id, name="蜀味老灶火锅(春熙路店)",
                address="成都市锦江区红星路三段1号", lat_gcj02=30.6577, lng_gcj02=104.0807,
                opening_hours=OpeningHours.always_open(),
            )  # fmt: skip
            self.merchant_id = merchant.id

    def offer(self, *, stock: int, title: str = "立减10元") -> int:
        data = OfferCreate(
            kind=OfferKind.fixed_off,
            title_zh=title,
            amount_off_fen=1000,
            total_stock=stock,
            budget_fen=stock * 1000,
            per_user_limit=1,
        )
        with Session(self.engine) as session, session.begin():
            offer = create_offer(
                session, merchant_id=self.merchant_id, data=data, created_by="bench-maker"
            )
            submit_for_review(session, offer.id)
            approve(session, offer.id, reviewer="bench-checker")
            return offer.id

    def check_round(self, offer_id: int, stock: int) -> list[str]:
        """What is wrong in the database after a round of the scenario (nothing, hopefully)."""
        with Session(self.engine) as session:
            claimed = session.get_one(Offer, offer_id).claimed_count
            coupons, users = session.execute(
                select(func.count(), func.count(distinct(Claim.openid))).where(
                    Claim.offer_id == offer_id
                )
            ).one()
        problems = []
        if claimed != stock:
            problems.append(f"claimed_count {claimed} != stock {stock}")
        # As many users as coupons: nobody holds two.
        if coupons != stock or users != stock:
            problems.append(f"{coupons} coupons held by {users} users, stock {stock}")
        return problems


# -- the requests ------------------------------------------------------------------------------


def cookies(url: str, openids: Sequence[str]) -> dict[str, str]:
    # Signed with the key the server is started with, as its OAuth callback would sign them.
    settings = load_settings(database_url=url, secret_key=SECRET_KEY)
    return {
        openid: session_cookie_header(settings, openid, clock=time.time).split(";", 1)[0]
        for openid in openids
    }


def claim_request(offer_id: int, cookie: str) -> bytes:
    body = json.dumps({"client_request_id": str(uuid.uuid4())}).encode()
    head = (
        f"POST /api/v1/offers/{offer_id}/claims HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: {cookie}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def scenario(offer_id: int, jar: dict[str, str], plan: Plan, rng: random.Random) -> list[bytes]:
    users = list(jar)[: plan.users]
    taps = [claim_request(offer_id, jar[users[n % plan.users]]) for n in range(plan.requests)]
    rng.shuffle(taps)
    return taps


def check_answers(run: Run, stock: int) -> list[str]:
    statuses = Counter(status for status, _ in run.responses)
    problems = []
    if statuses[201] != stock or set(statuses) - {201, 409}:
        problems.append(f"statuses {dict(statuses)}, stock {stock}")
    errors = Counter(json.loads(body)["error"] for status, body in run.responses if status == 409)
    if set(errors) - REFUSALS:
        problems.append(f"refusals {dict(errors)}")
    return problems


# -- the ceiling -------------------------------------------------------------------------------


async def _ceiling(conninfo: str, offer_id: int, updates: int, connections: int) -> Run:
    latencies: list[float] = []
    remaining = [updates]

    async def connection() -> None:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            while remaining[0] > 0:
                remaining[0] -= 1
                started = time.perf_counter()
                cursor = await conn.execute(CEILING_UPDATE, (offer_id,))
                latencies.append(time.perf_counter() - started)
                if cursor.rowcount != 1:
                    raise SystemExit("the ceiling offer ran out of stock")

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return Run(time.perf_counter() - started, latencies, [])


def ceiling(conninfo: str, offer_id: int, updates: int) -> Run:
    asyncio.run(_ceiling(conninfo, offer_id, updates // 10, CONCURRENCY))  # warm-up
    return asyncio.run(_ceiling(conninfo, offer_id, updates, CONCURRENCY))


# -- the server --------------------------------------------------------------------------------


def start_server(url: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIANFU_")}
    env |= {"TIANFU_DATABASE_URL": url, "TIANFU_LOG_LEVEL": "warning"}
    env |= {"TIANFU_SECRET_KEY": SECRET_KEY}
    command = [sys.executable, "-m", "tianfu", "serve", "--port", str(port), "--workers", "2"]
    return subprocess.Popen([*command, "--no-access-log"], env=env, cwd=workdir)


@dataclass(frozen=True)
class Results:
    rounds: list[Run]
    issue: Run
    ceilings: list[Run]
    problems: list[str]


def measure(conninfo: str, url: str, plan: Plan) -> Results:
    rng = random.Random(20261201)
    shop = Shop(url)
    jar = cookies(url, [f"oBenchUser{n:05d}" for n in range(max(plan.users, plan.issue_requests))])
    hot = shop.offer(stock=HUGE_STOCK, title="天花板")
    port = free_port()
    server = start_server(url, port, Path.cwd())
    rounds: list[Run] = []
    problems: list[str] = []
    try:
        wait_until_both_workers_ready(port, server)
        ceilings = [ceiling(conninfo, hot, plan.ceiling_updates)]
        warm = shop.offer(stock=HUGE_STOCK, title="预热")
        load(port, [claim_request(warm, jar[o]) for o in list(jar)[: plan.warmup]])
        for _ in range(plan.rounds):
            offer_id = shop.offer(stock=plan.stock)
            requests = scenario(offer_id, jar, plan, rng)
            run = load(port, requests)
            rounds.append(run)
            problems += check_answers(run, plan.stock) + shop.check_round(offer_id, plan.stock)
        ample = shop.offer(stock=HUGE_STOCK, title="人人有份")
        firsts = [claim_request(ample, cookie) for cookie in jar.values()]
        issue = load(port, firsts[: plan.issue_requests])
        if any(status != 201 for status, _ in issue.responses):
            problems.append(f"issue run: {Counter(s for s, _ in issue.responses)}")
        ceilings.append(ceiling(conninfo, hot, plan.ceiling_updates))
    finally:
        server.terminate()
        server.wait(timeout=20)
        shop.engine.dispose()
    return Results(rounds, issue, ceilings, problems)


def ms(run: Run, q: float) -> float:
    return float(np.percentile(np.asarray(run.latencies_s), q) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, fewer bare UPDATEs")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    with throwaway_database("tianfu_bench_claims") as conninfo:
        url = prepare_database(conninfo, 0)
        results = measure(conninfo, url, plan)

    # The median round: one round slowed by another process's burst does not set the figure.
    median = sorted(results.rounds, key=lambda run: run.rps)[len(results.rounds) // 2]
    ceiling_ups = statistics.fmean(run.rps for run in results.ceilings)
    ratio = median.rps / ceiling_ups
    issue_ratio = results.issue.rps / ceiling_ups
    print_table(
        f"{CONCURRENCY} connections, 2 workers, PostgreSQL",
        [
            ("what", "requests", "per s", "p50 ms", "p99 ms"),
            *(
                (f"claims, round {n} (stock {plan.stock})", str(len(run.latencies_s)),
                 f"{run.rps:.0f}", f"{ms(run, 50):.1f}", f"{ms(run, 99):.1f}")
                for n, run in enumerate(results.rounds, start=1)
            ),
            ("claims, every one issued", str(len(results.issue.latencies_s)),
             f"{results.issue.rps:.0f}", f"{ms(results.issue, 50):.1f}",
             f"{ms(results.issue, 99):.1f}"),
            *(
                (f"bare UPDATE of one row ({when})", str(len(run.latencies_s)), f"{run.rps:.0f}",
                 f"{ms(run, 50):.2f}", f"{ms(run, 99):.2f}")
                for when, run in zip(("before", "after"), results.ceilings, strict=True)
            ),
        ],
    )  # fmt: skip
    for problem in results.problems:
        print(f"WRONG: {problem}")
    passed = ratio >= TARGET_RATIO and not results.problems
    print(
        f"RESULT claims requests={plan.requests} users={plan.users} stock={plan.stock} "
        f"rps={median.rps:.0f} p50_ms={ms(median, 50):.1f} p99_ms={ms(median, 99):.1f} "
        f"issue_rps={results.issue.rps:.0f} issue_ratio={issue_ratio:.3f} "
        f"ceiling_ups={ceiling_ups:.0f} wrong={len(results.problems)} "
        f"ratio={ratio:.3f} target={TARGET_RATIO} {'PASS' if passed else 'FAIL'}"
    )
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
