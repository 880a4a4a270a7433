"""The demo cinemas: halls for a few of the demo data set's cinemas and a week of showtimes.

`tianfu seed demo` calls :func:`seed_cinemas` after writing the stores. The cinemas are the first
few demo stores of category cinema whose merchant is approved and which are open, by store
index; each gets three to five halls from `cinema.seed_halls`. Showtimes cover the Beijing date
of the run and the six days after, from about ten in the morning to past eleven at night.

Deterministic: a hall's line-up is drawn from (seed, store ref) and a day's programme from
(seed, store ref, hall, date), so re-running adds only what is missing (halls by name, films by
ref, showtimes by hall and start) and a run on a later day adds that day's new showtimes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from cinema import catalog
from cinema.models import Film, Hall, Showtime, ShowtimeStatus
from cinema.seed_halls import GRAND, TEMPLATES, ZONE_DELTA_FEN, HallTemplate
from merchants.models import Category, Merchant, MerchantStatus, Store, StoreStatus
from merchants.opening_hours import SHANGHAI
from tianfu.orm import utcnow

CINEMAS = 4
DAYS = 7
# tianfu.seed.demo.STORE_REF_PREFIX; not imported, since tianfu.seed imports this module.
DEMO_STORE_PREFIX = "demo-s-"
FILM_REF_PREFIX = "demo-film-"
FIRST_SHOW = time(10, 0)
LAST_START = time(23, 15)
CLEANING = timedelta(minutes=15)  # between the end of a show and the next start
_SHOWTIMES = cast(Table, Showtime.__table__)

# (title, runtime in minutes, audience score, weight): made-up films, none of them real.
FILMS: tuple[tuple[str, int, str, float], ...] = (
    ("熊猫归来", 118, "9.1", 5.0),
    ("锦城往事", 132, "8.7", 3.0),
    ("蜀道难", 146, "8.9", 3.0),
    ("火锅江湖", 104, "7.8", 2.5),
    ("少城少年", 96, "8.2", 2.0),
    ("星辰之下", 151, "8.4", 2.0),
    ("茶馆夜话", 112, "8.0", 1.5),
    ("青城秘境", 124, "7.6", 1.0),
)


@dataclass(frozen=True)
class CinemaSeedReport:
    cinemas: int
    halls_created: int
    films_created: int
    showtimes_created: int


def seed_cinemas(session: Session, *, seed: int, today: date | None = None) -> CinemaSeedReport:
    """Make sure the demo cinemas have their halls, the films exist, and the week from `today`
    (the Beijing date now, by default) has its showtimes; write only what is missing."""
    today = today or utcnow().astimezone(SHANGHAI).date()
    films, films_created = _films(session)
    stores = session.execute(
        select(Store.id, Store.external_ref)
        .join(Category, Category.id == Store.category_id)
        .join(Merchant, Merchant.id == Store.merchant_id)
        .where(
            Category.code == catalog.CINEMA_CATEGORY,
            Store.external_ref.like(f"{DEMO_STORE_PREFIX}%"),
            Store.status == StoreStatus.open,
            Merchant.status == MerchantStatus.approved,
        )
        .order_by(Store.external_ref)
        .limit(CINEMAS)
    ).all()
    halls_created = showtimes_created = 0
    for store_id, store_ref in stores:
        for name, template in _line_up(seed, str(store_ref)):
            hall, created = _hall(session, store_id, name, template)
            halls_created += created
            showtimes_created += _week(session, seed, str(store_ref), hall, template, films, today)
    return CinemaSeedReport(len(stores), halls_created, films_created, showtimes_created)


def _films(session: Session) -> tuple[list[tuple[Film, float]], int]:
    existing = {
        film.external_ref: film
        for film in session.scalars(
            select(Film).where(Film.external_ref.like(f"{FILM_REF_PREFIX}%"))
        )
    }
    films, created = [], 0
    for number, (title, runtime_min, rating, weight) in enumerate(FILMS, start=1):
        ref = f"{FILM_REF_PREFIX}{number:02d}"
        film = existing.get(ref)
        if film is None:
            film = catalog.add_film(
                session, title=title, runtime_min=runtime_min, rating=rating, external_ref=ref
            )
            created += 1
        films.append((film, weight))
    return films, created


def _line_up(seed: int, store_ref: str) -> list[tuple[str, HallTemplate]]:
    """Hall 1 is the big one; then three or four others, mostly standard halls."""
    rng = random.Random(f"{seed}:cinema:{store_ref}")  # noqa: S311 - demo data, not secrets
    others = [TEMPLATES["medium"], TEMPLATES["medium"], TEMPLATES["laser"], TEMPLATES["vip"]]
    chosen = [GRAND, *rng.sample(others, 2 + rng.randrange(3))]
    chosen[1:] = sorted(chosen[1:], key=lambda t: list(TEMPLATES).index(t.key))
    return [(f"{n}号厅{t.name_suffix}", t) for n, t in enumerate(chosen, start=1)]


def _hall(session: Session, store_id: int, name: str, template: HallTemplate) -> tuple[Hall, int]:
    hall = session.scalars(
        select(Hall).where(Hall.store_id == store_id, Hall.name == name)
    ).one_or_none()
    if hall is not None:
        return hall, 0
    return catalog.import_hall(session, store_id=store_id, name=name, text=template.text), 1


def _week(
    session: Session,
    seed: int,
    store_ref: str,
    hall: Hall,
    template: HallTemplate,
    films: list[tuple[Film, float]],
    today: date,
) -> int:
    first = datetime.combine(today, time(0), SHANGHAI)
    existing = set(
        session.scalars(
            select(Showtime.starts_at).where(
                Showtime.hall_id == hall.id,
                Showtime.starts_at >= first,
                Showtime.starts_at < first + timedelta(days=DAYS),
            )
        )
    )
    seat_map = catalog.seat_map_of(session, hall.id)
    zones = sorted({seat.zone for seat in seat_map.seats.values() if seat.sellable})
    rows = []
    for offset in range(DAYS):
        day = today + timedelta(days=offset)
        for film, starts_at in _programme(seed, store_ref, hall.name, day, films):
            if starts_at in existing:
                continue
            base = _base_price_fen(starts_at, day) + template.surcharge_fen
            rows.append(
                {
                    "hall_id": hall.id,
                    "film_id": film.id,
                    "starts_at": starts_at,
                    "ends_at": starts_at + timedelta(minutes=film.runtime_min),
                    "sales_close_at": starts_at - catalog.SALES_CLOSE_BEFORE,
                    "prices_fen": {zone: base + ZONE_DELTA_FEN[zone] for zone in zones},
                    "status": ShowtimeStatus.scheduled,
                    "created_at": utcnow(),
                }
            )
    if rows:
        session.execute(insert(_SHOWTIMES), rows)
    return len(rows)


def _programme(
    seed: int, store_ref: str, hall_name: str, day: date, films: list[tuple[Film, float]]
) -> list[tuple[Film, datetime]]:
    """One hall's shows of one day: back to back with cleaning between, from about 10:00."""
    rng = random.Random(f"{seed}:cinema:{store_ref}:{hall_name}:{day.isoformat()}")  # noqa: S311
    start = datetime.combine(day, FIRST_SHOW, SHANGHAI) + timedelta(minutes=rng.choice((0, 15, 30)))
    last = datetime.combine(day, LAST_START, SHANGHAI)
    shows = []
    while start <= last:
        film = rng.choices([f for f, _ in films], weights=[w for _, w in films])[0]
        shows.append((film, start))
        ready = start + timedelta(minutes=film.runtime_min) + CLEANING
        start = ready + timedelta(minutes=-ready.minute % 5)  # the next five minutes
    return shows


def _base_price_fen(starts_at: datetime, day: date) -> int:
    """What a standard seat costs: cheaper in the morning, dearer at night and at weekends."""
    hour = starts_at.astimezone(SHANGHAI).hour
    base = 3500 if hour < 12 else 4500 if hour < 18 else 5500
    return base + (500 if day.weekday() >= 5 else 0)
