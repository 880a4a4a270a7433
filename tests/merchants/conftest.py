"""Fixtures of the partner portal's HTTP tests: a committed database of each backend per
module, the real app on it (in process), and clients with cookie jars of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from tests.conftest import PostgresDatabases, new_database_url
from tests.merchants.portal_support import PORTAL_OVERRIDES
from tianfu import migrate
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory, session_scope
from tianfu.settings import TianfuSettings, load_settings

SECRET_KEY = "portal-tests-secret-key-0123456789abcdef-xyz"
Committed = Callable[[], AbstractContextManager[Session]]
Clients = Callable[[], httpx.AsyncClient]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def portal_db_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> str:
    url = new_database_url(backend, tmp_path_factory.mktemp("portal"), postgres_databases)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def committed(portal_db_url: str) -> Iterator[Committed]:
    """`with committed() as session:` builds test data in a transaction of its own, committed."""
    engine = create_db_engine(portal_db_url)
    factory = make_session_factory(engine)

    @contextmanager
    def scope() -> Iterator[Session]:
        with session_scope(factory) as session:
            yield session

    yield scope
    engine.dispose()


def portal_test_settings(url: str, **overrides: object) -> TianfuSettings:
    return load_settings(database_url=url, secret_key=SECRET_KEY, **(PORTAL_OVERRIDES | overrides))


@pytest.fixture
def portal_app(portal_db_url: str) -> Iterator[FastAPI]:
    app = create_app(portal_test_settings(portal_db_url))
    yield app
    app.state.engine.dispose()


@pytest.fixture
async def clients(portal_app: FastAPI) -> AsyncIterator[Clients]:
    """New clients of the app, each like a browser of its own (its own cookies)."""
    opened: list[httpx.AsyncClient] = []

    def new_client() -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=portal_app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://tianfu.test")
        opened.append(client)
        return client

    yield new_client
    for client in opened:
        await client.aclose()
