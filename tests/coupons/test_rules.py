from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

import pytest

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
# 2026-11-30 is a Monday.
MONDAY_NOON = datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI)
SATURDAY_NOON = datetime(2026, 12, 5, 12, 0, tzinfo=SHANGHAI)


def sh(hour: int, minute: int = 0, *, day: int = 30) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def terms(
    kind: OfferKind = OfferKind.fixed_off, title_zh: str = "店铺立减5元", **fields: Any
) -> OfferTerms:
    fields.setdefault("offer_id", 1)
    fields.setdefault("merchant_id", MERCHANT)
    return OfferTerms(kind=kind, title_zh=title_zh, **fields)


def fixed(amount_off_fen: int = 500, **fields: Any) -> OfferTerms:
    fields.setdefault("title_zh", f"店铺立减{yuan(amount_off_fen)}元")
    return terms(OfferKind.fixed_off, amount_off_fen=amount_off_fen, **fields)


def threshold(threshold_fen: int = 10000, amount_off_fen: int = 2000, **fields: Any) -> OfferTerms:
    fields.setdefault("title_zh", f"满{yuan(threshold_fen)}减{yuan(amount_off_fen)}")
    return terms(
        OfferKind.threshold_off,
        threshold_fen=threshold_fen,
        amount_off_fen=amount_off_fen,
        **fields,
    )


def percent(discount_permille: int = 120, **fields: Any) -> OfferTerms:
    fields.setdefault("title_zh", "8.8折")
    return terms(OfferKind.percent_off, discount_permille=discount_permille, **fields)


def gift(gift_value_fen: int = 800, **fields: Any) -> OfferTerms:
    fields.setdefault("title_zh", "送饮品")
    return terms(OfferKind.gift, gift_value_fen=gift_value_fen, **fields)


def points(points_cost: int = 500, **fields: Any) -> OfferTerms:
    fields.setdefault("title_zh", "500积分换咖啡")
    fields.setdefault("gift_value_fen", 1500)
    return terms(OfferKind.points_exchange, points_cost=points_cost, **fields)


def ctx(payable_fen: int | None = 10000, **fields: Any) -> ApplyContext:
    fields.setdefault("now", MONDAY_NOON)
    fields.setdefault("store_id", STORE)
    fields.setdefault("merchant_id", MERCHANT)
    return ApplyContext(payable_fen=payable_fen, **fields)


# --- arithmetic ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "payable", "expected"),
    [
        pytest.param(fixed(500), 3000, 500, id="fixed-off"),
        pytest.param(fixed(5000), 3000, 3000, id="fixed-above-payable-mall1002"),
        pytest.param(fixed(500), 0, 0, id="fixed-on-free-order"),
        pytest.param(fixed(500, min_spend_fen=3000), 3000, 500, id="min-spend-exactly-met"),
        pytest.param(fixed(500, min_spend_fen=3000), 2999, 0, id="min-spend-one-fen-short"),
        pytest.param(fixed(50, threshold_fen=9000), 3000, 50, id="threshold-ignored-for-fixed"),
        pytest.param(threshold(10000, 2000), 10000, 2000, id="threshold-exactly-met"),
        pytest.param(threshold(10000, 2000), 9999, 0, id="threshold-one-fen-short"),
        pytest.param(threshold(10000, 2000), 25000, 2000, id="threshold-not-multiplied"),
        pytest.param(threshold(1000, 2000), 1500, 1500, id="threshold-off-above-payable"),
        pytest.param(
            threshold(10000, 2000, min_spend_fen=12000), 11000, 0, id="threshold-and-min-spend"
        ),
        pytest.param(percent(120), 1999, 239, id="8.8zhe-of-1999-rounds-down"),
        pytest.param(percent(120), 10000, 1200, id="8.8zhe-exact"),
        pytest.param(percent(120), 8, 0, id="percent-under-one-fen-is-zero"),
        pytest.param(percent(150), 999, 149, id="8.5zhe-of-999-rounds-down"),
        pytest.param(percent(200, cap_fen=2000), 15000, 2000, id="percent-capped"),
        pytest.param(percent(200, cap_fen=2000), 5000, 1000, id="percent-under-cap"),
        pytest.param(percent(200, cap_fen=0), 5000, 0, id="percent-cap-zero"),
        pytest.param(percent(1000), 4321, 4321, id="percent-free"),
        pytest.param(percent(0), 4321, 0, id="percent-zero"),
        pytest.param(percent(100, min_spend_fen=5000), 4999, 0, id="percent-below-min-spend"),
        pytest.param(gift(800), 10000, 0, id="gift-takes-nothing-off"),
        pytest.param(points(amount_off_fen=500), 3000, 500, id="points-exchange-cash-off"),
        pytest.param(points(amount_off_fen=500), 300, 300, id="points-exchange-above-payable"),
        pytest.param(points(), 3000, 0, id="points-exchange-gift-only"),
    ],
)
def test_discount_arithmetic(offer: OfferTerms, payable: int, expected: int) -> None:
    assert discount_fen(offer, payable) == expected


