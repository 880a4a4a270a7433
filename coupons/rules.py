"""Offer arithmetic, applicability and the best-offer choice: pure, no database, no HTTP.

Money is integer fen throughout.

Arithmetic (:func:`discount_fen`), for an order of ``payable_fen``:

* Below the offer's required spend (``min_spend_fen``, and for 满X减Y also ``threshold_fen``)
  it gives nothing.
* ``fixed_off`` / ``threshold_off`` / ``points_exchange`` take ``amount_off_fen`` off (a points
  exchange may be a cash-off coupon, a gift, or both).
* ``percent_off`` takes ``floor(payable_fen * discount_permille / 1000)`` off, then at most
  ``cap_fen`` (最高减). Rounding is always DOWN, in the customer's disfavour by under one fen, so
  8.8折 (120‰ off) of 1999 fen is 239 fen off, never 240.
* ``gift`` takes nothing off; its ``gift_value_fen`` is benefit, not discount. Any kind may carry
  a ``gift_value_fen``; it adds to that offer's benefit.
* The result is never negative and never above ``payable_fen`` (mall#1002: a 50元立减 on a 30元
  order takes 30元 off).

Applicability (:func:`evaluate`), judged in this order, the first failure being the reason given:
merchant and store scope; validity (``valid_from`` inclusive, ``valid_until`` exclusive);
weekday, then time-of-day window, both on the Asia/Shanghai wall clock of ``ctx.now`` (a
window is ``[start, end)``, ``end == time(0)`` meaning midnight; a night spanning midnight is two
windows, and the part after midnight is judged on the next weekday); new customers only; points
(a points exchange needs a known ``points_balance >= points_cost``); last the required spend.
``shortfall_fen`` is therefore non-zero only when the spend is the one thing missing.

Stacking (:func:`best_offer`):

* An exclusive offer is used alone. Otherwise at most ONE offer per kind is combined.
* Every offer's discount and spend requirement are judged on the original ``payable_fen``
  (no offer sees the price another has already cut); the summed discount is capped at
  ``payable_fen``. Gift values add to benefit on top.
* The choice maximises total benefit (capped discount + gift values); ties go to the higher
  summed priority, then to fewer offers, then to the lower offer ids (sorted ids compared
  lexicographically), so the result does not depend on the input order.
* Without an order (``payable_fen is None``: the WeChat reply, the nearby list) the spend is not
  judged and one offer is chosen by its headline value (:func:`headline_value_fen`), then
  priority, then lower id.
* ``near_miss``: with an order, the offer failing only on spend whose benefit at the required
  spend would beat the chosen benefit; smallest shortfall first, then larger benefit, priority,
  lower id. With no applicable offer but a near miss the choice is empty (``offers == ()``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum

from coupons import explain
from coupons.explain import yuan
from merchants.opening_hours import SHANGHAI

__all__ = [
    "ApplyContext",
    "BestChoice",
    "Evaluation",
    "OfferKind",
    "OfferTerms",
    "TimeWindow",
    "best_offer",
    "discount_fen",
    "evaluate",
    "headline_value_fen",
    "required_spend_fen",
    "yuan",
]

_PERMILLE = 1000


class OfferKind(StrEnum):
    fixed_off = "fixed_off"  # 立减
    threshold_off = "threshold_off"  # 满X减Y
    percent_off = "percent_off"  # 折扣 (120‰ off = 8.8折), 最高减 cap_fen
    gift = "gift"  # 赠品: benefit only
    points_exchange = "points_exchange"  # 积分换礼


@dataclass(frozen=True)
class TimeWindow:
    """Asia/Shanghai wall-clock ``[start, end)``; ``end == time(0)`` is midnight."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("time windows are Asia/Shanghai wall-clock times, without tzinfo")
        if not (self.start < self.end or self.end == time(0)):
            raise ValueError(f"time window {self.start}-{self.end}: start must precede end")

    def contains(self, moment: time) -> bool:
        return self.start <= moment and (self.end == time(0) or moment < self.end)


