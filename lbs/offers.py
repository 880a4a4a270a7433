"""How nearby search learns each store's best offer for a user.

The coupon engine decides what the best offer is (its stock, limits, time windows and stacking
rules); `lbs` only asks. The app wires the engine's lookup in at start; until an engine is wired,
stores are shown without offers rather than with invented ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from lbs.schemas import OfferBrief


class OfferLookup(Protocol):
    def __call__(
        self, session: Session, *, store_ids: Sequence[int], openid: str | None, now: datetime
    ) -> Mapping[int, OfferBrief]: ...


def no_offers(
    session: Session, *, store_ids: Sequence[int], openid: str | None, now: datetime
) -> Mapping[int, OfferBrief]:
    return {}
