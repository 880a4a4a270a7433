"""Each store's best offer for a user, for nearby answers and WeChat replies.

There is no order yet at that point, so `coupons.rules.best_offer` judges every rule but the
amount (time windows, weekdays, validity, store scope) and picks the offer with the largest
headline value. The user's new-customer status is not known here, so new-customer-only offers
are not advertised: they are shown at checkout, where it is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from coupons.rules import ApplyContext, best_offer
from coupons.schemas import OfferBrief
from coupons.service import active_offers_for_stores


def best_offers(
    session: Session, *, store_ids: Sequence[int], openid: str | None, now: datetime
) -> Mapping[int, OfferBrief]:
    """Stores without a claimable offer are left out. Two queries for any number of stores."""
    briefs: dict[int, OfferBrief] = {}
    for store_id, offers in active_offers_for_stores(session, store_ids, now).items():
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
