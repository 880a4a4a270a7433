"""The two libspatialindex R-trees behind SpatialIndex, and the measurements that shaped them.

Why two trees. libspatialindex's bulk loader packs every node with exactly
floor(capacity * fill_factor) entries, and that same number is the minimum fill below which a
node underflows on delete. So the first delete in any bulk-loaded node underflows it, and its
parent, which is packed the same way: the condense step reinserts whole subtrees. Measured at
1M points: 90-1200 us per delete (p50) whatever the capacity and fill factor. Hence:

* the static tree is bulk-loaded once and never deleted from. A store that moves or is removed
  only has its entry marked dead (per slot, in SpatialIndex), and queries skip dead entries;
* the dynamic tree receives every insert and move after the bulk load. Built one insert at a
  time, its nodes have slack, so deletes are cheap (quadratic split, low minimum fill):
  ~12 us p50, ~50 us p99 with 200k entries.

Dead static entries cost memory and query time, and every query asks both trees (the
dynamic one adds ~25 us at 50k entries). SpatialIndex.compact() folds everything back into a
fresh static tree without stopping readers or writers.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from rtree import index as rtree_index

SlotArray = npt.NDArray[np.int64]
Box = tuple[float, float, float, float, float, float]

# Static tree, measured at 1M clustered points: capacity 16 gave the best kNN p50 and p99 of
# 8..64 (node visits vs entries deserialised per visit: libspatialindex's memory storage
# deserialises each node it reads, and allocates per entry of every leaf it opens), at
# ~140 B/store (32: ~115 B, ~10% slower). A near-full fill factor is free: it never deletes.
_STATIC_CAPACITY: Final[int] = 16
_STATIC_FILL: Final[float] = 0.9
# Dynamic tree: R* (the default) reinserts on underflow and overflow, which showed up as
# 200-800 us p99 deletes; quadratic split with a 30% minimum fill kept p99 under ~60 us.
_DYNAMIC_CAPACITY: Final[int] = 16
_DYNAMIC_FILL: Final[float] = 0.3
# R*-style subtree choice weighs overlap among this many candidates; libspatialindex requires
# it below both capacities (its default, 32, suits its default capacity of 100).
_NEAR_MINIMUM_OVERLAP: Final[int] = 8


def _properties(capacity: int, fill: float, variant: int) -> rtree_index.Property:
    props = rtree_index.Property()
    props.dimension = 3
    props.leaf_capacity = capacity
    props.index_capacity = capacity
    props.fill_factor = fill
    props.variant = variant
    props.near_minimum_overlap_factor = _NEAR_MINIMUM_OVERLAP
    return props


class PointTree:
    # A 3-D R-tree of points keyed by slot, with its entry count (libspatialindex's own count
    # walks the tree).

    def __init__(self, tree: rtree_index.Index) -> None:
        self._tree = tree
        self.size = 0

    @classmethod
    def static(cls, slots: SlotArray, xyz: npt.NDArray[np.float64]) -> PointTree:
        props = _properties(_STATIC_CAPACITY, _STATIC_FILL, rtree_index.RT_Star)
        if slots.shape[0] == 0:
            return cls(rtree_index.Index(properties=props))
        # The array form of the bulk loader (sort-tile-recursive): no per-point Python work,
        # and ctypes releases the GIL for it, so queries go on meanwhile (see compact).
        built = cls(rtree_index.Index((slots, xyz, xyz), properties=props))
        built.size = slots.shape[0]
        return built

    @classmethod
    def dynamic(cls) -> PointTree:
        props = _properties(_DYNAMIC_CAPACITY, _DYNAMIC_FILL, rtree_index.RT_Quadratic)
        return cls(rtree_index.Index(properties=props))

    def insert(self, slot: int, box: Box) -> None:
        self._tree.insert(slot, box)
        self.size += 1

    def delete(self, slot: int, box: Box) -> None:
        # `box` must be bit-for-bit the one inserted: the tree finds the entry by it.
        self._tree.delete(slot, box)
        self.size -= 1

    def nearest(self, point: Box, count: int) -> SlotArray:
        # At least `count` slots (all of them tied at the count-th distance are included) in
        # ascending Euclidean distance as the tree computes it.
        return np.fromiter(self._tree.nearest(point, count), dtype=np.int64)

    def in_box(self, mins: npt.NDArray[np.float64], maxs: npt.NDArray[np.float64]) -> SlotArray:
        slots, _ = self._tree.intersection_v(mins[None, :], maxs[None, :])  # type: ignore[no-untyped-call]
        result: SlotArray = np.asarray(slots, dtype=np.int64)
        return result
