from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, OperationalError

from tests.http import asgi_client
from tianfu import migrate
from tianfu.app import create_app
from tianfu.db import create_db_engine
from tianfu.errors import ConflictError
from tianfu.settings import load_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _app_for(url: str) -> FastAPI:
    return create_app(load_settings(database_url=url))


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = _app_for(_url(engine))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @app.get("/locked")
    def locked() -> None:
        # What SQLAlchemy raises when SQLite's write lock outlasts the busy timeout.
        raise OperationalError("UPDATE orders SET …", {}, Exception("database is locked"))

    @app.get("/out-of-range")
    def out_of_range() -> None:
        # What SQLAlchemy raises when PostgreSQL refuses a value (an id past INTEGER's range).
        raise DataError("SELECT … WHERE id = %(id)s", {"id": 2**40}, Exception("out of range"))

    @app.get("/conflict")
    def conflict() -> None:
        raise ConflictError("offer already claimed", code="coupon_already_claimed")

    async for http in asgi_client(app):
        yield http


async def test_healthz_reports_database_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_readyz_waits_for_the_store_index(engine: Engine) -> None:
    app = _app_for(_url(engine))
    async for http in asgi_client(app):
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert set(response.json()["checks"]) == {"store_index"}
        app.state.store_index.build()
        response = await http.get("/readyz")
        assert response.status_code == 200
        assert response.json()["status"] == "ready"


async def test_readyz_is_not_ready_before_migrations(empty_database_url: str) -> None:
    async for http in asgi_client(_app_for(empty_database_url)):
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert "tianfu db upgrade" in response.json()["checks"]["database_schema"]
        assert (await http.get("/healthz")).status_code == 200

    engine = create_db_engine(empty_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    app = _app_for(empty_database_url)
    app.state.store_index.build()
    async for http in asgi_client(app):
        assert (await http.get("/readyz")).status_code == 200


async def test_healthz_fails_when_the_database_is_unreachable() -> None:
    app = _app_for("postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    async for http in asgi_client(app):
        response = await http.get("/healthz")
        assert response.status_code == 503
        assert response.json()["database"] == "unreachable"


async def test_domain_errors_render_as_code_and_detail(client: httpx.AsyncClient) -> None:
    response = await client.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {"error": "coupon_already_claimed", "detail": "offer already claimed"}


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_a_busy_database_is_a_503_to_retry_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.get("/locked")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"error": "database_unavailable", "detail": "系统繁忙，请稍后重试"}
    assert "UPDATE" not in response.text


async def test_a_value_the_database_refuses_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/out-of-range")
    assert response.status_code == 422
    assert response.json() == {"error": "invalid_input", "detail": "参数超出范围"}


async def test_unexpected_errors_hide_their_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "internal server error"}
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
