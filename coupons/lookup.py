"""Each store's best offer for a user, for nearby answers and WeChat replies.

There is no order yet at that point, so `coupons.rules.best_offer` judges every rule but the
amount (time windows, weekdays, validity, store scope) and picks the offer with the largest
headline value. The user's new-customer status is not known here, so new-customer-only offers
are not advertised: they are shown at checkout, where it is known.

This runs on every location a user sends, so each worker keeps what it read for a couple of
seconds (`OfferCatalog`). Advertising is all that is cached: stock, budget and limits are
decided by the database when a coupon is claimed, so an offer that sold out a second ago is at
worst shown once more and then refused with a clear message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from coupons.rules import ApplyContext, OfferTerms, best_offer
from coupons.schemas import OfferBrief
from coupons.service import (
    active_offers_for_stores,
    active_offers_of_merchants,
    merchants_with_active_offers,
)

DEFAULT_TTL_S = 2.0
_MAX_ENTRIES = 200_000


def best_offers(
    session: Session, *, store_ids: Sequence[int], openid: str | None, now: datetime
) -> Mapping[int, OfferBrief]:
    """Stores without a claimable offer are left out. Two queries for any number of stores."""
    return _choose(active_offers_for_stores(session, store_ids, now), now)


def _choose(
    offers_by_store: Mapping[int, list[OfferTerms]], now: datetime
) -> dict[int, OfferBrief]:
    briefs: dict[int, OfferBrief] = {}
    for store_id, offers in offers_by_store.items():
        if not offers:
            continue
        context = ApplyContext(
            now=now, store_id=store_id, merchant_id=offers[0].merchant_id, payable_fen=None
        )
        choice = best_offer(offers, context)
        if choice is None or not choice.offers:
            continue
        chosen = choice.offers[0]
        briefs[store_id] = OfferBrief(
            id=chosen.offer_id, title=chosen.title_zh, explanation=choice.explanation_zh
        )
    return briefs


class _Remembered:
    """Lists of offer terms by key (a store or a merchant), each until its expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[float, list[OfferTerms]]] = {}

    def get(
        self, keys: Iterable[int], moment: float
    ) -> tuple[dict[int, list[OfferTerms]], list[int]]:
        """(what is remembered and still fresh, the keys that are not)."""
        found: dict[int, list[OfferTerms]] = {}
        missing = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None and entry[0] > moment:
                    found[key] = entry[1]
                else:
                    missing.append(key)
        return found, missing

    def put(self, fetched: Mapping[int, list[OfferTerms]], expires: float) -> None:
        with self._lock:
            if len(self._entries) + len(fetched) > _MAX_ENTRIES:
                self._entries = {}
            for key, terms in fetched.items():
                self._entries[key] = (expires, terms)


class OfferCatalog:
    """`best_offers` with the claimable offers it read remembered for `ttl_s` seconds.

    Most stores have no offer at all. Given `merchant_of` (a store's merchant, as this worker's
    store index knows it), the catalog remembers which merchants have an active offer and each
    such merchant's offers, and asks the database about nothing else; without it, each store's.
    """

    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        merchant_of: Callable[[int], int | None] | None = None,
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._merchant_of = merchant_of
        self._by_store = _Remembered()
        self._by_merchant = _Remembered()
        self._merchants: tuple[float, frozenset[int]] = (float("-inf"), frozenset())

    def __call__(
        self, session: Session, *, store_ids: Sequence[int], openid: str | None, now: datetime
    ) -> Mapping[int, OfferBrief]:
        if self._merchant_of is not None:
            offers = self._offers_by_merchant(session, store_ids, now, self._merchant_of)
        else:
            offers = self._offers_by_store(session, store_ids, now)
        return _choose(offers, now)

    def _offers_by_store(
        self, session: Session, store_ids: Sequence[int], now: datetime
    ) -> dict[int, list[OfferTerms]]:
        moment = self._clock()
        found, missing = self._by_store.get(store_ids, moment)
        if missing:
            fetched = active_offers_for_stores(session, missing, now)
            self._by_store.put(fetched, moment + self._ttl_s)
            found.update(fetched)
        return found

    def _offers_by_merchant(
        self,
        session: Session,
        store_ids: Sequence[int],
        now: datetime,
        merchant_of: Callable[[int], int | None],
    ) -> dict[int, list[OfferTerms]]:
        # Offers belong to merchants: the twenty stores around a user belong to a handful of
        # them, and chains to one, so remembering merchants' offers answers most pushes with no
        # query at all, where remembering stores' rarely does in a city of 100k stores.
        moment = self._clock()
        merchants = self._merchants_with_offers(session, moment)
        store_merchant = {
            store_id: merchant
            for store_id in store_ids
            if (merchant := merchant_of(store_id)) is not None and merchant in merchants
        }
        offers, missing = self._by_merchant.get(set(store_merchant.values()), moment)
        if missing:
            fetched = active_offers_of_merchants(session, missing, now)
            self._by_merchant.put(fetched, moment + self._ttl_s)
            offers.update(fetched)
        return {
            store_id: [
                terms
                for terms in offers[merchant]
                if terms.store_ids is None or store_id in terms.store_ids
            ]
            for store_id, merchant in store_merchant.items()
        }

    def _merchants_with_offers(self, session: Session, moment: float) -> frozenset[int]:
        expires, merchants = self._merchants
        if expires > moment:
            return merchants
        merchants = merchants_with_active_offers(session)
        self._merchants = (moment + self._ttl_s, merchants)
        return merchants
