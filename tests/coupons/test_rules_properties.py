from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from decimal import Decimal
from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from coupons.rules import (
    ApplyContext,
    BestChoice,
    OfferKind,
    OfferTerms,
    TimeWindow,
    best_offer,
    discount_fen,
    evaluate,
    headline_value_fen,
    yuan,
)
from merchants.opening_hours import SHANGHAI

MERCHANT = 1
STORE = 10
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI)

fen = st.integers(min_value=0, max_value=30_000)
# Mostly zero, so that offers pass their conditions often enough for the choice to be interesting.
small_fen = st.one_of(st.just(0), st.integers(min_value=0, max_value=5_000))


@st.composite
def offer_terms(draw: st.DrawFn, offer_id: int = 1) -> OfferTerms:
    return OfferTerms(
        offer_id=offer_id,
        merchant_id=MERCHANT,
        kind=draw(st.sampled_from(OfferKind)),
        title_zh=f"优惠{offer_id}",
        amount_off_fen=draw(fen),
        threshold_fen=draw(small_fen),
        discount_permille=draw(st.integers(min_value=0, max_value=1000)),
        cap_fen=draw(st.none() | small_fen),
        gift_value_fen=draw(small_fen),
        points_cost=draw(st.integers(min_value=0, max_value=1000)),
        min_spend_fen=draw(small_fen),
        exclusive=draw(st.booleans()),
        priority=draw(st.integers(min_value=0, max_value=2)),
        # Rare restrictions, so that failing offers are mixed in.
        store_ids=draw(st.sampled_from([None, None, None, frozenset({STORE + 1})])),
        new_customers_only=draw(st.booleans()) and draw(st.booleans()),
        time_windows=draw(st.sampled_from([(), (), (TimeWindow(time(17), time(0)),)])),
    )


@st.composite
def offer_sets(draw: st.DrawFn, max_size: int = 7) -> list[OfferTerms]:
    size = draw(st.integers(min_value=0, max_value=max_size))
    # Offer ids are unique (best_offer refuses duplicates) but otherwise arbitrary.
    ids = draw(st.lists(st.integers(1, 99), min_size=size, max_size=size, unique=True))
    return [draw(offer_terms(offer_id)) for offer_id in ids]


@st.composite
def contexts(draw: st.DrawFn, payable: st.SearchStrategy[int | None] = fen) -> ApplyContext:
    return ApplyContext(
        now=NOW,
        store_id=STORE,
        merchant_id=MERCHANT,
        payable_fen=draw(payable),
        is_new_customer=draw(st.booleans()),
        points_balance=draw(st.none() | st.integers(min_value=0, max_value=1000)),
    )


Rank = tuple[int, int, int, tuple[int, ...]]


def brute_force_best(offers: Sequence[OfferTerms], ctx: ApplyContext) -> tuple[int, list[int]]:
    """Every subset that respects the stacking rules, scored from scratch: (benefit, ids)."""
    assert ctx.payable_fen is not None
    applicable = [o for o in offers if evaluate(o, ctx).applies]
    best: tuple[Rank, int, list[int]] = ((1, 0, 0, ()), 0, [])
    for size in range(1, len(applicable) + 1):
        for subset in combinations(applicable, size):
            if any(o.exclusive for o in subset) and size > 1:
                continue
            if len({o.kind for o in subset}) < size:
                continue
            off = sum(discount_fen(o, ctx.payable_fen) for o in subset)
            benefit = min(off, ctx.payable_fen) + sum(o.gift_value_fen for o in subset)
            ids = sorted(o.offer_id for o in subset)
            rank = (-benefit, -sum(o.priority for o in subset), size, tuple(ids))
            best = min(best, (rank, benefit, ids))
    return best[1], best[2]


def chosen(choice: BestChoice | None) -> tuple[int, list[int]]:
    if choice is None:
        return 0, []
    return choice.benefit_fen, sorted(o.offer_id for o in choice.offers)


@given(offer_terms(), fen)
def test_discount_is_never_negative_nor_above_payable(offer: OfferTerms, payable: int) -> None:
    assert 0 <= discount_fen(offer, payable) <= payable


