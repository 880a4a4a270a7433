"""Nearby search: which listed stores are near a point, nearest first, with what users need to see.

Positions come from this worker's live spatial index (exact great-circle distances); the details
of the few stores returned come from the database in one query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, select
from sqlalchemy.orm import Session

from lbs.coords import CoordSystem, from_gcj02, to_gcj02
from lbs.offers import OfferLookup, no_offers
from lbs.schemas import (
    CategoryBrief,
    MerchantBrief,
    NearbyQuery,
    NearbyStoreRead,
    OfferBrief,
)
from merchants.errors import UnknownCategoryError
from merchants.models import Category, Merchant, Store
from merchants.store_index import LiveStoreIndex, Neighbours, StoreFilter
from tianfu.orm import utcnow


def category_ids_for(session: Session, code: str) -> frozenset[int]:
    """The category and its sub-categories: 餐饮 includes 火锅 and 小吃."""
    rows = session.execute(select(Category.id, Category.code, Category.parent_id)).all()
    root = next((row.id for row in rows if row.code == code), None)
    if root is None:
        known = ", ".join(sorted(row.code for row in rows))
        raise UnknownCategoryError(f"unknown category {code!r}; known categories: {known}")
    wanted = {root}
    grew = True
    while grew:  # the taxonomy is a shallow tree of a few dozen rows
        before = len(wanted)
        wanted |= {row.id for row in rows if row.parent_id in wanted}
        grew = len(wanted) != before
    return frozenset(wanted)


def distance_text(distance_m: float) -> str:
    if distance_m < 1000:
        return f"{max(1, round(distance_m))}米"
    return f"{distance_m / 1000:.1f}公里"


# A row of _DETAILS (id, name, address, …); typed loosely, it is read by attribute name.
StoreRow = Row[*tuple[Any, ...]]

_stores = cast(Table, Store.__table__)
_merchants = cast(Table, Merchant.__table__)
_categories = cast(Table, Category.__table__)

# Built once, over tables rather than ORM entities: this runs for every WeChat location and
# nearby request, and building or ORM-compiling it costs more than the query itself. No
# coordinates: the index has them.
_DETAILS = (
    select(
        _stores.c.id,
        _stores.c.name,
        _stores.c.address,
        _stores.c.district,
        _stores.c.phone,
        _merchants.c.id.label("merchant_id"),
        _merchants.c.name.label("merchant_name"),
        _categories.c.code.label("category_code"),
        _categories.c.name_zh.label("category_name"),
    )
    .join(_merchants, _merchants.c.id == _stores.c.merchant_id)
    .join(_categories, _categories.c.id == _stores.c.category_id)
    .where(_stores.c.id.in_(bindparam("store_ids", expanding=True)))
)


def _fetch_rows(session: Session, ids: Sequence[int]) -> dict[int, StoreRow]:
    # .all() fetches the rows in one driver call rather than one per row. (An `= ANY(array)`
    # parameter, one SQL text for any count, measured no cheaper and slower on the server.)
    rows = session.connection().execute(_DETAILS, {"store_ids": list(ids)}).all()
    return {row.id: row for row in rows}


class StoreCards:
    """This worker's copy of the store details users see (name, address, category), so the
    reply to a location needs no query for stores it has shown before.

    An entry is good for the index version it was read at: any store change this worker's
    index has applied since (polled from the change log, like the index itself) makes every
    entry stale. Stores change rarely next to how often they are shown.
    """

    def __init__(self, live_index: LiveStoreIndex, *, max_entries: int = 100_000) -> None:
        self._index = live_index
        self._max_entries = max_entries
        self._entries: dict[int, tuple[int, StoreRow]] = {}

    def rows(
        self, session: Session, ids: Sequence[int], *, prefetch: Sequence[int] = ()
    ) -> dict[int, StoreRow]:
        """The rows of `ids`. When some must be read, the stale or unseen ones of `prefetch`
        are read in the same query: a reply names one or two stores of the twenty it found,
        and the next user nearby is then answered without a query."""
        version = self._index.version
        found: dict[int, StoreRow] = {}
        missing = []
        for store_id in ids:
            entry = self._entries.get(store_id)
            if entry is not None and entry[0] == version:
                found[store_id] = entry[1]
            else:
                missing.append(store_id)
        if missing:
            asked = set(missing)
            extra = {
                store_id
                for store_id in prefetch
                if store_id not in asked and self._entries.get(store_id, (-1,))[0] != version
            }
            fetched = _fetch_rows(session, [*missing, *extra])
            if len(self._entries) + len(fetched) > self._max_entries:
                self._entries = {}  # crude, and rare: a worker sees a bounded set of stores
            for store_id, row in fetched.items():
                self._entries[store_id] = (version, row)
                if store_id in asked:
                    found[store_id] = row
        return found


class OpenVerdicts:
    """Which stores are open now, each distinct schedule judged once a minute per worker.

    Shifts open and close on whole minutes of Shanghai time, and Shanghai is a whole number of
    hours from UTC (no DST since 1991), so a schedule's verdict is the same at every moment of
    one UTC minute. A reply judges twenty stores, which share a few hundred schedules between
    them all: judging each afresh cost about 100 µs a reply, judging from here about 8 µs.
    Keyed by the schedule itself (the index's interned JSON), so a store whose hours change
    is judged by its new schedule at once.
    """

    def __init__(self, live_index: LiveStoreIndex) -> None:
        self._index = live_index
        # (UTC minute, verdict per schedule); replaced whole when the minute turns, so a
        # thread reading the old pair meanwhile still reads a consistent one.
        self._minute: tuple[int, dict[str, bool]] = (-1, {})

    def open_ids(self, store_ids: Iterable[int], now: datetime) -> set[int]:
        minute = int(now.timestamp()) // 60
        current, verdicts = self._minute
        if current != minute:
            verdicts = {}
            self._minute = (minute, verdicts)
        index = self._index
        open_ids = set()
        for store_id in store_ids:
            facts = index.facts(store_id)
            if facts is None:
                continue
            verdict = verdicts.get(facts.hours_json)
            if verdict is None:
                verdict = index.opening_hours(facts.hours_json).is_open_at(now)
                verdicts[facts.hours_json] = verdict
            if verdict:
                open_ids.add(store_id)
        return open_ids


def find_neighbours(
    session: Session,
    live_index: LiveStoreIndex,
    query: NearbyQuery,
    *,
    now: datetime,
) -> Neighbours:
    """(store id, metres) of the listed stores matching the query, nearest first; no details."""
    lat, lng = to_gcj02(query.lat, query.lng, query.coord)
    store_filter = StoreFilter(
        category_ids=category_ids_for(session, query.category) if query.category else None,
        open_at=now if query.open_now else None,
    )
    return live_index.within(
        lat, lng, radius_m=query.radius_m, limit=query.limit, store_filter=store_filter
    )


def store_details(
    session: Session,
    live_index: LiveStoreIndex,
    neighbours: Neighbours,
    *,
    coord: CoordSystem,
    now: datetime,
    best_offers: Mapping[int, OfferBrief],
    cards: StoreCards | None = None,
    prefetch: Sequence[int] = (),
) -> list[NearbyStoreRead]:
    """What users see of these stores, in the order given, in one query at most (which also
    reads the `prefetch` stores into `cards`, see `StoreCards.rows`)."""
    if not neighbours:
        return []
    ids = [store_id for store_id, _ in neighbours]
    if cards is not None:
        details = cards.rows(session, ids, prefetch=prefetch)
    else:
        details = _fetch_rows(session, ids)
    results = []
    for store_id, distance_m in neighbours:
        row, facts = details.get(store_id), live_index.facts(store_id)
        position = live_index.position(store_id)
        if row is None or facts is None or position is None:  # removed meanwhile
            continue
        # The index already holds this store's hours, parsed once and shared by equal schedules.
        hours = live_index.opening_hours(facts.hours_json)
        shown_lat, shown_lng = from_gcj02(*position, coord)
        results.append(
            NearbyStoreRead(
                id=row.id,
                name=row.name,
                merchant=MerchantBrief(id=row.merchant_id, name=row.merchant_name),
                category=CategoryBrief(code=row.category_code, name=row.category_name),
                address=row.address,
                district=row.district,
                phone=row.phone,
                distance_m=round(distance_m, 1),
                distance_text=distance_text(round(distance_m, 1)),
                open_now=hours.is_open_at(now),
                opening_hours_text=live_index.hours_text(facts.hours_json),
                lat=round(shown_lat, 7),
                lng=round(shown_lng, 7),
                coord=coord,
                best_offer=best_offers.get(store_id),
            )
        )
    return results


def find_nearby(
    session: Session,
    live_index: LiveStoreIndex,
    query: NearbyQuery,
    *,
    now: datetime | None = None,
    offers: OfferLookup = no_offers,
    openid: str | None = None,
    cards: StoreCards | None = None,
) -> list[NearbyStoreRead]:
    """The stores near the query point, nearest first, each with its best offer for `openid`
    (or for anyone, when the user is not known)."""
    now = now or utcnow()
    neighbours = find_neighbours(session, live_index, query, now=now)
    if not neighbours:
        return []
    ids = [store_id for store_id, _ in neighbours]
    best_offers = offers(session, store_ids=ids, openid=openid, now=now)
    return store_details(
        session,
        live_index,
        neighbours,
        coord=query.coord,
        now=now,
        best_offers=best_offers,
        cards=cards,
    )