@dataclass(frozen=True)
class OfferTerms:
    offer_id: int
    merchant_id: int
    kind: OfferKind
    title_zh: str  # shown as-is, e.g. "满100减20"
    amount_off_fen: int = 0
    threshold_fen: int = 0
    discount_permille: int = 0
    cap_fen: int | None = None
    gift_value_fen: int = 0
    points_cost: int = 0
    min_spend_fen: int = 0
    exclusive: bool = False
    priority: int = 0
    weekdays: frozenset[int] | None = None  # 0=Monday..6=Sunday; None = every day
    time_windows: tuple[TimeWindow, ...] = ()  # empty = all day
    valid_from: datetime | None = None
    valid_until: datetime | None = None  # exclusive
    store_ids: frozenset[int] | None = None  # None = every store of the merchant
    new_customers_only: bool = False

    def __post_init__(self) -> None:
        # Refused when built, so a bad row fails where it is loaded, not in a customer's reply.
        # A plain string kind (a raw column value) becomes the enum, as the rules compare with
        # `is`; an unknown kind raises ValueError here.
        object.__setattr__(self, "kind", OfferKind(self.kind))
        _check_amounts(self)
        _check_calendar(self)


def _check_amounts(terms: OfferTerms) -> None:
    amounts = {
        "amount_off_fen": terms.amount_off_fen,
        "threshold_fen": terms.threshold_fen,
        "gift_value_fen": terms.gift_value_fen,
        "points_cost": terms.points_cost,
        "min_spend_fen": terms.min_spend_fen,
        "cap_fen": terms.cap_fen or 0,
    }
    negative = [name for name, value in amounts.items() if value < 0]
    if negative:
        raise ValueError(f"offer {terms.offer_id}: negative {', '.join(negative)}")
    if not 0 <= terms.discount_permille <= _PERMILLE:
        raise ValueError(f"offer {terms.offer_id}: discount_permille must be within 0..1000")


def _check_calendar(terms: OfferTerms) -> None:
    if terms.weekdays is not None and (not terms.weekdays or not terms.weekdays <= set(range(7))):
        raise ValueError(f"offer {terms.offer_id}: weekdays must be a non-empty subset of 0..6")
    bounds = [moment for moment in (terms.valid_from, terms.valid_until) if moment is not None]
    if any(moment.utcoffset() is None for moment in bounds):
        raise ValueError(f"offer {terms.offer_id}: validity bounds must be timezone-aware")
    if terms.valid_from and terms.valid_until and terms.valid_from >= terms.valid_until:
        raise ValueError(f"offer {terms.offer_id}: valid_from must precede valid_until")


@dataclass(frozen=True)
class ApplyContext:
    now: datetime  # aware
    store_id: int
    merchant_id: int
    payable_fen: int | None  # None: no order yet (the WeChat reply / nearby list)
    is_new_customer: bool = False
    points_balance: int | None = None  # None: unknown

    def __post_init__(self) -> None:
        if self.now.utcoffset() is None:
            raise ValueError("ApplyContext.now must be timezone-aware")
        if self.payable_fen is not None and self.payable_fen < 0:
            raise ValueError("payable_fen must not be negative")


@dataclass(frozen=True)
class Evaluation:
    offer: OfferTerms
    applies: bool
    discount_fen: int  # on its own, for payable_fen; 0 if it doesn't apply or there is no order
    benefit_fen: int  # discount_fen + gift value
    reason_zh: str
    shortfall_fen: int = 0  # more to spend to qualify, when spend is the only thing missing

    @property
    def gift_fen(self) -> int:
        return self.benefit_fen - self.discount_fen


@dataclass(frozen=True)
class BestChoice:
    offers: tuple[OfferTerms, ...]  # largest benefit first; empty only beside a near miss
    discount_fen: int  # total price reduction, never above payable_fen; 0 without an order
    benefit_fen: int  # without an order: the headline value of the one offer
    explanation_zh: str
    near_miss: Evaluation | None = None


def required_spend_fen(offer: OfferTerms) -> int:
    """The order amount an offer needs; 满X减Y's X counts only for threshold_off."""
    threshold = offer.threshold_fen if offer.kind is OfferKind.threshold_off else 0
    return max(offer.min_spend_fen, threshold)


def _raw_discount_fen(offer: OfferTerms, payable_fen: int) -> int:
    if offer.kind is OfferKind.gift:
        return 0
    if offer.kind is OfferKind.percent_off:
        # Floor division rounds the discount down (see the module docstring).
        off = payable_fen * offer.discount_permille // _PERMILLE
        return off if offer.cap_fen is None else min(off, offer.cap_fen)
    return offer.amount_off_fen


