from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from tianfu import migrate
from tianfu.db import create_db_engine
from tianfu.migrate import include_object
from tianfu.models import Base

OUR_TABLES = {"categories", "merchants", "stores", "store_changes", "store_change_counter"}


def _our_tables(engine: Engine) -> set[str]:
    return OUR_TABLES & set(inspect(engine).get_table_names())


def test_upgrade_downgrade_upgrade_round_trip(empty_database_url: str) -> None:
    engine = create_db_engine(empty_database_url)
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert _our_tables(engine) == OUR_TABLES

        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert _our_tables(engine) == set()

        migrate.upgrade(engine)
        assert _our_tables(engine) == OUR_TABLES
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM categories")).scalar_one() == 14
    finally:
        engine.dispose()


def test_every_migration_step_downgrades_cleanly(empty_database_url: str) -> None:
    from alembic.script import ScriptDirectory

    engine = create_db_engine(empty_database_url)
    try:
        script = ScriptDirectory.from_config(migrate.alembic_config())
        revisions = [rev.revision for rev in script.walk_revisions("base", "heads")][::-1]
        for revision in revisions:
            migrate.upgrade(engine, revision)
        for revision in reversed(revisions):
            assert migrate.current_revision(engine) == revision
            migrate.downgrade(engine, "-1")
        assert _our_tables(engine) == set()
    finally:
        engine.dispose()


def test_models_match_the_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"include_object": include_object, "compare_type": True},
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
