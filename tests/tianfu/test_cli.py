"""The `tianfu` command as an operator runs it: real processes, real databases, real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from merchants.models import Merchant, Store
from tests.http import free_port
from tianfu.db import create_db_engine


def _environment(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIANFU_")}
    env["TIANFU_DATABASE_URL"] = database_url
    return env


def tianfu(
    *args: str, database_url: str, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tianfu", *args],
        env=_environment(database_url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _counts(database_url: str) -> tuple[int, int]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            stores = conn.execute(select(func.count()).select_from(Store)).scalar_one()
            merchants = conn.execute(select(func.count()).select_from(Merchant)).scalar_one()
    finally:
        engine.dispose()
    return stores, merchants


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    result = tianfu("version", database_url="sqlite:///x.sqlite3", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("tianfu 0.")


def test_db_upgrade_current_and_downgrade(empty_database_url: str, tmp_path: Path) -> None:
    assert tianfu("db", "current", database_url=empty_database_url, cwd=tmp_path).stdout == "base\n"
    upgraded = tianfu("db", "upgrade", database_url=empty_database_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    current = tianfu("db", "current", database_url=empty_database_url, cwd=tmp_path)
    assert current.stdout.strip() not in ("", "base")
    downgraded = tianfu("db", "downgrade", "base", database_url=empty_database_url, cwd=tmp_path)
    assert downgraded.returncode == 0, downgraded.stderr
    assert tianfu("db", "current", database_url=empty_database_url, cwd=tmp_path).stdout == "base\n"


def test_seed_demo_twice_does_not_duplicate(empty_database_url: str, tmp_path: Path) -> None:
    assert tianfu("db", "upgrade", database_url=empty_database_url, cwd=tmp_path).returncode == 0
    first = tianfu("seed", "demo", "--stores", "400", database_url=empty_database_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    after_first = _counts(empty_database_url)
    assert after_first[0] == 400
    assert after_first[1] > 0
    second = tianfu(
        "seed", "demo", "--stores", "400", database_url=empty_database_url, cwd=tmp_path
    )
    assert second.returncode == 0, second.stderr
    assert _counts(empty_database_url) == after_first
    assert "0 stores and 0 merchants created" in second.stderr


def test_seed_demo_refuses_an_unmigrated_database(empty_database_url: str, tmp_path: Path) -> None:
    result = tianfu("seed", "demo", "--stores", "10", database_url=empty_database_url, cwd=tmp_path)
    assert result.returncode == 2
    assert "tianfu db upgrade" in result.stderr


def test_dev_env_writes_fresh_secrets_once(tmp_path: Path) -> None:
    result = tianfu("dev-env", database_url="sqlite:///x.sqlite3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = (tmp_path / ".env").read_text()
    assert "TIANFU_WECHAT_ENCODING_AES_KEY=" in written
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0  # secrets: owner only
    again = tianfu("dev-env", database_url="sqlite:///x.sqlite3", cwd=tmp_path)
    assert again.returncode == 0
    assert (tmp_path / ".env").read_text() == written


def test_serve_answers_healthz_over_http(empty_database_url: str, tmp_path: Path) -> None:
    assert tianfu("db", "upgrade", database_url=empty_database_url, cwd=tmp_path).returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tianfu", "serve", "--port", str(port), "--workers", "2"],
        env=_environment(empty_database_url),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("tianfu serve did not answer within 30 s")
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200
    finally:
        server.terminate()
        try:
            server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def test_nearby_prints_the_nearest_stores(empty_database_url: str, tmp_path: Path) -> None:
    assert tianfu("db", "upgrade", database_url=empty_database_url, cwd=tmp_path).returncode == 0
    seeded = tianfu(
        "seed", "demo", "--stores", "300", database_url=empty_database_url, cwd=tmp_path
    )
    assert seeded.returncode == 0, seeded.stderr
    engine = create_db_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            lng, lat, name = conn.execute(
                select(func.ST_X(Store.location_gcj02), func.ST_Y(Store.location_gcj02), Store.name)
                .join(Merchant)
                .where(Store.status == "open", Merchant.status == "approved")
                .order_by(Store.id)
                .limit(1)
            ).one()
    finally:
        engine.dispose()
    result = tianfu(
        "nearby", "--lat", str(lat), "--lng", str(lng), "--radius-m", "1", "--limit", "1",
        database_url=empty_database_url, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 stores within 1 m" in result.stdout
    assert name[:6] in result.stdout  # the table may wrap long names


def test_nearby_refuses_bad_coordinates(tmp_path: Path) -> None:
    result = tianfu(
        "nearby", "--lat", "30.6", "--lng", "104.0", "--coord", "mars",
        database_url="sqlite:///x.sqlite3", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "coord" in result.stderr


def test_coupons_expire_ends_what_is_due_once(empty_database_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from coupons.models import Offer, OfferStatus
    from tests.builders import make_offer
    from tianfu.db import make_session_factory, session_scope

    assert tianfu("db", "upgrade", database_url=empty_database_url, cwd=tmp_path).returncode == 0
    engine = create_db_engine(empty_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            ended_yesterday = datetime.now(UTC) - timedelta(days=1)
            make_offer(session, valid_from=ended_yesterday - timedelta(days=7))
            offer = make_offer(session, valid_from=ended_yesterday - timedelta(days=7))
            offer.valid_until = ended_yesterday  # written directly: the service refuses the past
            offer_id = offer.id
        first = tianfu("coupons", "expire", database_url=empty_database_url, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert "expired 1 offer(s)" in first.stderr
        again = tianfu("coupons", "expire", database_url=empty_database_url, cwd=tmp_path)
        assert "expired 0 offer(s)" in again.stderr
        with make_session_factory(engine)() as session:
            expired = session.get(Offer, offer_id)
            assert expired is not None
            assert expired.status is OfferStatus.expired
    finally:
        engine.dispose()
