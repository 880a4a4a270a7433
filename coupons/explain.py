"""Short Chinese texts for offers: amounts in yuan, weekday and time-of-day limits, choices.

Kept apart from :mod:`coupons.rules` so the rules read as rules; nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import time

_ZH_DAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
# A run this long reads better as a range ("周一至周五") than as a list.
_RANGE_MIN = 3


def yuan(fen: int) -> str:
    """Fen as yuan without trailing zeros: 1200 -> "12", 1250 -> "12.5", 1 -> "0.01".

    Integer arithmetic only (divmod), so no binary-float rounding can creep in.
    """
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    if cents == 0:
        return f"{sign}{whole}"
    if cents % 10 == 0:
        return f"{sign}{whole}.{cents // 10}"
    return f"{sign}{whole}.{cents:02d}"


def _runs(days: Sequence[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def weekdays_zh(weekdays: Iterable[int]) -> str:
    """0=Monday..6=Sunday as "周一至周五", "周六、周日" or "周一至周三、周五"."""
    parts: list[str] = []
    for run in _runs(sorted(set(weekdays))):
        if len(run) >= _RANGE_MIN:
            parts.append(f"{_ZH_DAYS[run[0]]}至{_ZH_DAYS[run[-1]]}")
        else:
            parts.extend(_ZH_DAYS[day] for day in run)
    return "、".join(parts)


def _hhmm(moment: time, *, closing: bool) -> str:
    # A window ending at time(0) ends at midnight, which people write as 24:00.
    if closing and moment == time(0):
        return "24:00"
    return f"{moment.hour:02d}:{moment.minute:02d}"


def windows_zh(windows: Iterable[tuple[time, time]]) -> str:
    """Time-of-day windows as "11:00-14:00、17:00-24:00"."""
    return "、".join(
        f"{_hhmm(start, closing=False)}-{_hhmm(end, closing=True)}" for start, end in windows
    )


def only_on_zh(limit: str) -> str:
    return f"仅限{limit}使用"


def spend_more_zh(shortfall_fen: int, title_zh: str) -> str:
    return f"再消费{yuan(shortfall_fen)}元可用{title_zh}"


def points_short_zh(missing_points: int) -> str:
    return f"积分不足，还差{missing_points}积分"


def points_needed_zh(points_cost: int) -> str:
    return f"需{points_cost}积分兑换"


def headline_zh(title_zh: str, unstated_spend_fen: int) -> str:
    """An offer advertised before any order: its title, plus a minimum spend it doesn't say."""
    if unstated_spend_fen > 0:
        return f"{title_zh}，满{yuan(unstated_spend_fen)}元可用"
    return title_zh


def applies_zh(title_zh: str, *, had_spend_condition: bool) -> str:
    return f"{title_zh}，已满足" if had_spend_condition else f"{title_zh}，可用"


def choice_zh(titles: Sequence[str], discount_fen: int, gift_fen: int) -> str:
    """ "满100减20 + 店铺立减5元，共减25元"; a single offer says 可减, a gift says its value."""
    text = " + ".join(titles)
    if discount_fen > 0:
        text += f"，{'共减' if len(titles) > 1 else '可减'}{yuan(discount_fen)}元"
    if gift_fen > 0:
        text += f"，{'另赠' if discount_fen > 0 else '赠'}价值{yuan(gift_fen)}元礼品"
    return text


def with_near_miss_zh(choice: str, near_miss: str) -> str:
    return f"{choice}；{near_miss}"