def test_discount_refuses_negative_payable() -> None:
    with pytest.raises(ValueError, match="negative"):
        discount_fen(fixed(), -1)


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        pytest.param(fixed(500), 500, id="fixed"),
        pytest.param(threshold(10000, 2000), 2000, id="threshold"),
        pytest.param(percent(120, cap_fen=3000), 3000, id="percent-cap"),
        pytest.param(percent(100, min_spend_fen=20000), 2000, id="percent-of-min-spend"),
        pytest.param(percent(100, threshold_fen=20000), 0, id="percent-ignores-threshold"),
        pytest.param(percent(100), 0, id="percent-no-cap-no-spend"),
        pytest.param(gift(800), 800, id="gift"),
        pytest.param(points(amount_off_fen=500), 2000, id="points-cash-plus-gift"),
        pytest.param(fixed(500, gift_value_fen=300), 800, id="fixed-with-gift"),
    ],
)
def test_headline_value(offer: OfferTerms, expected: int) -> None:
    assert headline_value_fen(offer) == expected


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        pytest.param(0, "0", id="zero"),
        pytest.param(1, "0.01", id="one-fen"),
        pytest.param(10, "0.1", id="one-jiao"),
        pytest.param(1200, "12", id="whole"),
        pytest.param(1250, "12.5", id="jiao"),
        pytest.param(1205, "12.05", id="fen"),
        pytest.param(1999, "19.99", id="float-unfriendly"),
        pytest.param(123456789, "1234567.89", id="large"),
        pytest.param(-1250, "-12.5", id="negative"),
    ],
)
def test_yuan(fen: int, text: str) -> None:
    assert yuan(fen) == text


# --- applicability ---------------------------------------------------------------------------

WEEKDAYS_ONLY = frozenset(range(5))
LUNCH = (TimeWindow(time(11), time(14)),)
EVENING = (TimeWindow(time(17), time(0)),)
NOV_30 = datetime(2026, 11, 30, tzinfo=SHANGHAI)
DEC_1 = datetime(2026, 12, 1, tzinfo=SHANGHAI)
MONDAY_2330_UTC = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # Tuesday 07:30 in Shanghai


