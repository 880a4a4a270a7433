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
from collections.abc import Callable, Mapping, Sequence
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


class OfferCatalog:
    """`best_offers` with each store's claimable offers remembered for `ttl_s` seconds.

    Most stores have no offer at all. Given `merchant_of` (a store's merchant, as this worker's
    store index knows it), the catalog also remembers which merchants have an active offer and
    asks the database only about the stores of those merchants.
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
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[float, list[OfferTerms]]] = {}
        self._by_merchant: dict[int, tuple[float, list[OfferTerms]]] = {}
        self._merchants: tuple[float, frozenset[int]] = (float("-inf"), frozenset())

    def __call__(
        self, session: Session, *, store_ids: Sequence[int], openid: str | None, now: datetime
    ) -> Mapping[int, OfferBrief]:
        return _choose(self._offers(session, store_ids, now), now)

    def _offers(
        self, session: Session, store_ids: Sequence[int], now: datetime
    ) -> dict[int, list[OfferTerms]]:
        if self._merchant_of is not None:
            return self._offers_by_merchant(session, store_ids, now, self._merchant_of)
        moment = self._clock()
        found: dict[int, list[OfferTerms]] = {}
        missing = []
        with self._lock:
            for store_id in store_ids:
                entry = self._entries.get(store_id)
                if entry is not None and entry[0] > moment:
                    found[store_id] = entry[1]
                else:
                    missing.append(store_id)
        if missing and self._merchant_of is not None:
            merchants = self._merchants_with_offers(session, moment)
            missing = [i for i in missing if self._merchant_of(i) in merchants]
        if missing:
            fetched = active_offers_for_stores(session, missing, now)
            expires = moment + self._ttl_s
            with self._lock:
                if len(self._entries) + len(fetched) > _MAX_ENTRIES:
                    self._entries = {}
                for store_id, offers in fetched.items():
                    self._entries[store_id] = (expires, offers)
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
        offers: dict[int, list[OfferTerms]] = {}
        missing = []
        with self._lock:
            for merchant in set(store_merchant.values()):
                entry = self._by_merchant.get(merchant)
                if entry is not None and entry[0] > moment:
                    offers[merchant] = entry[1]
                else:
                    missing.append(merchant)
        if missing:
            fetched = active_offers_of_merchants(session, missing, now)
            expires = moment + self._ttl_s
            with self._lock:
                if len(self._by_merchant) + len(fetched) > _MAX_ENTRIES:
                    self._by_merchant = {}
                for merchant, terms in fetched.items():
                    self._by_merchant[merchant] = (expires, terms)
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
