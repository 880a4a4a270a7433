"""`tianfu cinema …`: a cinema's halls, films and showtimes from the command line, for the bank's
operators until the portal edits them: import a hall's seat map (text or JSON layout), add a
film, schedule a showtime at Beijing time with a price per zone, and show a cinema's day."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from cinema import booking, catalog, listings
from cinema.layout import SeatKind, SeatMap
from cinema.models import Hall
from merchants.opening_hours import SHANGHAI
from tianfu import migrate
from tianfu.cli_support import fail, settings_or_fail
from tianfu.db import engine_from_settings, make_session_factory, session_scope
from tianfu.errors import TianfuError
from tianfu.orm import utcnow

cinema_app = typer.Typer(
    help="Cinemas: halls, films and showtimes.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would print settings, secrets included
)
console = Console()
_LAYOUT_LIMIT_BYTES = 256 * 1024  # 40 rows of 60 seats in the JSON form fit many times over
_CELL_SIGNS = {
    SeatKind.standard: "s",
    SeatKind.wheelchair: "w",
    SeatKind.couple_left: "(",
    SeatKind.couple_right: ")",
}


@contextmanager
def _session() -> Iterator[Session]:
    settings = settings_or_fail()
    engine = engine_from_settings(settings)
    try:
        if migrate.current_revision(engine) != migrate.head_revision():
            fail("the database schema is not at head: run `tianfu db upgrade` first")
        with session_scope(make_session_factory(engine)) as session:
            yield session
    except TianfuError as exc:
        fail(exc.message)
    finally:
        engine.dispose()


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip() or not rest.strip():
            fail(f"{what} is KEY=VALUE, got {value!r}")
        pairs[key.strip()] = rest.strip()
    return pairs


def preview(seat_map: SeatMap) -> str:
    """The hall as the text layout draws it, blocked seats as x: what was understood."""
    lines = []
    for row in seat_map.rows:
        cells = " ".join(
            "_" if seat is None else ("x" if not seat.sellable else _CELL_SIGNS[seat.kind])
            for seat in row.cells
        )
        lines.append(f"{row.label:>3} | {cells} |")
    return "\n".join(lines)


@cinema_app.command("import-hall")
def import_hall(
    store_id: Annotated[int, typer.Argument(help="The cinema (a store of category cinema)")],
    name: Annotated[str, typer.Argument(help="The hall's name, e.g. 3号厅 IMAX")],
    layout: Annotated[
        Path, typer.Argument(help="The seat map: text layout, or JSON", exists=True, dir_okay=False)
    ],
    zone: Annotated[
        list[str] | None,
        typer.Option(help="KEY=ZONE for the text layout's row prefixes (repeat)"),
    ] = None,
) -> None:
    """Import a hall's seat map (the forms are described in cinema/layout.py)."""
    if layout.stat().st_size > _LAYOUT_LIMIT_BYTES:
        fail(f"{layout} is larger than {_LAYOUT_LIMIT_BYTES // 1024} KiB: not a seat map")
    try:
        text = layout.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        fail(f"{layout} is not UTF-8 text")
    zones = _pairs(zone or [], "--zone") or None
    with _session() as session:
        hall = catalog.import_hall(session, store_id=store_id, name=name, text=text, zones=zones)
        seat_map = catalog.seat_map_of(session, hall.id)
        hall_id, seats = hall.id, hall.seat_count
    counts: dict[str, int] = {}
    for seat in seat_map.seats.values():
        if seat.sellable:
            counts[seat.zone] = counts.get(seat.zone, 0) + 1
    console.print(preview(seat_map), markup=False, highlight=False)
    zones_text = ", ".join(f"{zone_name} {count}" for zone_name, count in sorted(counts.items()))
    console.print(f"hall {hall_id} {name}: {seats} seats to sell ({zones_text})", markup=False)


@cinema_app.command("add-film")
def add_film(
    title: Annotated[str, typer.Argument(help="The title as shown, e.g. 熊猫归来")],
    runtime: Annotated[int, typer.Option(min=1, max=600, help="Minutes")],
    rating: Annotated[str, typer.Option(help="Audience score shown beside the title")] = "",
) -> None:
    """Add a film."""
    with _session() as session:
        film = catalog.add_film(session, title=title, runtime_min=runtime, rating=rating)
        film_id = film.id
    console.print(f"film {film_id} {title} ({runtime} min)", markup=False)


