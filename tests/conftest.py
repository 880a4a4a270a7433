"""Real databases for every test run: a temporary SQLite + SpatiaLite file and a
PostgreSQL + PostGIS database with a random name (dropped afterwards), both migrated to head
once per run.

Data-layer tests take `db_session` and run on both backends, each inside a transaction that is
rolled back. Tests that commit (CLI, concurrency) take `empty_database_url` for a database of
their own.
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tianfu import migrate
from tianfu.db import create_db_engine

BACKENDS = ("sqlite", "postgresql")
POSTGRES_ADMIN_URL = os.environ.get(
    "TIANFU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class PostgresDatabases:
    """Creates databases with random names and PostGIS enabled, and drops them at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create(self, *, postgis: bool = True) -> str:
        name = f"tianfu_test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = self._url_for(name)
        if postgis:
            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        return url

    def _url_for(self, name: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(POSTGRES_ADMIN_URL)
    yield databases
    databases.drop_all()


def new_database_url(backend: str, tmp_path: Path, postgres_databases: PostgresDatabases) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'tianfu-{secrets.token_hex(4)}.sqlite3'}"
    return postgres_databases.create()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def engine(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_databases: PostgresDatabases,
) -> Iterator[Engine]:
    url = new_database_url(backend, tmp_path_factory.mktemp(backend), postgres_databases)
    db_engine = create_db_engine(url)
    migrate.upgrade(db_engine)
    yield db_engine
    db_engine.dispose()


@pytest.fixture
def db_session(engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back at the end, even where the code under test commits."""
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            session.close()
            transaction.rollback()


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path, postgres_databases: PostgresDatabases) -> str:
    """A database of the test's own, not migrated, for tests that commit or run migrations."""
    return new_database_url(backend, tmp_path, postgres_databases)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for a module's browser tests (tests/h5_browser.py)."""
    from tests.h5_browser import launch  # Playwright only where a test asks for a browser

    with launch() as chromium:
        yield chromium


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tagged on the item so the reports carry it back, from xdist workers too.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "backend" in callspec.params:
            item.user_properties.append(("backend", callspec.params["backend"]))
        elif item.get_closest_marker("postgres_only") is not None:
            item.user_properties.append(("backend", "postgresql"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many tests ran on each backend, so a run that silently skipped one shows it."""
    counts: Counter[tuple[str, str]] = Counter()
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            backend_name = dict(getattr(report, "user_properties", [])).get("backend")
            if backend_name is None:
                continue
            # One count per test: its call phase, or the phase that skipped or broke it.
            if report.when == "call" or outcome in ("error", "skipped"):
                counts[(str(backend_name), outcome)] += 1
    terminalreporter.section("tests per database backend")
    for name in BACKENDS:
        parts = [f"{counts[(name, o)]} {o}" for o in ("passed", "failed", "error", "skipped")]
        terminalreporter.write_line(f"{name}: " + ", ".join(parts))
