"""Halls, films and showtimes: what a cinema shows, where and at what price."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cinema import errors
from cinema.layout import SeatMap, SeatMapError, parse_json_layout, parse_text_layout, to_json
from cinema.models import Film, Hall, Showtime, ShowtimeStatus
from merchants.models import Category, Store

CINEMA_CATEGORY = "cinema"
# Holds stop this long before the start unless a showtime says otherwise: time to pay, and to
# reach the hall before the lights go down.
SALES_CLOSE_BEFORE = timedelta(minutes=10)
_MAP_CACHE_SIZE = 256


def import_hall(
    session: Session,
    *,
    store_id: int,
    name: str,
    text: str,
    zones: Mapping[str, str] | None = None,
) -> Hall:
    """A hall of a cinema from a layout in the text or the JSON form (cinema.layout); it is
    stored in the JSON form."""
    category = session.scalar(
        select(Category.code)
        .join(Store, Store.category_id == Category.id)
        .where(Store.id == store_id)
    )
    if category is None:
        raise errors.HallNotFoundError(f"门店 {store_id} 不存在")
    if category != CINEMA_CATEGORY:
        raise errors.InvalidLayoutError(f"门店 {store_id} 不是电影院")
    try:
        seat_map = parse_layout(text, zones=zones)
    except SeatMapError as exc:
        raise errors.InvalidLayoutError(f"座位图有误：{exc}") from exc
    hall = Hall(
        store_id=store_id,
        name=name,
        layout=to_json(seat_map),
        seat_count=sum(seat.sellable for seat in seat_map.seats.values()),
    )
    session.add(hall)
    session.flush()
    return hall


def parse_layout(text: str, *, zones: Mapping[str, str] | None = None) -> SeatMap:
    """The text form, or the JSON form when the text is a JSON object (`zones` is for the text
    form: the JSON form names each seat's zone itself)."""
    if not text.lstrip().startswith("{"):
        return parse_text_layout(text, zones=zones)
    if zones:
        raise SeatMapError("zones apply to the text layout; the JSON layout names its own")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SeatMapError(f"not valid JSON: {exc}") from None
    return parse_json_layout(data)


def add_film(
    session: Session,
    *,
    title: str,
    runtime_min: int,
    rating: str = "",
    external_ref: str | None = None,
) -> Film:
    film = Film(title=title, runtime_min=runtime_min, rating=rating, external_ref=external_ref)
    session.add(film)
    session.flush()
    return film


def schedule_showtime(
    session: Session,
    *,
    hall_id: int,
    film_id: int,
    starts_at: datetime,
    prices_fen: Mapping[str, int],
    ends_at: datetime | None = None,
    sales_close_at: datetime | None = None,
) -> Showtime:
    """A showtime; every zone of the hall needs a price, and the hall must be free then."""
    film = session.get(Film, film_id)
    if film is None:
        raise errors.InvalidShowtimeError(f"影片 {film_id} 不存在")
    seat_map = seat_map_of(session, hall_id)
    ends_at = ends_at or starts_at + timedelta(minutes=film.runtime_min)
    zones = {seat.zone for seat in seat_map.seats.values() if seat.sellable}
    missing = sorted(zones - {zone for zone, fen in prices_fen.items() if fen >= 1})
    if missing:
        raise errors.InvalidShowtimeError(f"票价缺少区域：{'、'.join(missing)}")
    if ends_at <= starts_at:
        raise errors.InvalidShowtimeError("结束时间须晚于开始时间")
    overlapping = session.scalar(
        select(Showtime.id).where(
            Showtime.hall_id == hall_id,
            Showtime.status == ShowtimeStatus.scheduled,
            Showtime.starts_at < ends_at,
            Showtime.ends_at > starts_at,
        )
    )
    if overlapping is not None:
        raise errors.InvalidShowtimeError("该影厅此时段已有场次")
    showtime = Showtime(
        hall_id=hall_id,
        film_id=film_id,
        starts_at=starts_at,
        ends_at=ends_at,
        sales_close_at=sales_close_at or starts_at - SALES_CLOSE_BEFORE,
        prices_fen=dict(prices_fen),
        status=ShowtimeStatus.scheduled,
    )
    session.add(showtime)
    session.flush()
    return showtime


@dataclass(frozen=True)
class ShowtimeDetails:
    showtime: Showtime
    film_title: str
    hall_name: str
    hall_version: datetime  # the hall's updated_at: seat_map_of(…, version=)
    store_id: int  # the cinema's


def showtime_details(session: Session, showtime_id: int) -> ShowtimeDetails:
    row = session.execute(
        select(Showtime, Film.title, Hall.name, Hall.updated_at, Hall.store_id)
        .join(Hall, Hall.id == Showtime.hall_id)
        .join(Film, Film.id == Showtime.film_id)
        .where(Showtime.id == showtime_id)
    ).one_or_none()
    if row is None:
        raise errors.ShowtimeNotFoundError(f"场次 {showtime_id} 不存在")
    return ShowtimeDetails(*row)


def get_showtime(session: Session, showtime_id: int) -> Showtime:
    showtime = session.get(Showtime, showtime_id)
    if showtime is None:
        raise errors.ShowtimeNotFoundError(f"场次 {showtime_id} 不存在")
    return showtime


# Parsed seat maps by (hall id, hall updated_at): parsing a 300-seat layout costs more than the
# rest of a hold, and a layout only changes with its row's updated_at. Shared by the threads of
# a worker, hence the lock.
_maps: dict[tuple[int, datetime], SeatMap] = {}
_maps_lock = threading.Lock()


def seat_map_of(session: Session, hall_id: int, *, version: datetime | None = None) -> SeatMap:
    """The hall's seat map; `version` is the hall's updated_at when the caller has read it."""
    if version is None:
        version = session.scalar(select(Hall.updated_at).where(Hall.id == hall_id))
        if version is None:
            raise errors.HallNotFoundError(f"影厅 {hall_id} 不存在")
    with _maps_lock:
        cached = _maps.get((hall_id, version))
    if cached is not None:
        return cached
    layout = session.scalar(select(Hall.layout).where(Hall.id == hall_id))
    if layout is None:
        raise errors.HallNotFoundError(f"影厅 {hall_id} 不存在")
    seat_map = parse_json_layout(layout)
    with _maps_lock:
        if len(_maps) >= _MAP_CACHE_SIZE:
            _maps.pop(next(iter(_maps)))  # the oldest entry: dicts keep insertion order
        _maps[(hall_id, version)] = seat_map
    return seat_map