@pytest.mark.parametrize(
    ("offer", "context", "applies", "reason", "shortfall"),
    [
        pytest.param(threshold(), ctx(10000), True, "满100减20，已满足", 0, id="threshold-met"),
        pytest.param(
            threshold(), ctx(8800), False, "再消费12元可用满100减20", 1200, id="threshold-short"
        ),
        pytest.param(
            threshold(), ctx(9950), False, "再消费0.5元可用满100减20", 50, id="threshold-short-jiao"
        ),
        pytest.param(fixed(), ctx(100), True, "店铺立减5元，可用", 0, id="fixed-no-condition"),
        pytest.param(
            fixed(min_spend_fen=3000),
            ctx(2000),
            False,
            "再消费10元可用店铺立减5元",
            1000,
            id="min-spend-short",
        ),
        pytest.param(
            fixed(weekdays=WEEKDAYS_ONLY),
            ctx(now=SATURDAY_NOON),
            False,
            "仅限周一至周五使用",
            0,
            id="weekdays-only-on-saturday",
        ),
        pytest.param(
            fixed(weekdays=frozenset({5, 6})),
            ctx(),
            False,
            "仅限周六、周日使用",
            0,
            id="weekend-only-on-monday",
        ),
        pytest.param(
            fixed(weekdays=frozenset({1})),
            ctx(now=MONDAY_2330_UTC),
            True,
            "店铺立减5元，可用",
            0,
            id="utc-monday-night-is-shanghai-tuesday",
        ),
        pytest.param(
            fixed(weekdays=frozenset({0})),
            ctx(now=MONDAY_2330_UTC),
            False,
            "仅限周一使用",
            0,
            id="utc-monday-night-is-not-shanghai-monday",
        ),
        pytest.param(
            fixed(time_windows=LUNCH),
            ctx(now=sh(11)),
            True,
            "店铺立减5元，可用",
            0,
            id="window-opens-inclusive",
        ),
        pytest.param(
            fixed(time_windows=LUNCH),
            ctx(now=sh(14)),
            False,
            "仅限11:00-14:00使用",
            0,
            id="window-closes-exclusive",
        ),
        pytest.param(
            fixed(time_windows=LUNCH),
            ctx(now=datetime(2026, 11, 30, 3, 30, tzinfo=UTC)),
            True,
            "店铺立减5元，可用",
            0,
            id="window-judged-in-shanghai",
        ),
        pytest.param(
            fixed(time_windows=(*LUNCH, *EVENING)),
            ctx(now=sh(16)),
            False,
            "仅限11:00-14:00、17:00-24:00使用",
            0,
            id="between-windows",
        ),
        pytest.param(
            fixed(time_windows=EVENING),
            ctx(now=sh(23, 59)),
            True,
            "店铺立减5元，可用",
            0,
            id="window-to-midnight",
        ),
        pytest.param(
            fixed(valid_until=NOV_30 + timedelta(hours=12)),
            ctx(),
            False,
            "已过期",
            0,
            id="valid-until-exclusive",
        ),
        pytest.param(
            fixed(valid_until=NOV_30 + timedelta(hours=12, seconds=1)),
            ctx(),
            True,
            "店铺立减5元，可用",
            0,
            id="valid-until-one-second-later",
        ),
        pytest.param(
            fixed(valid_from=MONDAY_NOON),
            ctx(),
            True,
            "店铺立减5元，可用",
            0,
            id="valid-from-inclusive",
        ),
        pytest.param(fixed(valid_from=DEC_1), ctx(), False, "未到使用时间", 0, id="not-yet-valid"),
        pytest.param(
            fixed(store_ids=frozenset({11})), ctx(), False, "不适用于本店", 0, id="other-store"
        ),
        pytest.param(
            fixed(store_ids=frozenset({STORE, 11})),
            ctx(),
            True,
            "店铺立减5元，可用",
            0,
            id="listed-store",
        ),
        pytest.param(fixed(merchant_id=2), ctx(), False, "不适用于本店", 0, id="other-merchant"),
        pytest.param(
            fixed(new_customers_only=True), ctx(), False, "仅限新客", 0, id="new-customers-only"
        ),
        pytest.param(
            fixed(new_customers_only=True),
            ctx(is_new_customer=True),
            True,
            "店铺立减5元，可用",
            0,
            id="new-customer",
        ),
        pytest.param(
            points(500),
            ctx(points_balance=200),
            False,
            "积分不足，还差300积分",
            0,
            id="points-insufficient",
        ),
        pytest.param(
            points(500),
            ctx(points_balance=500),
            True,
            "500积分换咖啡，可用",
            0,
            id="points-exactly-enough",
        ),
        pytest.param(points(500), ctx(), False, "需500积分兑换", 0, id="points-unknown"),
        pytest.param(
            fixed(store_ids=frozenset({11}), valid_until=NOV_30),
            ctx(),
            False,
            "不适用于本店",
            0,
            id="store-reason-before-expiry",
        ),
        pytest.param(
            threshold(new_customers_only=True),
            ctx(100),
            False,
            "仅限新客",
            0,
            id="no-shortfall-when-another-rule-fails",
        ),
        pytest.param(threshold(), ctx(None), True, "满100减20", 0, id="no-order-threshold"),
        pytest.param(
            fixed(min_spend_fen=3000),
            ctx(None),
            True,
            "店铺立减5元，满30元可用",
            0,
            id="no-order-min-spend-said",
        ),
        pytest.param(
            threshold(min_spend_fen=15000),
            ctx(None),
            True,
            "满100减20，满150元可用",
            0,
            id="no-order-min-spend-above-threshold-said",
        ),
        pytest.param(
            fixed(valid_until=NOV_30), ctx(None), False, "已过期", 0, id="no-order-still-expires"
        ),
    ],
)
def test_evaluate(
    offer: OfferTerms, context: ApplyContext, applies: bool, reason: str, shortfall: int
) -> None:
    evaluation = evaluate(offer, context)
    assert (evaluation.applies, evaluation.reason_zh, evaluation.shortfall_fen) == (
        applies,
        reason,
        shortfall,
    )


