"""Random sequences of bulk loads, inserts, moves, removes and compactions against a model dict.

After every step the index must answer exactly like a brute-force scan of the model.
"""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from spatial_index import SpatialIndex

from .brute import CENTRES, Points, brute_nearest, brute_within, clamp, make_points, query_near

# Positions come from a small pool around one place (duplicates, moves onto another store's
# spot, moves back), plus fresh nearby points and, rarely, anywhere on Earth.
pool_index = st.integers(min_value=0, max_value=11)
jitter = st.floats(min_value=-1e-3, max_value=1e-3, allow_nan=False)
ids = st.integers(min_value=1, max_value=60) | st.integers(min_value=1, max_value=2**62)


class IndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.index = SpatialIndex()
        self.model: Points = {}
        self.pool: list[tuple[float, float]] = []
        self.rng = np.random.default_rng(0)

    @initialize(
        kind=st.sampled_from(["cluster", "duplicates", "china", "sparse", "empty"]),
        n=st.integers(min_value=0, max_value=80),
        seed=st.integers(min_value=0, max_value=2**32 - 1),
    )
    def load(self, kind: str, n: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.model = {} if kind == "empty" else make_points(kind, n, seed)
        centre = CENTRES[int(self.rng.integers(len(CENTRES)))]
        self.pool = [
            clamp(
                centre[0] + float(self.rng.normal(0, 1e-3)),
                centre[1] + float(self.rng.normal(0, 1e-3)),
            )
            for _ in range(12)
        ]
        ids_list = list(self.model)
        self.index = SpatialIndex.bulk_load(
            ids_list,
            [self.model[i][0] for i in ids_list],
            [self.model[i][1] for i in ids_list],
        )

    def _some_id(self, data: st.DataObject) -> int:
        existing: bool = data.draw(st.booleans())
        if existing and self.model:
            return data.draw(st.sampled_from(sorted(self.model)))
        return data.draw(ids)

    @rule(data=st.data(), slot=pool_index, exact=st.booleans(), dlat=jitter, dlng=jitter)
    def upsert(self, data: st.DataObject, slot: int, exact: bool, dlat: float, dlng: float) -> None:
        sid = self._some_id(data)
        lat, lng = self.pool[slot]
        if not exact:
            lat, lng = clamp(lat + dlat, lng + dlng)
        self.index.upsert(sid, lat, lng)
        self.model[sid] = (lat, lng)

    @rule(data=st.data())
    def upsert_anywhere(self, data: st.DataObject) -> None:
        sid = self._some_id(data)
        lat, lng = query_near(self.model, self.rng)
        self.index.upsert(sid, lat, lng)
        self.model[sid] = (lat, lng)

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        sid = self._some_id(data)
        assert self.index.remove(sid) == (sid in self.model)
        self.model.pop(sid, None)

    @rule()
    def compact(self) -> None:
        self.index.compact()
        assert self.index.pending_compaction == 0

    @rule(
        k=st.integers(min_value=-1, max_value=30),
        filtered=st.booleans(),
        bounded=st.booleans(),
        on_pool=st.booleans(),
    )
    def query_nearest(self, k: int, filtered: bool, bounded: bool, on_pool: bool) -> None:
        lat, lng = self.pool[0] if on_pool else query_near(self.model, self.rng)
        accept = (lambda sid: sid % 2 == 0) if filtered else None
        max_m = float(10.0 ** self.rng.uniform(0.0, 6.0)) if bounded else None
        expected = brute_nearest(self.model, lat, lng, k, max_m, accept)
        assert self.index.nearest(lat, lng, k, max_m, accept) == expected

    @rule(filtered=st.booleans(), limit=st.none() | st.integers(min_value=0, max_value=15))
    def query_within(self, filtered: bool, limit: int | None) -> None:
        lat, lng = query_near(self.model, self.rng)
        radius = float(10.0 ** self.rng.uniform(-1.0, 6.0))
        if self.model and self.rng.random() < 0.3:  # exactly on some store's distance
            target = self.model[sorted(self.model)[0]]
            radius = brute_nearest({0: target}, lat, lng, 1)[0][1]
        accept = (lambda sid: sid % 2 == 1) if filtered else None
        expected = brute_within(self.model, lat, lng, radius, limit, accept)
        assert self.index.within(lat, lng, radius, limit, accept) == expected

    @invariant()
    def same_contents(self) -> None:
        assert len(self.index) == len(self.model)
        for sid in list(self.model)[:5]:
            assert sid in self.index
            assert self.index.position(sid) == self.model[sid]


IndexMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
TestIndexMachine = IndexMachine.TestCase
