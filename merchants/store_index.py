"""This worker's live spatial index of stores, kept fresh from the store change log.

Built in the background at start (`/readyz` says not ready until then), then a thread polls the
change log every `poll_interval_s` and applies what changed, so a store created or moved through
any worker is found here within about one interval. Besides positions, the index keeps the few
facts nearby search filters on (listed or not, category, opening hours) so that filtering needs no
database round trip per candidate.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.orm import Session, sessionmaker

from merchants import changes
from merchants.models import Merchant, MerchantStatus, Store, StoreStatus
from merchants.opening_hours import OpeningHours
from spatial_index import SpatialIndex

logger = logging.getLogger(__name__)

Neighbours = list[tuple[int, float]]
COMPACT_MIN_PENDING = 1000
COMPACT_SHARE = 0.02


@dataclass(frozen=True, slots=True)
class StoreFacts:
    category_id: int
    merchant_id: int
    # Shown to users: the merchant is approved and the store is open for business.
    listed: bool
    # Interned JSON text: stores share a few schedules, and this is the key of the parsed cache.
    hours_json: str


@dataclass(frozen=True, slots=True)
class StoreFilter:
    category_ids: frozenset[int] | None = None
    open_at: datetime | None = None
    include_unlisted: bool = False


def _state_query() -> Select[Any]:
    return (
        select(
            Store.id,
            func.ST_Y(Store.location_gcj02),
            func.ST_X(Store.location_gcj02),
            Store.category_id,
            Store.merchant_id,
            Store.status,
            Merchant.status,
            # As text: decoding a million JSON documents only to re-encode them is wasted work.
            cast(Store.opening_hours, Text),
        )
        .join(Merchant, Merchant.id == Store.merchant_id)
        .where(Store.status != StoreStatus.closed)
    )


class LiveStoreIndex:
    def __init__(
        self, session_factory: sessionmaker[Session], *, poll_interval_s: float = 0.5
    ) -> None:
        self._session_factory = session_factory
        self._poll_interval_s = poll_interval_s
        self._index = SpatialIndex()
        self._facts: dict[int, StoreFacts] = {}
        self._version = 0
        self._built = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # One writer at a time (the poller, or a test calling poll_once); readers take none.
        self._write_lock = threading.Lock()
        self._hours: dict[str, OpeningHours] = {}
        self._hours_text: dict[str, str] = {}

    # --- state ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._built.is_set()

    @property
    def version(self) -> int:
        return self._version

    def __len__(self) -> int:
        return len(self._index)

    def readiness(self) -> str | None:
        return None if self.ready else "the spatial index of stores is being built"

    # --- building and polling -------------------------------------------------------------

    def build(self) -> None:
        with self._write_lock, self._session_factory() as session:
            # The version is read before the rows: a change committed in between is in the rows
            # and is applied once more by the next poll, which is harmless.
            version = changes.latest_version(session)
            rows = session.execute(_state_query()).all()
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        lats = np.fromiter((row[1] for row in rows), dtype=np.float64, count=len(rows))
        lngs = np.fromiter((row[2] for row in rows), dtype=np.float64, count=len(rows))
        index = SpatialIndex.bulk_load(ids, lats, lngs)
        facts = {row[0]: self._facts_of(row) for row in rows}
        # Swapped as two references: a query that started on the old pair finishes on it.
        self._index, self._facts, self._version = index, facts, version
        self._built.set()
        # The index holds a few long-lived objects per store (300k at 100k stores), which every
        # full collection would scan again: 150-230 ms pauses, the webhook's p99. Frozen, the
        # collector skips them; they are still freed by reference counting when replaced (no
        # cycles). Collect first, since frozen garbage in cycles is never freed.
        gc.collect()
        gc.freeze()
        logger.info("spatial index built: %d stores at version %d", len(rows), version)

    def poll_once(self) -> int:
        """Apply the changes since our version; returns how many stores were touched."""
        with self._session_factory() as session:
            batch = changes.changes_since(session, self._version)
        if batch.up_to_version == self._version:
            return 0
        if batch.reload_everything:
            self.build()
            return len(self._index)
        with self._write_lock, self._session_factory() as session:
            store_ids = set(batch.store_ids)
            if batch.merchant_ids:
                store_ids.update(
                    session.scalars(
                        select(Store.id).where(Store.merchant_id.in_(batch.merchant_ids))
                    )
                )
            current = {
                row[0]: row
                for row in session.execute(_state_query().where(Store.id.in_(store_ids)))
            }
            self._apply(store_ids, current)
            self._version = batch.up_to_version
        return len(store_ids)

    def _apply(self, store_ids: Iterable[int], current: Mapping[int, Sequence[Any]]) -> None:
        for store_id in store_ids:
            row = current.get(store_id)
            if row is None:  # closed for good, or deleted
                self._index.remove(store_id)
                self._facts.pop(store_id, None)
                continue
            self._facts[store_id] = self._facts_of(row)
            self._index.upsert(store_id, row[1], row[2])

    @staticmethod
    def _facts_of(row: Sequence[Any]) -> StoreFacts:
        _id, _lat, _lng, category_id, merchant_id, store_status, merchant_status, hours = row
        listed = store_status == StoreStatus.open and merchant_status == MerchantStatus.approved
        return StoreFacts(category_id, merchant_id, listed, sys.intern(hours))

    def compact_if_worthwhile(self) -> bool:
        """Fold live updates back into the bulk-loaded tree once they are a noticeable share.

        Updates after the bulk load go to a second tree that every query also searches; past a
        few per cent of the stores that costs more than the compaction (about 1 s per million
        stores, off the request path: this runs in the poller thread and readers are not
        blocked).
        """
        index = self._index
        if index.pending_compaction <= max(COMPACT_MIN_PENDING, len(index) * COMPACT_SHARE):
            return False
        index.compact()
        return True

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="store-index", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        backoff_s = self._poll_interval_s
        while not self._stopping.is_set():
            try:
                if self.ready:
                    self.poll_once()
                    self.compact_if_worthwhile()
                else:
                    self.build()
                backoff_s = self._poll_interval_s
            except Exception:
                # The database may be restarting; keep serving the index we have and retry.
                logger.exception("store index refresh failed; retrying in %.1f s", backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)
            self._stopping.wait(backoff_s)

    # --- queries ---------------------------------------------------------------------------

    def merchant_of(self, store_id: int) -> int | None:
        facts = self._facts.get(store_id)
        return facts.merchant_id if facts is not None else None

    def position(self, store_id: int) -> tuple[float, float] | None:
        """(lat, lng) in GCJ-02 as this worker's index has it."""
        return self._index.position(store_id)

    def open_at(self, store_ids: Iterable[int], at: datetime) -> set[int]:
        """Which of these stores are open at `at`. Stores share a few schedules, so each
        distinct schedule is judged once."""
        verdicts: dict[str, bool] = {}
        open_ids = set()
        for store_id in store_ids:
            facts = self._facts.get(store_id)
            if facts is None:
                continue
            verdict = verdicts.get(facts.hours_json)
            if verdict is None:
                verdict = self.opening_hours(facts.hours_json).is_open_at(at)
                verdicts[facts.hours_json] = verdict
            if verdict:
                open_ids.add(store_id)
        return open_ids

    def facts(self, store_id: int) -> StoreFacts | None:
        return self._facts.get(store_id)

    def opening_hours(self, hours_json: str) -> OpeningHours:
        hours = self._hours.get(hours_json)
        if hours is None:
            hours = OpeningHours.from_json(json.loads(hours_json))
            self._hours[hours_json] = hours
        return hours

    def hours_text(self, hours_json: str) -> str:
        """The Chinese summary of these hours ("每天 10:00-22:00"), worked out once."""
        text = self._hours_text.get(hours_json)
        if text is None:
            text = self.opening_hours(hours_json).describe_zh()
            self._hours_text[hours_json] = text
        return text

    def _accept(self, store_filter: StoreFilter) -> Callable[[int], bool]:
        facts_by_id = self._facts

        def accept(store_id: int) -> bool:
            facts = facts_by_id.get(store_id)
            if facts is None or not (facts.listed or store_filter.include_unlisted):
                return False
            wanted = store_filter.category_ids
            if wanted is not None and facts.category_id not in wanted:
                return False
            if store_filter.open_at is not None:
                return self.opening_hours(facts.hours_json).is_open_at(store_filter.open_at)
            return True

        return accept

    def within(
        self,
        lat_gcj02: float,
        lng_gcj02: float,
        *,
        radius_m: float,
        limit: int,
        store_filter: StoreFilter | None = None,
    ) -> Neighbours:
        accept = self._accept(store_filter or StoreFilter())
        return self._index.within(lat_gcj02, lng_gcj02, radius_m, limit=limit, accept=accept)

    def nearest(
        self,
        lat_gcj02: float,
        lng_gcj02: float,
        *,
        k: int,
        max_distance_m: float | None = None,
        store_filter: StoreFilter | None = None,
    ) -> Neighbours:
        accept = self._accept(store_filter or StoreFilter())
        return self._index.nearest(
            lat_gcj02, lng_gcj02, k, max_distance_m=max_distance_m, accept=accept
        )
