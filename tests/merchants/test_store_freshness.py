"""Freshness across workers, from the portal: a store created, moved and renamed, then closed,
in the portal (one app) is seen that way by another app's nearby search (its own live index,
polling the store change log) within 2 seconds, on each backend. The process-level version of
this, with `tianfu serve` workers, is tests/lbs/test_two_workers.py."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.merchants.conftest import Clients, Committed, portal_test_settings
from tests.merchants.store_support import build_shop, created_id, owner_browser, store_form
from tianfu.app import create_app

pytestmark = pytest.mark.anyio

FRESHNESS_LIMIT_S = 2.0
Seen = Callable[[dict[int, str]], bool]


@pytest.fixture
async def other_worker(portal_db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second worker: its own app and index. In-process transports run no lifespan, so its
    index is built and its poller started here, as the lifespan would."""
    worker = create_app(portal_test_settings(portal_db_url))
    index = worker.state.store_index
    index.build()
    index.start()
    transport = httpx.ASGITransport(app=worker, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://w2.test") as client:
            yield client
    finally:
        index.stop()
        worker.state.engine.dispose()


async def nearby(other: httpx.AsyncClient, point: tuple[float, float]) -> dict[int, str]:
    answer = await other.get(
        "/api/v1/nearby", params={"lat": point[0], "lng": point[1], "radius_m": 200}
    )
    assert answer.status_code == 200, answer.text
    return {store["id"]: store["name"] for store in answer.json()["stores"]}


async def seconds_until(other: httpx.AsyncClient, point: tuple[float, float], seen: Seen) -> float:
    started = time.monotonic()
    while time.monotonic() - started < FRESHNESS_LIMIT_S + 3:
        if seen(await nearby(other, point)):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"not seen at {point} within {FRESHNESS_LIMIT_S + 3} s")


async def test_portal_changes_reach_another_workers_nearby_search_within_2_s(
    clients: Clients, committed: Committed, other_worker: httpx.AsyncClient
) -> None:
    browser, csrf = await owner_browser(clients, build_shop(committed))
    # Where no other test puts a store (the hills west of Chengdu), a spot per run.
    here = (30.90 + secrets.randbelow(900) / 10_000, 103.50 + secrets.randbelow(900) / 10_000)
    there = (here[0] + 0.01, here[1])  # about 1.1 km north
    form = store_form(csrf, name="青城山农家乐", lat=str(here[0]), lng=str(here[1]))
    store_id = created_id(await browser.post("/portal/stores", data=form))

    def named(name: str) -> Seen:
        return lambda found: found.get(store_id) == name

    def gone(found: dict[int, str]) -> bool:
        return store_id not in found

    assert await seconds_until(other_worker, here, named("青城山农家乐")) < FRESHNESS_LIMIT_S

    moved = store_form(csrf, name="青城山农家乐(后山店)", lat=str(there[0]), lng=str(there[1]))
    assert (await browser.post(f"/portal/stores/{store_id}", data=moved)).status_code == 303
    seconds = await seconds_until(other_worker, there, named("青城山农家乐(后山店)"))
    assert seconds < FRESHNESS_LIMIT_S
    assert gone(await nearby(other_worker, here))

    closed = await browser.post(f"/portal/stores/{store_id}/close", data={"csrf_token": csrf})
    assert closed.status_code == 303
    assert await seconds_until(other_worker, there, gone) < FRESHNESS_LIMIT_S
