"""The cinema API through the real app (in-process ASGI), on a database of each backend with
committed data, the app's clock fixed; WeChat H5 sessions minted as the OAuth callback would."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lbs.h5_session import session_cookie_header
from tests.cinema.builders import NOW, make_showtime
from tests.conftest import PostgresDatabases, new_database_url
from tests.http import asgi_client
from tianfu import migrate
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory, session_scope
from tianfu.settings import TianfuSettings, load_settings

pytestmark = pytest.mark.anyio

SECRET_KEY = "cinema-api-tests-secret-key-0123456789abcdef"
ALICE = "oAlice00000000000000000000001"
BOB = "oBob0000000000000000000000001"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> str:
    url = new_database_url(backend, tmp_path_factory.mktemp("cinema-api"), postgres_databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def showtime_id(database_url: str) -> int:
    """A showtime of its own for each test, in a cinema of its own."""
    engine = create_db_engine(database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return make_showtime(session).id
    finally:
        engine.dispose()


@pytest.fixture
def settings(database_url: str) -> TianfuSettings:
    return load_settings(database_url=database_url, secret_key=SECRET_KEY)


@pytest.fixture
async def client(settings: TianfuSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    app.state.cinema_clock = lambda: NOW
    async for http in asgi_client(app):
        yield http


class Viewer:
    def __init__(self, http: httpx.AsyncClient, settings: TianfuSettings, openid: str) -> None:
        self.http = http
        cookie = session_cookie_header(settings, openid, clock=time.time).split(";", 1)[0]
        self.headers = {"Cookie": cookie}

    async def seats(self, showtime_id: int) -> dict[str, str]:
        response = await self.http.get(
            f"/api/v1/showtimes/{showtime_id}/seats", headers=self.headers
        )
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["rows"]
        return {cell["seat_id"]: cell["state"] for row in rows for cell in row["cells"] if cell}

    async def hold(self, showtime_id: int, *seats: str) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/showtimes/{showtime_id}/holds",
            json={"seats": list(seats)},
            headers=self.headers,
        )


async def test_the_seat_map_shows_who_has_what(
    client: httpx.AsyncClient, settings: TianfuSettings, showtime_id: int
) -> None:
    alice, bob = Viewer(client, settings, ALICE), Viewer(client, settings, BOB)
    assert (await alice.hold(showtime_id, "A1", "A2")).status_code == 201
    mine, theirs = await alice.seats(showtime_id), await bob.seats(showtime_id)
    assert (mine["A1"], theirs["A1"], mine["A3"], mine["C2"]) == ("mine", "held", "free", "blocked")
    response = await client.get(f"/api/v1/showtimes/{showtime_id}/seats", headers=bob.headers)
    body = response.json()
    assert (body["film_title"], body["hall_name"], body["on_sale"]) == ("熊猫归来", "1号厅", True)
    assert body["prices_fen"]["V"] == 6900
    couple = body["rows"][3]["cells"][0]
    assert (couple["seat_id"], couple["kind"], couple["zone"]) == ("D1", "couple_left", "V")


async def test_a_hold_answers_what_it_holds_and_refusals_say_why(
    client: httpx.AsyncClient, settings: TianfuSettings, showtime_id: int
) -> None:
    alice, bob = Viewer(client, settings, ALICE), Viewer(client, settings, BOB)
    held = await alice.hold(showtime_id, "B2", "B1")
    assert held.status_code == 201
    body = held.json()
    assert [seat["seat_id"] for seat in body["seats"]] == ["B1", "B2"]
    assert (body["amount_fen"], body["status"]) == (11800, "held")
    assert body["expires_at"].startswith("2026-12-01T04:15:00")  # the order TTL: 15 minutes
    taken = await bob.hold(showtime_id, "B2", "B3")
    assert taken.status_code == 409
    assert taken.json() == {
        "error": "seats_taken",
        "detail": "B2 座已售出或已被他人锁定，请重新选择",
    }
    stranding = await bob.hold(showtime_id, "A2", "A3")
    assert stranding.status_code == 422
    assert stranding.json()["error"] == "seat_selection_invalid"
    anonymous = await client.post(f"/api/v1/showtimes/{showtime_id}/holds", json={"seats": ["A1"]})
    assert anonymous.status_code == 401


async def test_a_hold_is_released_or_checked_out(
    client: httpx.AsyncClient, settings: TianfuSettings, showtime_id: int
) -> None:
    alice = Viewer(client, settings, ALICE)
    first = (await alice.hold(showtime_id, "D1", "D2")).json()
    released = await client.delete(f"/api/v1/holds/{first['hold_id']}", headers=alice.headers)
    assert released.json()["status"] == "released"
    assert (await alice.seats(showtime_id))["D1"] == "free"
    second = (await alice.hold(showtime_id, "D1", "D2")).json()
    checkout = await client.post(
        f"/api/v1/holds/{second['hold_id']}/checkout", json={}, headers=alice.headers
    )
    assert checkout.status_code == 201, checkout.text
    order = checkout.json()
    assert (order["total_fen"], order["payable_fen"], order["status"]) == (13800, 13800, "created")
    assert order["expires_at"] == second["expires_at"]
