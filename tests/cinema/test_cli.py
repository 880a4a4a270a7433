"""`tianfu cinema …` as an operator runs it, in a process of its own, on both databases: import
a hall (text and JSON layouts), add a film, schedule a showtime at Beijing time, show the day;
and the refusals, which name the problem and change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cinema.layout import parse_text_layout, to_json
from cinema.models import Film, Hall, Showtime
from tests.builders import make_store
from tests.cinema.builders import make_cinema
from tianfu import migrate
from tianfu.db import create_db_engine, make_session_factory, session_scope

HALL_TEXT = """
# 9号厅: screen above row A
front:  A | w s s _ s s s s _ s s |
golden: B | s s s _ s s s s _ s s |
golden: C | x s s _ s s s s _ s s |
couple: D | ( ) _ ( ) ( ) _ ( ) |
"""


@pytest.fixture
def cinema_db(empty_database_url: str) -> tuple[str, int, int]:
    """A migrated database with a cinema and a hot-pot restaurant: (url, cinema, restaurant)."""
    engine = create_db_engine(empty_database_url)
    migrate.upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        cinema, restaurant = make_cinema(session), make_store(session)
        ids = (cinema.id, restaurant.id)
    engine.dispose()
    return empty_database_url, *ids


def tianfu(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIANFU_")}
    env["TIANFU_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "tianfu", "cinema", *args], env=env, cwd=cwd,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def count(url: str, model: type[Hall] | type[Film] | type[Showtime]) -> int:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())
    finally:
        engine.dispose()


def test_an_operator_sets_up_a_hall_a_film_and_a_showtime(
    cinema_db: tuple[str, int, int], tmp_path: Path
) -> None:
    url, cinema, _ = cinema_db
    layout = tmp_path / "hall9.txt"
    layout.write_text(HALL_TEXT, encoding="utf-8")
    done = tianfu(url, tmp_path, "import-hall", str(cinema), "9号厅", str(layout))
    assert done.returncode == 0, done.stderr
    assert "A | w s s _ s s s s _ s s |" in done.stdout  # what was understood, drawn back
    assert "C | x s s _ s s s s _ s s |" in done.stdout
    assert "34 seats to sell (couple 8, front 9, golden 17)" in done.stdout
    hall_id = int(done.stdout.split("hall ", 1)[1].split()[0])

    film = tianfu(url, tmp_path, "add-film", "熊猫归来", "--runtime", "118", "--rating", "9.1")
    assert film.returncode == 0, film.stderr
    film_id = int(film.stdout.split()[1])

    scheduled = tianfu(
        url, tmp_path, "schedule", str(hall_id), str(film_id), "2026-12-24 19:30",
        "--price", "front=3900", "--price", "golden=5900", "--price", "couple=6900",
    )  # fmt: skip
    assert scheduled.returncode == 0, scheduled.stderr
    assert "2026-12-24 19:30–21:28, sales close 19:20 (Beijing time)" in scheduled.stdout
    engine = create_db_engine(url)
    with engine.connect() as conn:
        starts_at, prices = conn.execute(select(Showtime.starts_at, Showtime.prices_fen)).one()
    engine.dispose()
    assert starts_at == datetime(2026, 12, 24, 11, 30, tzinfo=UTC)
    assert prices == {"front": 3900, "golden": 5900, "couple": 6900}

    shown = tianfu(url, tmp_path, "show", str(cinema), "--day", "2026-12-24")
    assert shown.returncode == 0, shown.stderr
    assert "熊猫归来" in shown.stdout
    assert "19:30" in shown.stdout
    assert "34" in shown.stdout  # every seat left

    showtime_id = scheduled.stdout.split()[1].rstrip(":")
    called_off = tianfu(url, tmp_path, "cancel", showtime_id, "--yes")
    assert called_off.returncode == 0, called_off.stderr
    assert "cancelled: 0 hold(s) released, 0 refund(s) requested (0.00 yuan)" in called_off.stdout
    engine = create_db_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(Showtime.status)).scalar_one() == "cancelled"
    engine.dispose()


def test_the_json_layout_imports_the_same_hall(
    cinema_db: tuple[str, int, int], tmp_path: Path
) -> None:
    url, cinema, _ = cinema_db
    layout = tmp_path / "hall9.json"
    layout.write_text(json.dumps(to_json(parse_text_layout(HALL_TEXT))), encoding="utf-8")
    done = tianfu(url, tmp_path, "import-hall", str(cinema), "9号厅", str(layout))
    assert done.returncode == 0, done.stderr
    assert "34 seats to sell (couple 8, front 9, golden 17)" in done.stdout


def test_refusals_name_the_problem_and_change_nothing(
    cinema_db: tuple[str, int, int], tmp_path: Path
) -> None:
    url, cinema, restaurant = cinema_db
    good = tmp_path / "good.txt"
    good.write_text(HALL_TEXT, encoding="utf-8")
    broken = tmp_path / "broken.txt"
    broken.write_text("A | s s ( s |\n", encoding="utf-8")
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"rows": [', encoding="utf-8")
    for args, says in (
        (("import-hall", str(restaurant), "1号厅", str(good)), "不是电影院"),
        (("import-hall", str(cinema), "1号厅", str(broken)), "座位图有误：line 1"),
        (("import-hall", str(cinema), "1号厅", str(bad_json)), "not valid JSON"),
        (("import-hall", str(cinema), "1号厅", str(good), "--zone", "front"), "KEY=VALUE"),
    ):
        done = tianfu(url, tmp_path, *args)
        assert done.returncode == 2, done.stdout
        assert says in done.stderr
    assert count(url, Hall) == 0

    done = tianfu(url, tmp_path, "import-hall", str(cinema), "1号厅", str(good))
    hall_id = done.stdout.split("hall ", 1)[1].split()[0]
    film_id = tianfu(url, tmp_path, "add-film", "熊猫归来", "--runtime", "118").stdout.split()[1]
    for when, prices, says in (
        ("2026-12-24 19:30", ["front=3900"], "票价缺少区域：couple、golden"),
        ("12/24 19:30", ["front=1", "golden=1", "couple=1"], "YYYY-MM-DD HH:MM"),
        ("2026-12-24 19:30", ["front=39.5", "golden=1", "couple=1"], "whole fen"),
    ):
        price_args = [arg for price in prices for arg in ("--price", price)]
        done = tianfu(url, tmp_path, "schedule", hall_id, film_id, when, *price_args)
        assert done.returncode == 2, done.stdout
        assert says in done.stderr
    assert count(url, Showtime) == 0