@given(offer_terms(), contexts())
def test_evaluation_is_consistent_with_the_arithmetic(offer: OfferTerms, ctx: ApplyContext) -> None:
    assert ctx.payable_fen is not None
    evaluation = evaluate(offer, ctx)
    if evaluation.applies:
        assert evaluation.discount_fen == discount_fen(offer, ctx.payable_fen)
        assert evaluation.benefit_fen == evaluation.discount_fen + offer.gift_value_fen
    else:
        assert (evaluation.discount_fen, evaluation.benefit_fen) == (0, 0)
    assert evaluation.shortfall_fen >= 0
    assert not (evaluation.applies and evaluation.shortfall_fen)


@given(offer_sets(), contexts())
def test_best_total_is_never_above_payable(offers: list[OfferTerms], ctx: ApplyContext) -> None:
    choice = best_offer(offers, ctx)
    if choice is not None:
        assert ctx.payable_fen is not None
        assert 0 <= choice.discount_fen <= ctx.payable_fen
        gifts = sum(o.gift_value_fen for o in choice.offers)
        assert choice.benefit_fen == choice.discount_fen + gifts


@given(offer_sets(), contexts())
def test_best_choice_respects_the_stacking_rules(
    offers: list[OfferTerms], ctx: ApplyContext
) -> None:
    choice = best_offer(offers, ctx)
    if choice is None:
        return
    kinds = [o.kind for o in choice.offers]
    assert len(set(kinds)) == len(kinds)
    assert len(choice.offers) <= 1 or not any(o.exclusive for o in choice.offers)
    assert all(evaluate(o, ctx).applies for o in choice.offers)


@given(offer_sets(), contexts())
def test_best_choice_is_optimal(offers: list[OfferTerms], ctx: ApplyContext) -> None:
    benefit, ids = chosen(best_offer(offers, ctx))
    best_benefit, best_ids = brute_force_best(offers, ctx)
    assert benefit == best_benefit
    # The tie-breaks (priority, fewer offers, lower ids) single out the same combination.
    assert ids == best_ids


@given(st.data(), offer_sets(), contexts())
def test_choice_does_not_depend_on_input_order(
    data: st.DataObject, offers: list[OfferTerms], ctx: ApplyContext
) -> None:
    shuffled = data.draw(st.permutations(offers))
    assert best_offer(shuffled, ctx) == best_offer(offers, ctx)


@given(st.data(), offer_sets(), contexts(payable=st.none()))
def test_choice_without_order_does_not_depend_on_input_order(
    data: st.DataObject, offers: list[OfferTerms], ctx: ApplyContext
) -> None:
    shuffled = data.draw(st.permutations(offers))
    assert best_offer(shuffled, ctx) == best_offer(offers, ctx)


@given(offer_sets(), contexts(payable=st.none()))
def test_without_order_the_largest_headline_wins(
    offers: list[OfferTerms], ctx: ApplyContext
) -> None:
    headlines = [headline_value_fen(o) for o in offers if evaluate(o, ctx).applies]
    choice = best_offer(offers, ctx)
    if choice is None:
        assert headlines == []
    else:
        assert len(choice.offers) == 1
        assert choice.benefit_fen == max(headlines)


# Each offer's discount is non-decreasing in the payable (floor and cap are monotonic), more
# offers qualify as the payable grows, and the cap at payable only loosens: so the best benefit
# can only grow. This holds with caps too.
@given(offer_sets(), contexts(), st.integers(min_value=0, max_value=10_000))
def test_paying_more_never_lowers_the_best_benefit(
    offers: list[OfferTerms], ctx: ApplyContext, extra: int
) -> None:
    assert ctx.payable_fen is not None
    more = ApplyContext(
        now=ctx.now,
        store_id=ctx.store_id,
        merchant_id=ctx.merchant_id,
        payable_fen=ctx.payable_fen + extra,
        is_new_customer=ctx.is_new_customer,
        points_balance=ctx.points_balance,
    )
    assert chosen(best_offer(offers, more))[0] >= chosen(best_offer(offers, ctx))[0]


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_yuan_is_exact(amount_fen: int) -> None:
    assert Decimal(yuan(amount_fen)) * 100 == amount_fen
