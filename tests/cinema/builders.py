"""Small typed builders for cinema test data: they flush (for ids) and never commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from cinema import catalog
from cinema.models import Hall, Showtime
from merchants.models import Store
from tests.builders import make_merchant, make_store

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # Tuesday noon in Shanghai

# Two standard rows in zones F and G, a row with a blocked seat (C2) and two wheelchair spaces,
# and a back row of couple seats. Aisle in the middle of every row.
SMALL_HALL = """
F: A | s s s s _ s s s s |
G: B | s s s s _ s s s s |
   C | s x s s _ w w s s |
V: D | ( ) ( ) _ ( ) ( ) |
"""
PRICES_FEN = {"F": 3900, "G": 5900, "default": 4500, "V": 6900}


def make_cinema(session: Session, *, name: str = "光影电影城(春熙路店)") -> Store:
    merchant = make_merchant(session, name="光影电影城", category_code="cinema")
    return make_store(session, merchant=merchant, name=name)


def make_hall(
    session: Session, *, store: Store | None = None, layout: str = SMALL_HALL, name: str = "1号厅"
) -> Hall:
    store = store or make_cinema(session)
    return catalog.import_hall(session, store_id=store.id, name=name, text=layout)


def make_showtime(
    session: Session,
    *,
    hall: Hall | None = None,
    starts_at: datetime = NOW + timedelta(hours=3),
    prices_fen: dict[str, int] | None = None,
) -> Showtime:
    hall = hall or make_hall(session)
    film = catalog.add_film(session, title="熊猫归来", runtime_min=118, rating="9.1")
    return catalog.schedule_showtime(
        session,
        hall_id=hall.id,
        film_id=film.id,
        starts_at=starts_at,
        prices_fen=prices_fen or PRICES_FEN,
    )
