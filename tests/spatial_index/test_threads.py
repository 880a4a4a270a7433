"""Readers never see a half-applied update while a writer moves stores and compacts.

Every store flips between two known positions, A and B. A reader's answer must be a
consistent picture: each id at most once, its distance that of A or of B, sorted by
(distance, id), and, as no store is ever removed, exactly k results. And completeness: a
store that is inside the answer's range in both of its positions must be in the answer,
which catches a move seen half-done (old entry gone, new one not yet in).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from spatial_index import SpatialIndex, haversine_m, haversine_m_array

N = 2_000
K = 15


def test_readers_see_whole_updates_while_a_writer_moves_and_compacts() -> None:
    rng = np.random.default_rng(42)
    ids = (rng.choice(10**9, N, replace=False) + 1).tolist()
    a_pos = [(30.66 + rng.normal(0, 0.005), 104.06 + rng.normal(0, 0.005)) for _ in ids]
    b_pos = [(lat + rng.normal(0, 0.001), lng + rng.normal(0, 0.001)) for lat, lng in a_pos]
    # A third of the stores move onto the same spot, so ties are in play too.
    for i in range(0, N, 3):
        b_pos[i] = (30.66, 104.06)
    index = SpatialIndex.bulk_load(ids, [p[0] for p in a_pos], [p[1] for p in a_pos])
    positions = {sid: (a, b) for sid, a, b in zip(ids, a_pos, b_pos, strict=True)}
    stop = threading.Event()
    errors: list[BaseException] = []
    answers = [0]

    ids_arr = np.asarray(ids)
    a_lat, a_lng = np.asarray(a_pos).T
    b_lat, b_lng = np.asarray(b_pos).T

    def check(
        lat: float, lng: float, result: list[tuple[int, float]], k: int | None, reach: float
    ) -> None:
        seen = [sid for sid, _ in result]
        assert len(seen) == len(set(seen)), "an id appeared twice"
        assert result == sorted(result, key=lambda pair: (pair[1], pair[0]))
        if k is not None:
            assert len(result) == k
        for sid, dist in result:
            a, b = positions[sid]
            assert dist in (haversine_m(lat, lng, *a), haversine_m(lat, lng, *b))
        if k is not None:
            reach = result[-1][1]
        worst = np.maximum(
            haversine_m_array(lat, lng, a_lat, a_lng), haversine_m_array(lat, lng, b_lat, b_lng)
        )
        must = set(ids_arr[worst < reach].tolist())
        assert must <= set(seen), "a store inside the range in both positions is missing"

    current = dict(zip(ids, a_pos, strict=True))

    def writer() -> None:
        try:
            moves = 0
            while not stop.is_set():
                j = int(rng.integers(N))
                a, b = positions[ids[j]]
                current[ids[j]] = b if moves % 2 else a
                index.upsert(ids[j], *current[ids[j]])
                moves += 1
        except BaseException as exc:
            errors.append(exc)

    def compactor() -> None:
        # Compactions race the writer: writes made during a rebuild must survive the swap.
        try:
            while not stop.is_set():
                index.compact()
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    def reader(seed: int) -> None:
        local = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                lat = 30.66 + float(local.normal(0, 0.005))
                lng = 104.06 + float(local.normal(0, 0.005))
                check(lat, lng, index.nearest(lat, lng, K), K, 0.0)
                check(30.66, 104.06, index.nearest(30.66, 104.06, K), K, 0.0)
                check(lat, lng, index.within(lat, lng, 300.0), None, 300.0)
                check(lat, lng, index.within(lat, lng, 2_000.0, limit=K, accept=odd), None, 0.0)
                answers[0] += 4
        except BaseException as exc:
            errors.append(exc)

    def odd(store_id: int) -> bool:
        return store_id % 2 == 1

    threads = [threading.Thread(target=writer), threading.Thread(target=compactor)]
    threads += [threading.Thread(target=reader, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert answers[0] > 100
    assert len(index) == N
    # Once quiet, the index holds exactly the writer's last positions.
    assert {sid: index.position(sid) for sid in ids} == current
    for lat, lng in [(30.66, 104.06), (30.665, 104.055), (30.64, 104.07)]:
        expected = sorted(
            ((sid, haversine_m(lat, lng, *pos)) for sid, pos in current.items()),
            key=lambda pair: (pair[1], pair[0]),
        )
        assert index.nearest(lat, lng, K) == expected[:K]
        assert index.within(lat, lng, 250.0) == [(s, d) for s, d in expected if d <= 250.0]
