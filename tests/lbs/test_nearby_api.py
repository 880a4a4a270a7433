"""`GET /api/v1/nearby` through the real app, on a database of each backend with committed data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from lbs.coords import gcj02_to_bd09, gcj02_to_wgs84
from merchants.models import MerchantStatus, Store
from merchants.opening_hours import OpeningHours
from merchants.service import create_store, set_merchant_status
from tests.builders import make_merchant
from tests.conftest import PostgresDatabases, new_database_url
from tests.http import asgi_client
from tianfu import migrate
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory, session_scope
from tianfu.settings import load_settings

pytestmark = pytest.mark.anyio

TIANFU_SQUARE = (30.6574, 104.0661)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class Town:
    url: str
    hotpot_id: int  # ~100 m east of Tianfu Square, always open
    coffee_id: int  # ~600 m north, open 08:00-09:00 only
    suspended_id: int  # at the square itself, merchant suspended
    far_id: int  # ~12 km south


@pytest.fixture(scope="module")
def town(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_databases: PostgresDatabases,
) -> Town:
    url = new_database_url(backend, tmp_path_factory.mktemp("town"), postgres_databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:

        def store(category: str, lat: float, lng: float, hours: OpeningHours) -> Store:
            merchant = make_merchant(session, name=f"{category}商户", category_code=category)
            return create_store(
                session,
                merchant_id=merchant.id,
                name=f"{category}店",
                address="成都市青羊区人民南路一段1号",
                lat_gcj02=lat,
                lng_gcj02=lng,
                opening_hours=hours,
            )

        always = OpeningHours.always_open()
        early_bird = OpeningHours.daily(("08:00", "09:00"))
        hotpot = store("hotpot", TIANFU_SQUARE[0], TIANFU_SQUARE[1] + 0.00104, always)
        coffee = store("coffee", TIANFU_SQUARE[0] + 0.0054, TIANFU_SQUARE[1], early_bird)
        suspended = store("hotpot", TIANFU_SQUARE[0], TIANFU_SQUARE[1], always)
        set_merchant_status(session, suspended.merchant_id, status=MerchantStatus.suspended)
        far = store("supermarket", 30.5457, 104.0694, always)
        town = Town(url, hotpot.id, coffee.id, suspended.id, far.id)
    engine.dispose()
    return town


@pytest.fixture
async def client(town: Town) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_settings(database_url=town.url))
    app.state.store_index.build()  # ASGITransport runs no lifespan, so build it here
    async for http in asgi_client(app):
        yield http


def _ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [store["id"] for store in response.json()["stores"]]


async def test_nearest_listed_stores_first(client: httpx.AsyncClient, town: Town) -> None:
    response = await client.get("/api/v1/nearby", params={"lat": 30.6574, "lng": 104.0661})
    assert _ids(response) == [town.hotpot_id, town.coffee_id]
    first = response.json()["stores"][0]
    assert first["distance_m"] == pytest.approx(100, abs=2)
    assert first["distance_text"] == f"{round(first['distance_m'])}米"
    assert first["category"] == {"code": "hotpot", "name": "火锅"}
    assert first["coord"] == "gcj02"
    assert (first["lat"], first["lng"]) == pytest.approx((30.6574, 104.06714), abs=1e-6)
    assert first["open_now"] is True
    assert first["opening_hours_text"] == "24小时营业"


async def test_radius_and_limit(client: httpx.AsyncClient, town: Town) -> None:
    near = await client.get(
        "/api/v1/nearby", params={"lat": 30.6574, "lng": 104.0661, "radius_m": 300}
    )
    assert _ids(near) == [town.hotpot_id]
    wide = await client.get(
        "/api/v1/nearby", params={"lat": 30.6574, "lng": 104.0661, "radius_m": 50000, "limit": 2}
    )
    assert _ids(wide) == [town.hotpot_id, town.coffee_id]
    widest = await client.get(
        "/api/v1/nearby", params={"lat": 30.6574, "lng": 104.0661, "radius_m": 50000}
    )
    assert _ids(widest) == [town.hotpot_id, town.coffee_id, town.far_id]


async def test_category_filter_includes_subcategories(
    client: httpx.AsyncClient, town: Town
) -> None:
    food = await client.get(
        "/api/v1/nearby", params={"lat": 30.6574, "lng": 104.0661, "category": "food"}
    )
    assert _ids(food) == [town.hotpot_id]
    coffee = await client.get(
        "/api/v1/nearby", params={"lat": 30.6574, "lng": 104.0661, "category": "coffee"}
    )
    assert _ids(coffee) == [town.coffee_id]


async def test_wgs84_and_bd09_queries_find_the_same_stores(
    client: httpx.AsyncClient, town: Town
) -> None:
    for coord, convert in (("wgs84", gcj02_to_wgs84), ("bd09", gcj02_to_bd09)):
        lat, lng = convert(*TIANFU_SQUARE)
        response = await client.get(
            "/api/v1/nearby", params={"lat": lat, "lng": lng, "coord": coord}
        )
        assert _ids(response) == [town.hotpot_id, town.coffee_id]
        first = response.json()["stores"][0]
        assert first["coord"] == coord
        assert first["distance_m"] == pytest.approx(100, abs=2)
        expected = convert(TIANFU_SQUARE[0], TIANFU_SQUARE[1] + 0.00104)
        assert (first["lat"], first["lng"]) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": 91, "lng": 104}, "lat"),
        ({"lat": 30, "lng": -181}, "lng"),
        ({"lat": "thirty", "lng": 104}, "lat"),
        ({"lng": 104}, "lat"),
        ({"lat": 30, "lng": 104, "coord": "mars"}, "coord"),
        ({"lat": 30, "lng": 104, "radius_m": 50001}, "radius_m"),
        ({"lat": 30, "lng": 104, "radius_m": 0}, "radius_m"),
        ({"lat": 30, "lng": 104, "limit": 101}, "limit"),
        ({"lat": "nan", "lng": 104}, "lat"),
    ],
)
async def test_bad_parameters_are_a_clear_422(
    client: httpx.AsyncClient, params: dict[str, str | int], field: str
) -> None:
    response = await client.get("/api/v1/nearby", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_input"
    assert any(problem["field"].endswith(field) for problem in body["detail"])


async def test_unknown_category_is_a_422_naming_the_known_ones(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/nearby", params={"lat": 30.6574, "lng": 104.0661, "category": "casino"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "unknown_category"
    assert "hotpot" in response.json()["detail"]


async def test_not_ready_until_the_index_is_built(town: Town) -> None:
    app = create_app(load_settings(database_url=town.url))
    async for http in asgi_client(app):
        assert (await http.get("/readyz")).status_code == 503
        response = await http.get("/api/v1/nearby", params={"lat": 30.6574, "lng": 104.0661})
        assert response.status_code == 503
        assert response.json()["error"] == "index_not_ready"
        app.state.store_index.build()
        assert (await http.get("/readyz")).status_code == 200