def discount_fen(offer: OfferTerms, payable_fen: int) -> int:
    """The price reduction the terms give on ``payable_fen`` alone (no time/store/user rules)."""
    if payable_fen < 0:
        raise ValueError("payable_fen must not be negative")
    if payable_fen < required_spend_fen(offer):
        return 0
    return min(_raw_discount_fen(offer, payable_fen), payable_fen)


def headline_value_fen(offer: OfferTerms) -> int:
    """What an offer is worth before any order, for ranking the WeChat reply and nearby list.

    The amount off (立减, 满X减Y, points exchange); for a percentage its cap (最高减), or without a
    cap the percentage of the required spend (0 if none is required); plus any gift value.
    """
    if offer.kind is OfferKind.gift:
        off = 0
    elif offer.kind is OfferKind.percent_off and offer.cap_fen is not None:
        off = offer.cap_fen
    elif offer.kind is OfferKind.percent_off:
        off = required_spend_fen(offer) * offer.discount_permille // _PERMILLE
    else:
        off = offer.amount_off_fen
    return off + offer.gift_value_fen


def _scope_blocker(offer: OfferTerms, ctx: ApplyContext) -> str | None:
    if offer.merchant_id != ctx.merchant_id:
        return "不适用于本店"
    if offer.store_ids is not None and ctx.store_id not in offer.store_ids:
        return "不适用于本店"
    return None


def _validity_blocker(offer: OfferTerms, now: datetime) -> str | None:
    if offer.valid_until is not None and now >= offer.valid_until:
        return "已过期"
    if offer.valid_from is not None and now < offer.valid_from:
        return "未到使用时间"
    return None


def _calendar_blocker(offer: OfferTerms, now: datetime) -> str | None:
    local = now.astimezone(SHANGHAI)
    if offer.weekdays is not None and local.weekday() not in offer.weekdays:
        return explain.only_on_zh(explain.weekdays_zh(offer.weekdays))
    wall_clock = local.time().replace(tzinfo=None)
    windows = offer.time_windows
    if windows and not any(window.contains(wall_clock) for window in windows):
        return explain.only_on_zh(explain.windows_zh((w.start, w.end) for w in windows))
    return None


def _customer_blocker(offer: OfferTerms, ctx: ApplyContext) -> str | None:
    if offer.new_customers_only and not ctx.is_new_customer:
        return "仅限新客"
    if offer.kind is not OfferKind.points_exchange:
        return None
    if ctx.points_balance is None:
        return explain.points_needed_zh(offer.points_cost)
    if ctx.points_balance < offer.points_cost:
        return explain.points_short_zh(offer.points_cost - ctx.points_balance)
    return None


def _blocker(offer: OfferTerms, ctx: ApplyContext) -> str | None:
    """The first rule other than spend that the offer fails in this context, as its reason."""
    return (
        _scope_blocker(offer, ctx)
        or _validity_blocker(offer, ctx.now)
        or _calendar_blocker(offer, ctx.now)
        or _customer_blocker(offer, ctx)
    )


def evaluate(offer: OfferTerms, ctx: ApplyContext) -> Evaluation:
    blocker = _blocker(offer, ctx)
    if blocker is not None:
        return Evaluation(offer, applies=False, discount_fen=0, benefit_fen=0, reason_zh=blocker)
    required = required_spend_fen(offer)
    if ctx.payable_fen is None:
        # 满X减Y states its X in the title; any other minimum spend must be said.
        stated = offer.threshold_fen if offer.kind is OfferKind.threshold_off else 0
        reason = explain.headline_zh(offer.title_zh, required if required > stated else 0)
        return Evaluation(offer, True, 0, offer.gift_value_fen, reason)
    shortfall = required - ctx.payable_fen
    if shortfall > 0:
        reason = explain.spend_more_zh(shortfall, offer.title_zh)
        return Evaluation(offer, False, 0, 0, reason, shortfall_fen=shortfall)
    off = discount_fen(offer, ctx.payable_fen)
    reason = explain.applies_zh(offer.title_zh, had_spend_condition=required > 0)
    return Evaluation(offer, True, off, off + offer.gift_value_fen, reason)


def _totals(combo: Sequence[Evaluation], payable_fen: int) -> tuple[int, int]:
    """(discount, benefit) of a combination: discounts summed then capped, gifts on top."""
    off = min(sum(e.discount_fen for e in combo), payable_fen)
    return off, off + sum(e.gift_fen for e in combo)