def _beijing(text: str) -> datetime:
    try:
        return datetime.strptime(f"{text.strip()} +0800", "%Y-%m-%d %H:%M %z")
    except ValueError:
        fail(f"times are YYYY-MM-DD HH:MM, Beijing time; got {text!r}")


@cinema_app.command("schedule")
def schedule(
    hall_id: Annotated[int, typer.Argument(help="The hall")],
    film_id: Annotated[int, typer.Argument(help="The film")],
    starts: Annotated[str, typer.Argument(help="Start, Beijing time: 'YYYY-MM-DD HH:MM'")],
    price: Annotated[list[str], typer.Option(help="ZONE=FEN, one per zone of the hall (repeat)")],
) -> None:
    """Schedule a showtime; it ends after the film's runtime, and sales close 10 minutes
    before it starts."""
    prices: dict[str, int] = {}
    for zone_name, fen in _pairs(price, "--price").items():
        if not fen.isdigit() or not 1 <= int(fen) <= 1_000_000:
            fail(f"a price is whole fen from 1 to 1000000, got {fen!r} for {zone_name}")
        prices[zone_name] = int(fen)
    with _session() as session:
        showtime = catalog.schedule_showtime(
            session,
            hall_id=hall_id,
            film_id=film_id,
            starts_at=_beijing(starts),
            prices_fen=prices,
        )
        shown = (showtime.id, showtime.starts_at, showtime.ends_at, showtime.sales_close_at)
    showtime_id, starts_at, ends_at, closes_at = shown
    console.print(
        f"showtime {showtime_id}: {_clock(starts_at, '%Y-%m-%d %H:%M')}–{_clock(ends_at)}, "
        f"sales close {_clock(closes_at)} (Beijing time)",
        markup=False,
    )


def _clock(moment: datetime, pattern: str = "%H:%M") -> str:
    return moment.astimezone(SHANGHAI).strftime(pattern)


@cinema_app.command("show")
def show(
    store_id: Annotated[int, typer.Argument(help="The cinema")],
    day: Annotated[str, typer.Option(help="Beijing date, YYYY-MM-DD (default: today)")] = "",
) -> None:
    """A cinema's halls and one day's showtimes with the seats left."""
    now = utcnow()
    try:
        chosen = date.fromisoformat(day) if day else listings.beijing_day(now)
    except ValueError:
        fail(f"--day is YYYY-MM-DD, got {day!r}")
    with _session() as session:
        halls = session.execute(
            select(Hall.id, Hall.name, Hall.seat_count)
            .where(Hall.store_id == store_id)
            .order_by(Hall.name)
        ).all()
        films = listings.programme(session, store_id=store_id, day=chosen, now=now)
    if not halls:
        fail(f"store {store_id} has no halls (tianfu cinema import-hall)")
    table = Table(title=f"store {store_id}: halls")
    for column in ("hall", "name", "seats"):
        table.add_column(column)
    for hall_id, name, seats in halls:
        table.add_row(str(hall_id), name, str(seats))
    console.print(table)
    showings = Table(title=f"showtimes on {chosen.isoformat()} (Beijing time)")
    for column in ("showtime", "film", "hall", "starts", "ends", "from", "seats left", "on sale"):
        showings.add_column(column)
    for film in films:
        for showing in film.showings:
            showings.add_row(
                str(showing.showtime_id),
                film.title,
                showing.hall_name,
                _clock(showing.starts_at),
                _clock(showing.ends_at),
                f"{showing.from_fen // 100}.{showing.from_fen % 100:02d}",
                str(showing.seats_left),
                "yes" if showing.on_sale else "no",
            )
    console.print(showings)


@cinema_app.command("cancel")
def cancel(
    showtime_id: Annotated[int, typer.Argument(help="The showtime to call off")],
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking")] = False,
) -> None:
    """Call a showtime off: sales stop, holds end, every paid order is refunded in full (the
    jobs push the refunds to the channel: `tianfu jobs run`)."""
    if not yes:
        typer.confirm(f"Cancel showtime {showtime_id} and refund every ticket?", abort=True)
    with _session() as session:
        booking.install_payment_hooks()
        done = booking.cancel_showtime(session, showtime_id=showtime_id, now=utcnow())
    console.print(
        f"showtime {showtime_id} cancelled: {done.holds_released} hold(s) released, "
        f"{done.refunds_requested} refund(s) requested "
        f"({done.refunded_fen // 100}.{done.refunded_fen % 100:02d} yuan)",
        markup=False,
    )
