"""Argument checks shared by SpatialIndex's methods: clear ValueErrors at the boundary."""

from __future__ import annotations

import math
import operator
from typing import Final

import numpy as np
import numpy.typing as npt

from .geometry import FloatArray

MAX_ID: Final[int] = 2**63 - 1  # ids are stored in int64 slots; -1 marks a free slot


def check_id(store_id: int) -> int:
    if isinstance(store_id, bool):
        raise TypeError("store id must be an int, got bool")
    value = operator.index(store_id)
    if not 0 <= value <= MAX_ID:
        raise ValueError(f"store id must be in [0, 2**63 - 1], got {value}")
    return value


def check_distance(value: float, name: str) -> float:
    value_f = float(value)
    if not math.isfinite(value_f) or value_f < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value_f


def as_id_array(ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
    raw = np.asarray(ids)
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    if raw.ndim != 1 or raw.dtype.kind not in "iu":
        raise ValueError("ids must be a 1-D sequence of ints")
    if raw.dtype.kind == "u" and int(raw.max()) > MAX_ID:
        raise ValueError("store ids must be in [0, 2**63 - 1]")
    as_int = raw.astype(np.int64)
    if int(as_int.min()) < 0:
        raise ValueError("store ids must be in [0, 2**63 - 1]")
    return as_int


def as_coordinate_array(values: npt.ArrayLike, name: str, bound: float, n: int) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be 1-D with one value per id ({n}), got {arr.shape}")
    bad = np.flatnonzero(~(np.isfinite(arr) & (np.abs(arr) <= bound)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] must be finite and within ±{bound:g}, got {arr[i]!r}")
    return arr