def _rank(combo: Sequence[Evaluation], payable_fen: int) -> tuple[int, int, int, tuple[int, ...]]:
    """Smaller is better: more benefit, more priority, fewer offers, lower ids."""
    _, benefit = _totals(combo, payable_fen)
    priority = sum(e.offer.priority for e in combo)
    return -benefit, -priority, len(combo), tuple(sorted(e.offer.offer_id for e in combo))


def _dominates(better: Evaluation, worse: Evaluation) -> bool:
    # Swapping `worse` for `better` in any combination never lowers benefit or priority, keeps
    # the count and lowers the ids, so `worse` can never be part of the unique best choice.
    return (
        better.discount_fen >= worse.discount_fen
        and better.gift_fen >= worse.gift_fen
        and better.offer.priority >= worse.offer.priority
        and better.offer.offer_id < worse.offer.offer_id
    )


def _pareto(same_kind: list[Evaluation]) -> list[Evaluation]:
    return [e for e in same_kind if not any(_dominates(other, e) for other in same_kind)]


def _combinations(applicable: Sequence[Evaluation]) -> Iterator[tuple[Evaluation, ...]]:
    for e in applicable:
        if e.offer.exclusive:
            yield (e,)
    stackable = [e for e in applicable if not e.offer.exclusive]
    # Per kind, only offers no sibling dominates can matter; in practice that leaves one or two,
    # which keeps the product over the five kinds small.
    per_kind = [
        [None, *_pareto([e for e in stackable if e.offer.kind is kind])] for kind in OfferKind
    ]
    for picks in itertools.product(*per_kind):
        combo = tuple(e for e in picks if e is not None)
        if combo:
            yield combo


def _near_miss(evaluations: Sequence[Evaluation], payable_fen: int, beat: int) -> Evaluation | None:
    def benefit_when_met(e: Evaluation) -> int:
        return discount_fen(e.offer, payable_fen + e.shortfall_fen) + e.offer.gift_value_fen

    misses = [e for e in evaluations if e.shortfall_fen > 0 and benefit_when_met(e) > beat]
    return min(
        misses,
        key=lambda e: (e.shortfall_fen, -benefit_when_met(e), -e.offer.priority, e.offer.offer_id),
        default=None,
    )


def _best_for_order(evaluations: Sequence[Evaluation], payable_fen: int) -> BestChoice | None:
    applicable = [e for e in evaluations if e.applies]
    combo = min(_combinations(applicable), key=lambda c: _rank(c, payable_fen), default=())
    combo = tuple(sorted(combo, key=lambda e: (-e.benefit_fen, e.offer.offer_id)))
    off, benefit = _totals(combo, payable_fen)
    near_miss = _near_miss(evaluations, payable_fen, beat=benefit)
    if not combo:
        if near_miss is None:
            return None
        return BestChoice((), 0, 0, near_miss.reason_zh, near_miss)
    text = explain.choice_zh([e.offer.title_zh for e in combo], off, benefit - off)
    if near_miss is not None:
        text = explain.with_near_miss_zh(text, near_miss.reason_zh)
    return BestChoice(tuple(e.offer for e in combo), off, benefit, text, near_miss)


def _best_headline(evaluations: Sequence[Evaluation]) -> BestChoice | None:
    applicable = [e for e in evaluations if e.applies]
    best = min(
        applicable,
        key=lambda e: (-headline_value_fen(e.offer), -e.offer.priority, e.offer.offer_id),
        default=None,
    )
    if best is None:
        return None
    return BestChoice((best.offer,), 0, headline_value_fen(best.offer), best.reason_zh)


def best_offer(offers: Sequence[OfferTerms], ctx: ApplyContext) -> BestChoice | None:
    """The best offer or combination for ``ctx`` under the stacking rules of this module.

    None when nothing applies (and, with an order, nothing is within reach either).
    """
    ids = [offer.offer_id for offer in offers]
    if len(set(ids)) != len(ids):
        # The tie-break on ids must be total for the choice not to depend on input order.
        raise ValueError("offer ids must be unique")
    evaluations = [evaluate(offer, ctx) for offer in offers]
    if ctx.payable_fen is None:
        return _best_headline(evaluations)
    return _best_for_order(evaluations, ctx.payable_fen)
