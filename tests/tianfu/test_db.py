from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from tianfu.db import create_db_engine, sqlite_driver_module


def test_sqlite_connections_use_wal_foreign_keys_and_spatialite(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert conn.execute(text("SELECT spatialite_version()")).scalar_one()
        # WGS84-only metadata: a few hundred reference systems, not the full EPSG table.
        assert conn.execute(text("SELECT count(*) FROM spatial_ref_sys")).scalar_one() < 1000


def test_postgres_has_postgis(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostGIS")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT postgis_version()")).scalar_one()


def test_sqlite_savepoints_roll_back_only_their_part(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # pysqlite's own transaction handling would silently not roll back here; tianfu.db takes over.
    path = tmp_path_factory.mktemp("savepoint") / "t.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        nested = conn.begin_nested()
        conn.execute(text("INSERT INTO t VALUES (2)"))
        nested.rollback()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM t")).scalars().all() == [1]
    engine.dispose()


def test_the_sqlite_driver_can_load_extensions() -> None:
    module = sqlite_driver_module()
    assert hasattr(module.Connection, "enable_load_extension")
