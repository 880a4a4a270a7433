"""Writing the demo data set: bulk inserts of only the stores (and merchants) that are missing.

Re-running is idempotent through ``external_ref``: a store whose ref exists is not written again,
and a chain merchant is created the first time one of its stores is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cinema.seed import seed_cinemas
from coupons.seed import seed_offers
from merchants.changes import record_bulk_change
from merchants.models import Category, Merchant, Store
from tianfu.geo import STORAGE_SRID
from tianfu.orm import UTCDateTime, utcnow
from tianfu.seed.chengdu import CATEGORIES
from tianfu.seed.demo import (
    BLOCK_SIZE,
    DEFAULT_SEED,
    DEFAULT_STORES,
    MAX_STORES,
    MERCHANT_REF_PREFIX,
    STORE_REF_PREFIX,
    DemoStore,
    demo_chains,
    generate_block,
)

WRITE_CHUNK = 2000  # small enough for the progress bar to move on the default 5,000


@dataclass(frozen=True)
class SeedReport:
    merchants_created: int
    stores_created: int
    stores_total: int  # demo stores present after the run
    offers_created: int = 0


_MERCHANTS = cast(sa.Table, Merchant.__table__)
_STORES = cast(sa.Table, Store.__table__)


class DemoSeedMismatchError(RuntimeError):
    pass


def _statements(dialect: sa.Dialect) -> tuple[sa.Insert, sa.Insert]:
    # One timestamp per run, rendered into the statement once rather than converted for each
    # of hundreds of thousands of rows.
    now_sql = sa.literal(utcnow(), UTCDateTime()).compile(
        dialect=dialect, compile_kwargs={"literal_binds": True}
    )
    now = sa.literal_column(str(now_sql), UTCDateTime())
    lng, lat = sa.bindparam("loc_lng", type_=sa.Float()), sa.bindparam("loc_lat", type_=sa.Float())
    # The schedules come serialised already; SQLite keeps JSON as text, PostgreSQL needs a cast.
    hours: sa.ColumnElement[Any] = sa.bindparam("hours_json", type_=sa.Text())
    # Building the point from two floats beats parsing WKT on both backends.
    if dialect.name == "sqlite":
        point = sa.func.MakePoint(lng, lat, STORAGE_SRID)
    else:
        point = sa.func.ST_SetSRID(sa.func.ST_MakePoint(lng, lat), STORAGE_SRID)
        hours = hours.cast(sa.JSON)
    merchants = sa.insert(_MERCHANTS).values(created_at=now, updated_at=now)
    stores = sa.insert(_STORES).values(
        location_gcj02=point, opening_hours=hours, created_at=now, updated_at=now
    )
    return merchants.returning(_MERCHANTS.c.external_ref, _MERCHANTS.c.id), stores


def _pairs(session: Session, key: Any, value: Any, prefix: str | None = None) -> dict[Any, Any]:
    query = sa.select(key, value)
    if prefix is not None:
        query = query.where(key.like(f"{prefix}%"))
    # iter(): a Result has keys(), and dict() would take it for a mapping.
    return dict(iter(session.execute(query)))


def _existing_store_indices(session: Session) -> set[int]:
    ref = _STORES.c.external_ref
    refs = session.scalars(sa.select(ref).where(ref.like(f"{STORE_REF_PREFIX}%")))
    digits = (ref.removeprefix(STORE_REF_PREFIX) for ref in refs)
    return {int(number) for number in digits if number.isdigit()}


def _check_same_seed(session: Session, seed: int) -> None:
    """Refuse to mix data sets: chain stores of one seed would land under another's brands."""
    stored = _pairs(
        session, _MERCHANTS.c.external_ref, _MERCHANTS.c.name, f"{MERCHANT_REF_PREFIX}c"
    )
    known = [chain for chain in demo_chains(seed) if chain.ref in stored]
    # A renamed brand or two is an edit in the portal; most of them is another seed (a few
    # small categories may draw the same brand name under two seeds).
    matching = sum(stored[chain.ref] == chain.name for chain in known)
    if matching * 2 < len(known):
        raise DemoSeedMismatchError(
            f"the demo data in this database comes from another seed than {seed}: "
            "re-run with the seed used first, or start from an empty database"
        )


def _missing(seed: int, stores: int, existing: set[int]) -> Iterator[list[DemoStore]]:
    """The stores below ``stores`` that are not in ``existing``, in chunks to write."""
    pending: list[DemoStore] = []
    for block in range((stores + BLOCK_SIZE - 1) // BLOCK_SIZE):
        first, stop = block * BLOCK_SIZE, min((block + 1) * BLOCK_SIZE, stores)
        if existing and all(index in existing for index in range(first, stop)):
            continue  # a grown data set skips its old blocks without generating them
        drawn = generate_block(seed, block)[: stop - first]
        pending.extend(store for store in drawn if store.index not in existing)
        if len(pending) >= WRITE_CHUNK:
            yield pending
            pending = []
    if pending:
        yield pending


def seed_demo(
    session: Session,
    *,
    stores: int = DEFAULT_STORES,
    seed: int = DEFAULT_SEED,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Make sure demo stores 0 to ``stores - 1`` of ``seed`` exist; write only the missing ones.

    Works inside the caller's transaction and never commits. ``progress`` is called with the
    number of stores written after each chunk.
    """
    if not 0 <= stores <= MAX_STORES:
        raise ValueError(f"stores must be between 0 and {MAX_STORES}, got {stores}")
    session.flush()
    _check_same_seed(session, seed)
    existing = _existing_store_indices(session)
    merchant_ids = _pairs(session, _MERCHANTS.c.external_ref, _MERCHANTS.c.id, MERCHANT_REF_PREFIX)
    category_ids = _pairs(session, Category.code, Category.id)
    missing = {profile.code for profile in CATEGORIES} - category_ids.keys()
    if missing:
        raise RuntimeError(f"categories {sorted(missing)} are missing: migrate the database")
    insert_merchants, insert_stores = _statements(session.get_bind().dialect)
    merchants_created = stores_created = 0
    for chunk in _missing(seed, stores, existing):
        # A chain's stores all carry the same merchant fields, so any of them may create it.
        merchants = {
            store.merchant_ref: {
                "name": store.merchant_name,
                "category_id": category_ids[store.category],
                "status": store.merchant_status,
                "external_ref": store.merchant_ref,
            }
            for store in chunk
            if store.merchant_ref not in merchant_ids
        }
        if merchants:
            merchant_ids.update(iter(session.execute(insert_merchants, list(merchants.values()))))
            merchants_created += len(merchants)
        rows = [
            {
                "merchant_id": merchant_ids[store.merchant_ref],
                "category_id": category_ids[store.category],
                "name": store.name,
                "district": store.district,
                "address": store.address,
                "phone": store.phone,
                "loc_lng": store.lng,
                "loc_lat": store.lat,
                "hours_json": store.opening_hours_json,
                "status": store.status,
                "external_ref": store.ref,
            }
            for store in chunk
        ]
        session.execute(insert_stores, rows)
        stores_created += len(chunk)
        if progress is not None:
            progress(len(chunk))
    if stores_created:
        # One "everything changed" entry, not one per store: running workers rebuild their index.
        record_bulk_change(session)
    seed_cinemas(session, seed=seed)  # halls and a week of showtimes for a few of the cinemas
    offers_created = seed_offers(session, seed=seed)
    return SeedReport(
        merchants_created, stores_created, len(existing) + stores_created, offers_created
    )
