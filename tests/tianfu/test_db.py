from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from tianfu.db import create_db_engine, sqlite_driver_module


def test_connections_are_set_up_for_the_backend(engine: Engine) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 30_000
            assert conn.execute(text("SELECT spatialite_version()")).scalar_one()
            # WGS84-only metadata: a few hundred reference systems, not the full EPSG table.
            assert conn.execute(text("SELECT count(*) FROM spatial_ref_sys")).scalar_one() < 1000
        else:
            assert engine.dialect.name == "postgresql"
            assert conn.execute(text("SELECT postgis_version()")).scalar_one()
        assert (
            conn.execute(text("SELECT ST_SRID(ST_GeomFromText('POINT(1 2)', 4326))")).scalar_one()
            == 4326
        )


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