def test_evaluation_amounts() -> None:
    with_gift = evaluate(fixed(500, gift_value_fen=300), ctx(10000))
    assert (with_gift.discount_fen, with_gift.benefit_fen) == (500, 800)
    missed = evaluate(threshold(), ctx(100))
    assert (missed.discount_fen, missed.benefit_fen) == (0, 0)
    no_order = evaluate(threshold(gift_value_fen=300), ctx(None))
    assert (no_order.discount_fen, no_order.benefit_fen) == (0, 300)


# --- best offer ------------------------------------------------------------------------------


def chosen(offers: list[OfferTerms], context: ApplyContext) -> BestChoice:
    choice = best_offer(offers, context)
    assert choice is not None
    return choice


def ids(choice: BestChoice) -> list[int]:
    return [offer.offer_id for offer in choice.offers]


def test_one_offer_per_kind_combined() -> None:
    choice = chosen([threshold(offer_id=1), fixed(500, offer_id=2)], ctx(12000))
    assert ids(choice) == [1, 2]
    assert (choice.discount_fen, choice.benefit_fen) == (2500, 2500)
    assert choice.explanation_zh == "满100减20 + 店铺立减5元，共减25元"


def test_two_offers_of_one_kind_are_not_combined() -> None:
    choice = chosen([fixed(500, offer_id=1), fixed(800, offer_id=2)], ctx(12000))
    assert ids(choice) == [2]
    assert choice.explanation_zh == "店铺立减8元，可减8元"


def test_bigger_exclusive_offer_is_used_alone() -> None:
    offers = [
        threshold(offer_id=1),
        fixed(500, offer_id=2),
        fixed(3000, offer_id=3, exclusive=True, title_zh="新店专享立减30元"),
    ]
    choice = chosen(offers, ctx(12000))
    assert ids(choice) == [3]
    assert choice.explanation_zh == "新店专享立减30元，可减30元"


def test_combination_beats_smaller_exclusive_offer() -> None:
    offers = [
        threshold(offer_id=1),
        fixed(500, offer_id=2),
        fixed(2000, offer_id=3, exclusive=True),
    ]
    assert ids(chosen(offers, ctx(12000))) == [1, 2]


def test_exclusive_offer_never_joins_a_combination() -> None:
    offers = [threshold(offer_id=1, exclusive=True), fixed(500, offer_id=2)]
    assert ids(chosen(offers, ctx(12000))) == [1]


def test_combined_discount_is_capped_at_payable() -> None:
    choice = chosen([fixed(2000, offer_id=1), percent(500, offer_id=2)], ctx(3000))
    assert (choice.discount_fen, choice.benefit_fen) == (3000, 3000)


def test_each_discount_is_computed_on_the_original_payable() -> None:
    # 10% of 100元 is 10元 even though the 10元 立减 would leave 90元.
    choice = chosen([fixed(1000, offer_id=1), percent(100, offer_id=2)], ctx(10000))
    assert choice.discount_fen == 2000


def test_threshold_is_judged_on_the_original_payable() -> None:
    choice = chosen([threshold(offer_id=1), fixed(500, offer_id=2)], ctx(10000))
    assert (ids(choice), choice.discount_fen) == ([1, 2], 2500)


def test_gift_adds_benefit_not_discount() -> None:
    choice = chosen([threshold(offer_id=1), gift(800, offer_id=2)], ctx(10000))
    assert (choice.discount_fen, choice.benefit_fen) == (2000, 2800)
    assert choice.explanation_zh == "满100减20 + 送饮品，共减20元，另赠价值8元礼品"


def test_gift_alone() -> None:
    choice = chosen([gift(800)], ctx(10000))
    assert (choice.discount_fen, choice.benefit_fen) == (0, 800)
    assert choice.explanation_zh == "送饮品，赠价值8元礼品"


def test_points_exchange_needs_enough_points() -> None:
    offers = [fixed(500, offer_id=1), points(500, offer_id=2)]
    assert ids(chosen(offers, ctx(10000, points_balance=499))) == [1]
    assert ids(chosen(offers, ctx(10000, points_balance=500))) == [2, 1]


def test_tie_goes_to_higher_priority() -> None:
    offers = [fixed(500, offer_id=1, exclusive=True), gift(500, offer_id=2, priority=1)]
    assert ids(chosen(offers, ctx(10000))) == [2]


