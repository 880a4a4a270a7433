"""Engines and sessions for the two backends: SQLite + SpatiaLite (embedded) and
PostgreSQL + PostGIS.

One transaction per request or job, committed in one place (`session_scope` or the request
dependency); services only flush.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from geoalchemy2.admin.dialects.sqlite import init_spatialite
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from tianfu.settings import TianfuSettings

SQLITE_BUSY_TIMEOUT_MS = 30_000


def sqlite_driver_module() -> ModuleType:
    """The stdlib sqlite3 if it can load extensions, else pysqlite3 (pyenv builds often cannot)."""
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        import pysqlite3.dbapi2 as pysqlite3_dbapi
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "this Python's sqlite3 cannot load SpatiaLite and pysqlite3 is not installed "
            "(pip install pysqlite3-binary)"
        ) from exc
    module: ModuleType = pysqlite3_dbapi
    return module


def _prepare_sqlite_connection(dbapi_conn: Any, spatialite_library: str) -> None:
    dbapi_conn.enable_load_extension(True)
    try:
        dbapi_conn.load_extension(spatialite_library)
    except Exception as exc:
        raise RuntimeError(
            f"cannot load SpatiaLite ({spatialite_library}): install libsqlite3-mod-spatialite "
            "or set TIANFU_SPATIALITE_LIBRARY"
        ) from exc
    finally:
        dbapi_conn.enable_load_extension(False)
    cursor = dbapi_conn.cursor()
    # WAL lets readers run while one writer writes; NORMAL is durable across application
    # crashes in WAL mode and much faster than FULL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # 64 MiB of page cache (negative = KiB): the spatial index's R*Tree pages stay in memory.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()
    # WGS84-only metadata: the full EPSG table takes seconds to build; GCJ-02 is stored as 4326.
    init_spatialite(dbapi_conn, transaction=True, init_mode="WGS84")


def create_db_engine(
    url: str | URL, *, spatialite_library: str = "mod_spatialite", **kwargs: Any
) -> Engine:
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, module=sqlite_driver_module(), **kwargs)
        # pysqlite's own transaction handling issues BEGIN lazily and never for DDL; let
        # SQLAlchemy emit BEGIN itself so savepoints and DDL in migrations are transactional.
        event.listen(engine, "connect", _sqlite_on_connect(spatialite_library))
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # No ping before each checkout: it is a round trip on every request. A connection that died
    # (a server restart) fails one request; SQLAlchemy then sees the disconnect and recycles
    # every pooled connection opened before it.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_recycle", 3600)
    return create_engine(url, **kwargs)


def _sqlite_on_connect(spatialite_library: str) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        _prepare_sqlite_connection(dbapi_conn, spatialite_library)

    return on_connect


def _sqlite_on_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def engine_from_settings(settings: TianfuSettings, **kwargs: Any) -> Engine:
    return create_db_engine(
        settings.sqlalchemy_url, spatialite_library=settings.spatialite_library, **kwargs
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def upsert_insert(dialect: str) -> Any:
    """The backend's own INSERT construct, which has ON CONFLICT (DO NOTHING / DO UPDATE) on
    both supported backends; `dialect` is `session.get_bind().dialect.name`."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert
