"""Freshness across processes: each worker has its own index, kept fresh from the change log.

Two `tianfu serve` processes share one PostgreSQL database. A store created (then moved) by a
third process must be found by both workers' `/api/v1/nearby` within 2 seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from merchants.opening_hours import OpeningHours
from merchants.service import create_store, move_store
from tests.builders import make_merchant
from tests.conftest import PostgresDatabases
from tests.workers import serve_workers
from tianfu import migrate
from tianfu.db import create_db_engine, make_session_factory, session_scope

pytestmark = pytest.mark.postgres_only

FRESHNESS_LIMIT_S = 2.0
QINGCHENG_MOUNTAIN = (30.9035, 103.5710)  # far from everything else in the database
DUJIANGYAN = (30.9986, 103.6193)


@pytest.fixture
def database_url(postgres_databases: PostgresDatabases) -> str:
    url = postgres_databases.create()
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[list[str]]:
    with serve_workers(database_url, tmp_path) as bases:
        yield bases


def _seconds_until_found(bases: list[str], store_id: int, point: tuple[float, float]) -> float:
    started = time.monotonic()
    waiting = set(bases)
    with httpx.Client(timeout=2) as http:
        while waiting and time.monotonic() - started < FRESHNESS_LIMIT_S + 3:
            for base in list(waiting):
                response = http.get(
                    f"{base}/api/v1/nearby",
                    params={"lat": point[0], "lng": point[1], "radius_m": 200},
                )
                assert response.status_code == 200, response.text
                if store_id in [store["id"] for store in response.json()["stores"]]:
                    waiting.discard(base)
            time.sleep(0.05)
    assert not waiting, f"not found by {sorted(waiting)}"
    return time.monotonic() - started


def test_a_store_created_and_moved_elsewhere_is_found_by_every_worker_within_2_s(
    database_url: str, workers: list[str]
) -> None:
    engine = create_db_engine(database_url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as session:
            merchant = make_merchant(session, name="青城山农家乐", category_code="food")
            store_id = create_store(
                session,
                merchant_id=merchant.id,
                name="青城山农家乐(前山店)",
                address="成都市都江堰市青城山镇1号",
                lat_gcj02=QINGCHENG_MOUNTAIN[0],
                lng_gcj02=QINGCHENG_MOUNTAIN[1],
                opening_hours=OpeningHours.always_open(),
            ).id
        assert _seconds_until_found(workers, store_id, QINGCHENG_MOUNTAIN) < FRESHNESS_LIMIT_S

        with session_scope(factory) as session:
            move_store(session, store_id, lat_gcj02=DUJIANGYAN[0], lng_gcj02=DUJIANGYAN[1])
        assert _seconds_until_found(workers, store_id, DUJIANGYAN) < FRESHNESS_LIMIT_S
    finally:
        engine.dispose()