def test_tie_goes_to_fewer_offers() -> None:
    offers = [
        threshold(offer_id=1),
        fixed(500, offer_id=2),
        fixed(2500, offer_id=3, exclusive=True),
    ]
    assert ids(chosen(offers, ctx(10000))) == [3]


def test_tie_goes_to_lower_offer_id() -> None:
    assert ids(chosen([fixed(500, offer_id=7), fixed(500, offer_id=3)], ctx(10000))) == [3]


def test_worthless_offer_is_left_out() -> None:
    assert ids(chosen([fixed(500, offer_id=1), gift(0, offer_id=2)], ctx(10000))) == [1]


def test_near_miss_is_explained_beside_the_choice() -> None:
    choice = chosen([threshold(offer_id=1), fixed(500, offer_id=2)], ctx(8800))
    assert ids(choice) == [2]
    assert choice.near_miss is not None
    assert choice.near_miss.offer.offer_id == 1
    assert choice.explanation_zh == "店铺立减5元，可减5元；再消费12元可用满100减20"


def test_near_miss_alone_when_nothing_applies() -> None:
    choice = chosen([threshold()], ctx(8800))
    assert (choice.offers, choice.discount_fen, choice.benefit_fen) == ((), 0, 0)
    assert choice.explanation_zh == "再消费12元可用满100减20"


def test_near_miss_must_beat_the_choice() -> None:
    offers = [threshold(offer_id=1), fixed(3000, offer_id=2, exclusive=True)]
    assert chosen(offers, ctx(8800)).near_miss is None


def test_near_miss_is_the_smallest_shortfall() -> None:
    offers = [threshold(offer_id=1), threshold(20000, 5000, offer_id=2)]
    near_miss = chosen(offers, ctx(8800)).near_miss
    assert near_miss is not None
    assert near_miss.offer.offer_id == 1


def test_no_choice_when_nothing_applies() -> None:
    assert best_offer([fixed(new_customers_only=True)], ctx(10000)) is None
    assert best_offer([], ctx(10000)) is None


def test_without_order_largest_headline_wins() -> None:
    offers = [
        threshold(offer_id=1),
        percent(120, offer_id=2, cap_fen=3000, title_zh="8.8折，最高减30元"),
        gift(800, offer_id=3),
    ]
    choice = chosen(offers, ctx(None))
    assert ids(choice) == [2]
    assert (choice.discount_fen, choice.benefit_fen) == (0, 3000)
    assert choice.explanation_zh == "8.8折，最高减30元"


def test_without_order_spend_is_not_judged() -> None:
    choice = chosen([fixed(500, offer_id=1), threshold(offer_id=2)], ctx(None))
    assert (ids(choice), choice.explanation_zh) == ([2], "满100减20")


def test_without_order_other_rules_still_apply() -> None:
    offers = [fixed(500, offer_id=1), threshold(offer_id=2, weekdays=frozenset({5}))]
    assert ids(chosen(offers, ctx(None))) == [1]


def test_kind_given_as_text_becomes_the_enum() -> None:
    # What an untyped source (a raw column value) would pass.
    assert terms(cast(OfferKind, "threshold_off")).kind is OfferKind.threshold_off


def test_duplicate_offer_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        best_offer([fixed(offer_id=1), gift(offer_id=1)], ctx())


# --- malformed terms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: fixed(-1), id="negative-amount"),
        pytest.param(lambda: percent(1001), id="permille-above-1000"),
        pytest.param(lambda: percent(120, cap_fen=-1), id="negative-cap"),
        pytest.param(lambda: fixed(weekdays=frozenset()), id="no-weekday"),
        pytest.param(lambda: fixed(weekdays=frozenset({7})), id="weekday-7"),
        pytest.param(lambda: fixed(valid_from=datetime(2026, 1, 1)), id="naive-valid-from"),  # noqa: DTZ001
        pytest.param(lambda: fixed(valid_from=DEC_1, valid_until=NOV_30), id="empty-validity"),
        pytest.param(lambda: TimeWindow(time(14), time(11)), id="window-backwards"),
        pytest.param(lambda: TimeWindow(time(11), time(11)), id="window-empty"),
        pytest.param(lambda: ctx(now=datetime(2026, 1, 1)), id="naive-now"),  # noqa: DTZ001
        pytest.param(lambda: ctx(-1), id="negative-payable"),
        pytest.param(lambda: terms(cast(OfferKind, "bogus")), id="unknown-kind"),
    ],
)
def test_malformed_input_is_refused(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        build()
