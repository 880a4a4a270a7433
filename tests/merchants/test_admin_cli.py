"""`tianfu admin create`: the first bank admin, from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from merchants.models import AuditEntry, PortalAccount, PortalRole
from merchants.passwords import verify_password
from tests.merchants.portal_support import FAST_HASHER
from tianfu import migrate
from tianfu.cli import app
from tianfu.db import create_db_engine
from tianfu.settings import get_settings

PASSWORD = "a long admin password"


@pytest.fixture
def migrated_url(empty_database_url: str) -> str:
    engine = create_db_engine(empty_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    return empty_database_url


def tianfu(
    *args: str, database_url: str, cwd: Path, stdin: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIANFU_")}
    env["TIANFU_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "tianfu", *args], env=env, cwd=cwd, input=stdin,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def accounts_in(database_url: str) -> list[PortalAccount]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(PortalAccount)).all()
            return [PortalAccount(**row._mapping) for row in rows]
    finally:
        engine.dispose()


def test_create_makes_a_bank_admin_from_a_password_on_stdin(
    migrated_url: str, tmp_path: Path
) -> None:
    done = tianfu("admin", "create", "--username", "Ops.Lead", "--password-stdin",
                  database_url=migrated_url, cwd=tmp_path, stdin=PASSWORD + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "bank admin ops.lead created\n"
    (admin,) = accounts_in(migrated_url)
    assert (admin.username, admin.role, admin.merchant_id) == (
        "ops.lead",
        PortalRole.bank_admin,
        None,
    )
    assert admin.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert verify_password(FAST_HASHER, admin.password_hash, PASSWORD)
    engine = create_db_engine(migrated_url)
    with engine.connect() as conn:
        entry = conn.execute(select(AuditEntry)).one()
    engine.dispose()
    assert (entry.action, entry.target_id, entry.ip) == ("account.created", str(admin.id), "local")
    assert entry.actor_label.startswith("cli:")

    again = tianfu("admin", "create", "-u", "ops.lead", "--password-stdin",
                   database_url=migrated_url, cwd=tmp_path, stdin=PASSWORD + "\n")  # fmt: skip
    assert again.returncode == 2
    assert "已被使用" in again.stderr
    assert "Traceback" not in again.stderr


def test_create_refuses_a_weak_password_and_an_unmigrated_database(
    migrated_url: str, tmp_path: Path
) -> None:
    weak = tianfu("admin", "create", "-u", "ops", "--password-stdin",
                  database_url=migrated_url, cwd=tmp_path, stdin="short\n")  # fmt: skip
    assert weak.returncode == 2
    assert "密码至少10个字符" in weak.stderr
    assert accounts_in(migrated_url) == []
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    unmigrated = tianfu("admin", "create", "-u", "ops", "--password-stdin",
                        database_url=fresh, cwd=tmp_path, stdin=PASSWORD + "\n")  # fmt: skip
    assert unmigrated.returncode == 2
    assert "tianfu db upgrade" in unmigrated.stderr


@pytest.fixture
def settings_from_env(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TIANFU_DATABASE_URL", migrated_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("settings_from_env")
def test_create_prompts_twice_and_refuses_two_different_passwords(migrated_url: str) -> None:
    runner = CliRunner()
    differ = runner.invoke(
        app, ["admin", "create", "-u", "ops"], input=f"{PASSWORD}\nother one!!\n"
    )
    assert differ.exit_code == 2
    assert accounts_in(migrated_url) == []
    same = runner.invoke(app, ["admin", "create", "-u", "ops"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert same.exit_code == 0, same.output
    assert PASSWORD not in same.output  # hidden input is not echoed
    assert [a.username for a in accounts_in(migrated_url)] == ["ops"]
