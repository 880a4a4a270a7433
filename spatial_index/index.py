"""An exact, live nearest-neighbour index over store points, answers in haversine metres.

Points live in 3-D R-trees as unit vectors: Euclidean (chord) order on the unit sphere is
great-circle order, so the trees' nearest are the nearest on the globe at every latitude and
across the antimeridian, which a lat/lng-degree R-tree is not. Answers are still ranked by
`haversine_m` and then id, exactly as a brute-force scan ranks them: the trees only propose
candidates, and a candidate is settled once the float error bounds in `geometry` prove that
no point the trees have not returned can come before it (`unseen_lower_bound_m`).
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ._checks import MAX_ID, as_coordinate_array, as_id_array, check_distance, check_id
from ._trees import Box, PointTree, SlotArray
from .geometry import (
    box_half_width,
    check_lat_lng,
    haversine_m_array,
    unit_vector,
    unit_vectors,
    unseen_lower_bound_m,
)

Accept = Callable[[int], bool]
Result = list[tuple[int, float]]

_MIN_CAPACITY: Final[int] = 16


def _point_box(lat: float, lng: float) -> Box:
    # Deterministic for the same floats, so a dynamic-tree entry's box can be rebuilt from the
    # stored lat/lng to delete it, instead of keeping 24 more bytes per store.
    x, y, z = unit_vector(lat, lng)
    return (x, y, z, x, y, z)


class SpatialIndex:
    # Locking: one mutex guards both trees, the slot columns and the id map together. Writers
    # hold it for a whole upsert/remove (a move is delete + insert, never seen half-done);
    # readers hold it only while the trees propose candidates and their ids and coordinates
    # are copied out. Readers must take it too: libspatialindex is not safe against concurrent
    # modification, nor its queries against each other (shared node pools), and ctypes
    # releases the GIL during calls. Distances, sorting and every `accept` callback run after
    # release, so a slow or re-entrant callback (one calling back into the index) neither
    # blocks writers nor deadlocks. Each answer comes from one locked snapshot: when a query
    # needs more candidates it asks again from scratch and uses only the newest snapshot
    # (accept verdicts are memoised by id across rounds).

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._compacting = threading.Lock()
        self._static = PointTree.static(np.zeros(0, dtype=np.int64), np.zeros((0, 3)))
        self._static_dead = 0
        self._dynamic = PointTree.dynamic()
        # Store id -> slot. Ids from bulk_load need no map entry: they fill slots 0..n-1 in
        # ascending id order and are found by binary search in `_base_ids` (8 bytes a store,
        # where a dict entry with its two int objects costs ~100). Ids placed later, including
        # bulk-loaded ids removed and put back, are in `_placed`.
        self._base_ids = np.zeros(0, dtype=np.int64)
        self._placed: dict[int, int] = {}
        self._count = 0
        self._free: list[int] = []
        self._used = 0  # slots [0, _used) have been handed out at least once
        # While compact() builds a tree outside the lock: the slots written since its snapshot.
        self._touched: set[int] | None = None
        self._allocate(_MIN_CAPACITY)

    def _allocate(self, capacity: int) -> None:
        # Per-slot columns. The trees' ids are slots, so a query's candidates are gathered by
        # one fancy-index per column rather than a dict lookup per candidate.
        self._ids = np.full(capacity, -1, dtype=np.int64)
        self._lat = np.zeros(capacity, dtype=np.float64)
        self._lng = np.zeros(capacity, dtype=np.float64)
        # True while the slot's static-tree entry is its current position; False once it moved
        # or was removed (the entry stays in the static tree, dead; see _trees).
        self._static_live = np.zeros(capacity, dtype=np.bool_)

    @classmethod
    def bulk_load(
        cls,
        ids: npt.NDArray[Any] | Sequence[int],
        lats: npt.NDArray[Any] | Sequence[float],
        lngs: npt.NDArray[Any] | Sequence[float],
    ) -> SpatialIndex:
        id_arr = as_id_array(ids)
        n = id_arr.shape[0]
        lat_arr = as_coordinate_array(lats, "lats", 90.0, n)
        lng_arr = as_coordinate_array(lngs, "lngs", 180.0, n)
        self = cls()
        if n == 0:
            return self
        order = np.argsort(id_arr, kind="stable")
        sorted_ids = id_arr[order]
        dupes = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if dupes.size:
            raise ValueError(f"duplicate store id {int(dupes[0])} in bulk_load")
        lat_arr = lat_arr[order]
        lng_arr = lng_arr[order]
        self._static = PointTree.static(
            np.arange(n, dtype=np.int64), unit_vectors(lat_arr, lng_arr)
        )
        self._allocate(n + n // 16 + _MIN_CAPACITY)
        self._ids[:n] = sorted_ids
        self._lat[:n] = lat_arr
        self._lng[:n] = lng_arr
        self._static_live[:n] = True
        self._base_ids = sorted_ids
        self._count = n
        self._used = n
        return self

    def _find(self, sid: int) -> int | None:
        # Under the lock. A bulk-loaded id owns its base slot only while the slot still holds
        # it: once removed, the slot may go to another store, and the id, if it comes back, to
        # `_placed`.
        slot = self._placed.get(sid)
        if slot is not None:
            return slot
        if not 0 <= sid <= MAX_ID:
            return None
        i = int(np.searchsorted(self._base_ids, sid))
        if i < self._base_ids.shape[0] and self._base_ids[i] == sid and self._ids[i] == sid:
            return i
        return None

    @property
    def pending_compaction(self) -> int:
        # Dynamic-tree entries plus dead static entries: what compact() would fold away.
        return self._dynamic.size + self._static_dead

    def compact(self) -> None:
        # Rebuilds the static tree from every live point and empties the dynamic one, bringing
        # queries back to bulk-load speed. The bulk build (~1.5 s at 1M points) runs outside
        # the lock on a snapshot; writes made meanwhile are recorded in `_touched` and those
        # slots stay in (a fresh) dynamic tree when the new trees are swapped in.
        with self._compacting:
            with self._lock:
                slots = np.flatnonzero(self._ids[: self._used] >= 0).astype(np.int64)
                lats = self._lat[slots]
                lngs = self._lng[slots]
                self._touched = set()
            try:
                static = PointTree.static(slots, unit_vectors(lats, lngs))
            except BaseException:
                with self._lock:
                    self._touched = None
                raise
            with self._lock:
                touched: set[int] = self._touched
                self._touched = None
                live = np.zeros(self._ids.shape[0], dtype=np.bool_)
                live[slots] = True
                moved = np.fromiter(touched, dtype=np.int64, count=len(touched))
                dead = int(np.count_nonzero(live[moved]))
                live[moved] = False
                dynamic = PointTree.dynamic()
                for slot in moved[self._ids[moved] >= 0].tolist():
                    dynamic.insert(slot, _point_box(float(self._lat[slot]), float(self._lng[slot])))
                self._static = static
                self._static_live = live
                self._static_dead = dead
                self._dynamic = dynamic

    def __len__(self) -> int:
        return self._count

    def __contains__(self, store_id: object) -> bool:
        if isinstance(store_id, bool) or not isinstance(store_id, int | np.integer):
            return False
        with self._lock:
            return self._find(int(store_id)) is not None

    def position(self, store_id: int) -> tuple[float, float] | None:
        with self._lock:
            slot = self._find(operator.index(store_id))
            if slot is None:
                return None
            return float(self._lat[slot]), float(self._lng[slot])

    def upsert(self, store_id: int, lat: float, lng: float) -> None:
        sid = check_id(store_id)
        lat, lng = check_lat_lng(lat, lng)
        box = _point_box(lat, lng)
        with self._lock:
            slot = self._find(sid)
            if slot is None:
                slot = self._take_slot()
                self._placed[sid] = slot
                self._count += 1
            elif self._lat[slot] == lat and self._lng[slot] == lng:
                return
            else:
                self._retire(slot)
            if self._touched is not None:
                self._touched.add(slot)
            self._dynamic.insert(slot, box)
            self._ids[slot] = sid
            self._lat[slot] = lat
            self._lng[slot] = lng

    def remove(self, store_id: int) -> bool:
        sid = check_id(store_id)
        with self._lock:
            slot = self._find(sid)
            if slot is None:
                return False
            self._placed.pop(sid, None)
            self._count -= 1
            self._retire(slot)
            if self._touched is not None:
                self._touched.add(slot)
            self._ids[slot] = -1
            self._free.append(slot)
            return True

    def _retire(self, slot: int) -> None:
        # Takes the slot's current position out of the trees (the caller holds the lock).
        if self._static_live[slot]:
            self._static_live[slot] = False
            self._static_dead += 1
        else:
            self._dynamic.delete(slot, _point_box(float(self._lat[slot]), float(self._lng[slot])))

    def _take_slot(self) -> int:
        if self._free:
            return self._free.pop()
        if self._used == self._ids.shape[0]:
            old = (self._ids, self._lat, self._lng, self._static_live)
            self._allocate(2 * self._used)
            self._ids[: self._used] = old[0]
            self._lat[: self._used] = old[1]
            self._lng[: self._used] = old[2]
            self._static_live[: self._used] = old[3]
        slot = self._used
        self._used += 1
        return slot

    def nearest(
        self,
        lat: float,
        lng: float,
        k: int,
        max_distance_m: float | None = None,
        accept: Accept | None = None,
    ) -> Result:
        lat, lng = check_lat_lng(lat, lng)
        k = operator.index(k)
        limit_m = None
        if max_distance_m is not None:
            limit_m = check_distance(max_distance_m, "max_distance_m")
        if k <= 0:
            return []
        return self._nearest(lat, lng, k, limit_m, accept)

    def within(
        self,
        lat: float,
        lng: float,
        radius_m: float,
        limit: int | None = None,
        accept: Accept | None = None,
    ) -> Result:
        lat, lng = check_lat_lng(lat, lng)
        radius = check_distance(radius_m, "radius_m")
        if limit is not None:
            # The first `limit` accepted by (distance, id) with distance <= radius is exactly
            # a bounded kNN, which stops after a handful of candidates instead of ranking the
            # whole disc.
            limit = operator.index(limit)
            return self._nearest(lat, lng, limit, radius, accept) if limit > 0 else []
        centre = np.asarray(unit_vector(lat, lng), dtype=np.float64)
        half = box_half_width(radius)
        with self._lock:
            parts: list[SlotArray] = []
            if self._static.size:
                found = self._static.in_box(centre - half, centre + half)
                parts.append(found[self._static_live[found]])
            if self._dynamic.size:
                parts.append(self._dynamic.in_box(centre - half, centre + half))
            if not parts:
                return []
            slots = np.concatenate(parts)
            ids = self._ids[slots]
            lats = self._lat[slots]
            lngs = self._lng[slots]
        dists = haversine_m_array(lat, lng, lats, lngs)
        inside = dists <= radius  # the box over-covers the disc; this is the exact test
        ids = ids[inside]
        dists = dists[inside]
        order = np.lexsort((ids, dists))
        pairs = zip(ids[order].tolist(), dists[order].tolist(), strict=True)
        if accept is None:
            return list(pairs)
        return [(sid, d) for sid, d in pairs if accept(sid)]

    def _candidates(self, point: Box, want: int) -> tuple[SlotArray, list[tuple[int, bool]], int]:
        # Under the lock: up to `want` nearest from each tree, dead static entries dropped.
        # Returns the live slots, per tree (live count, exhausted), and the largest raw count.
        parts: list[SlotArray] = []
        trees: list[tuple[int, bool]] = []
        most = 0
        for tree in (self._static, self._dynamic):
            if not tree.size:
                continue
            found = tree.nearest(point, min(want, tree.size))
            most = max(most, found.shape[0])
            exhausted = found.shape[0] >= tree.size
            if tree is self._static:
                found = found[self._static_live[found]]
            parts.append(found)
            trees.append((found.shape[0], exhausted))
        slots = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return slots, trees, most

    def _nearest(
        self, lat: float, lng: float, k: int, limit_m: float | None, accept: Accept | None
    ) -> Result:
        point = _point_box(lat, lng)
        verdicts: dict[int, bool] = {}
        # One more than needed: the extra candidate usually proves the k-th settled in a
        # single round. A filter will reject some; start at 2k and adapt below.
        want = k + 1 if accept is None else 2 * k + 1
        while True:
            with self._lock:
                if not self._count:
                    return []
                slots, trees, most = self._candidates(point, want)
                ids = self._ids[slots]
                lats = self._lat[slots]
                lngs = self._lng[slots]
            dists = haversine_m_array(lat, lng, lats, lngs)
            dist_list: list[float] = dists.tolist()
            # Candidates strictly below `settled` are in their final place: every point a
            # tree did not return has a haversine_m above its tree's bound, so nothing unseen
            # can come before them, not even on a tie broken by a smaller id. A tree's bound
            # comes from the farthest live entry it returned (dead static entries were
            # returned too, so unseen ones are at least as far as any returned entry).
            settled = math.inf
            start = 0
            for live, exhausted in trees:
                if not exhausted:
                    if live:
                        farthest = max(dist_list[start : start + live])
                        settled = min(settled, unseen_lower_bound_m(farthest))
                    else:
                        settled = -math.inf
                start += live
            order = np.lexsort((ids, dists))
            out: Result = []
            examined = 0
            for sid, dist in zip(ids[order].tolist(), dists[order].tolist(), strict=True):
                if dist >= settled:
                    break
                if limit_m is not None and dist > limit_m:
                    return out
                if accept is not None:
                    examined += 1
                    verdict = verdicts.get(sid)
                    if verdict is None:
                        verdict = verdicts[sid] = bool(accept(sid))
                    if not verdict:
                        continue
                out.append((sid, dist))
                if len(out) == k:
                    return out
            else:
                if settled == math.inf:
                    return out  # both trees exhausted: every point was a candidate
            if limit_m is not None and settled > limit_m:
                return out  # every unseen point, and every unsettled one, is past the limit
            # Grow past tie groups too: a tree returns all entries tied at its want-th
            # distance, so a pile of duplicates can exceed 2 * want by itself. With a filter,
            # aim for the count its acceptance rate so far suggests, so a selective filter
            # costs a few rounds rather than one per doubling.
            want = max(2 * want, most + 1)
            if examined:
                rate = (len(out) + 1) / (examined + 1)
                want = max(want, examined + math.ceil(1.25 * (k - len(out)) / rate))
