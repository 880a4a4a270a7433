from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from merchants.opening_hours import SHANGHAI, WEEKDAYS, OpeningHours


def sh(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def week(**days: list[list[str]]) -> OpeningHours:
    return OpeningHours.from_json({"weekly": days})


# The reference week runs from Monday 2026-11-30 to Sunday 2026-12-06.
SPLIT = OpeningHours.daily(("10:00", "14:00"), ("17:00", "21:30"), closed_weekdays=["wed"])
HOTPOT = OpeningHours.daily(("11:00", "02:00"))
HOTPOT_HOLIDAY = HOTPOT.model_copy(update={"closed_dates": frozenset({date(2026, 12, 2)})})
BAR = week(mon=[["18:00", "03:00"]])
SUNDAY_NIGHT = week(sun=[["22:00", "02:00"]])
ALWAYS = OpeningHours.always_open()
ALWAYS_HOLIDAY = OpeningHours.from_json(
    {"weekly": ALWAYS.to_json()["weekly"], "closed_dates": ["2026-12-02"]}
)
TILL_MIDNIGHT = OpeningHours.daily(("08:00", "24:00"))
BACK_TO_BACK = OpeningHours.daily(("10:00", "14:00"), ("14:00", "18:00"))
NEVER = OpeningHours.daily()

SCHEDULES = {
    "split": SPLIT,
    "hotpot": HOTPOT,
    "hotpot_holiday": HOTPOT_HOLIDAY,
    "bar": BAR,
    "sunday_night": SUNDAY_NIGHT,
    "always": ALWAYS,
    "always_holiday": ALWAYS_HOLIDAY,
    "till_midnight": TILL_MIDNIGHT,
    "back_to_back": BACK_TO_BACK,
    "never": NEVER,
}


@pytest.mark.parametrize(
    ("schedule", "local", "expected"),
    [
        pytest.param("split", "2026-11-30 10:00", True, id="split-open-at-open-minute"),
        pytest.param("split", "2026-11-30 09:59:59", False, id="split-closed-before-open"),
        pytest.param("split", "2026-11-30 13:59:59", True, id="split-open-just-before-close"),
        pytest.param("split", "2026-11-30 14:00", False, id="split-closed-at-close-minute"),
        pytest.param("split", "2026-11-30 15:30", False, id="split-closed-in-gap"),
        pytest.param("split", "2026-11-30 17:00", True, id="split-second-shift-opens"),
        pytest.param("split", "2026-11-30 21:30", False, id="split-closed-at-2130"),
        pytest.param("split", "2026-12-02 12:00", False, id="closed-weekday"),
        pytest.param("hotpot", "2026-12-01 01:00", True, id="overnight-open-after-midnight"),
        pytest.param("hotpot", "2026-12-01 02:00", False, id="overnight-closed-at-close"),
        pytest.param("hotpot", "2026-12-01 10:59", False, id="overnight-closed-before-open"),
        pytest.param("hotpot", "2026-12-01 23:59", True, id="overnight-open-before-midnight"),
        pytest.param("bar", "2026-12-01 01:00", True, id="monday-bar-open-tuesday-0100"),
        pytest.param("bar", "2026-12-01 03:00", False, id="monday-bar-closed-tuesday-0300"),
        pytest.param("bar", "2026-12-02 01:00", False, id="no-tail-after-closed-tuesday"),
        pytest.param("bar", "2026-11-30 02:00", False, id="no-tail-after-closed-sunday"),
        pytest.param("sunday_night", "2026-11-30 01:00", True, id="sunday-tail-wraps-monday"),
        pytest.param("hotpot_holiday", "2026-12-02 12:00", False, id="closed-date"),
        pytest.param("hotpot_holiday", "2026-12-02 01:00", True, id="tail-into-closed-date"),
        pytest.param("hotpot_holiday", "2026-12-03 01:00", False, id="no-tail-of-closed-date"),
        pytest.param("hotpot_holiday", "2026-12-03 11:00", True, id="open-day-after-holiday"),
        pytest.param("always", "2026-11-30 00:00", True, id="24h-monday-midnight"),
        pytest.param("always", "2026-12-06 23:59:59", True, id="24h-sunday-last-second"),
        pytest.param("always_holiday", "2026-12-02 08:00", False, id="24h-closed-date"),
        pytest.param("till_midnight", "2026-11-30 23:59:59", True, id="2400-open-late"),
        pytest.param("till_midnight", "2026-12-01 00:00", False, id="2400-closed-at-midnight"),
        pytest.param("back_to_back", "2026-11-30 14:00", True, id="back-to-back-handover"),
        pytest.param("never", "2026-11-30 12:00", False, id="never-open"),
    ],
)
def test_is_open_at_follows_the_weekly_schedule(schedule: str, local: str, expected: bool) -> None:
    assert SCHEDULES[schedule].is_open_at(sh(local)) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param("2026-11-30T02:30:00+00:00", True, id="utc-0230-is-monday-1030"),
        pytest.param("2026-11-30T01:59:00+00:00", False, id="utc-0159-is-monday-0959"),
        pytest.param("2026-11-30T06:00:00+00:00", False, id="utc-0600-is-monday-1400"),
        pytest.param("2026-11-30T10:30:00-07:00", False, id="utc-minus-7-is-tuesday-0130"),
    ],
)
def test_aware_moment_is_converted_to_shanghai(moment: str, expected: bool) -> None:
    assert SPLIT.is_open_at(datetime.fromisoformat(moment)) is expected


@pytest.mark.parametrize("method", ["is_open_at", "next_change"])
def test_naive_datetime_is_refused(method: str) -> None:
    naive = datetime(2026, 11, 30, 10, 30)  # noqa: DTZ001 - deliberately naive
    with pytest.raises(ValueError, match="timezone-aware"):
        getattr(SPLIT, method)(naive)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            {"weekly": {"mon": [["10:00", "14:00"], ["13:00", "15:00"]]}},
            "mon: shift 10:00-14:00 overlaps 13:00-15:00",
            id="overlapping-shifts",
        ),
        pytest.param(
            {"weekly": {"tue": [["17:00", "21:00"], ["17:00", "21:00"]]}},
            "tue: shift 17:00-21:00 overlaps 17:00-21:00",
            id="duplicate-shift",
        ),
        pytest.param(
            {"weekly": {"fri": [["22:00", "02:00"], ["23:00", "23:30"]]}},
            "fri: shift 22:00-02:00 overlaps 23:00-23:30",
            id="overnight-shift-not-last",
        ),
        pytest.param(
            {"weekly": {"mon": [["25:00", "26:00"]]}},
            "mon: shift ['25:00', '26:00']: invalid time '25:00'",
            id="hour-25",
        ),
        pytest.param(
            {"weekly": {"mon": [["10:60", "12:00"]]}},
            "invalid time '10:60'",
            id="minute-60",
        ),
        pytest.param({"weekly": {"mon": [["9:00", "12:00"]]}}, "invalid time '9:00'", id="h-mm"),
        pytest.param(
            {"weekly": {"wed": [["24:00", "02:00"]]}},
            "wed: shift ['24:00', '02:00']: invalid time '24:00'",
            id="2400-as-open",
        ),
        pytest.param(
            {"weekly": {"sat": [["00:00", "00:00"]]}},
            "sat: shift ['00:00', '00:00']: ambiguous",
            id="0000-0000",
        ),
        pytest.param(
            {"weekly": {"sat": [["10:00", "10:00"]]}}, "ambiguous", id="zero-or-24h-shift"
        ),
        pytest.param({"weekly": {"thu": [["10:00"]]}}, "thu: shift ['10:00']", id="one-time"),
        pytest.param({"weekly": {"thu": "10:00-12:00"}}, "thu: expected a list", id="str-day"),
        pytest.param(
            {"weekly": {"mon": [["18:00", "03:00"]], "tue": [["02:00", "10:00"]]}},
            "mon: shift 18:00-03:00 runs into tue shift 02:00-10:00",
            id="overnight-tail-overlaps-next-day",
        ),
        pytest.param(
            {"weekly": {"sun": [["20:00", "04:00"]], "mon": [["03:30", "09:00"]]}},
            "sun: shift 20:00-04:00 runs into mon shift 03:30-09:00",
            id="sunday-tail-overlaps-monday",
        ),
        pytest.param({"weekly": {"monday": []}}, "unknown day 'monday'", id="unknown-day-key"),
        pytest.param({"weekly": []}, "weekly must be an object", id="weekly-not-object"),
        pytest.param({"weekly": {}, "closed_dates": ["2026-02-30"]}, "closed_dates", id="bad-date"),
        pytest.param({"weekly": {}, "holidays": []}, "holidays", id="unknown-top-level-key"),
        pytest.param({"closed_dates": []}, "weekly", id="missing-weekly"),
    ],
)
def test_invalid_hours_are_rejected_with_a_readable_message(data: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        OpeningHours.from_json(data)


def test_daily_refuses_unknown_closed_weekday() -> None:
    with pytest.raises(ValueError, match="unknown weekday 'monday'"):
        OpeningHours.daily(("10:00", "22:00"), closed_weekdays=["monday"])


def test_constructors_build_the_expected_week() -> None:
    assert ALWAYS.to_json()["weekly"] == {day: [["00:00", "24:00"]] for day in WEEKDAYS}
    assert SPLIT.weekly["wed"] == ()
    assert SPLIT.to_json()["weekly"]["thu"] == [["10:00", "14:00"], ["17:00", "21:30"]]
    assert NEVER.to_json() == {"weekly": {day: [] for day in WEEKDAYS}, "closed_dates": []}


def _full(**days: list[list[str]]) -> dict[str, list[list[str]]]:
    return {day: days.get(day, []) for day in WEEKDAYS}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"weekly": _full(), "closed_dates": []}, id="never-open"),
        pytest.param(ALWAYS.to_json(), id="always-open"),
        pytest.param(
            {
                "weekly": _full(
                    mon=[["10:00", "14:00"], ["17:00", "21:30"]],
                    thu=[["00:00", "24:00"]],
                    fri=[["11:00", "02:00"]],
                    sat=[["02:00", "24:00"]],
                    sun=[["08:00", "24:00"]],
                ),
                "closed_dates": ["2026-01-28", "2026-01-29"],
            },
            id="mixed-week-with-closures",
        ),
    ],
)
def test_json_round_trip_is_exact_for_normalised_input(data: dict[str, Any]) -> None:
    hours = OpeningHours.from_json(data)
    assert hours.to_json() == data
    assert json.loads(json.dumps(hours.to_json())) == data
    assert OpeningHours.from_json(hours.to_json()) == hours


def test_from_json_normalises_missing_days_shift_order_and_dates() -> None:
    hours = OpeningHours.from_json(
        {
            "weekly": {"tue": [["17:00", "21:00"], ["10:00", "14:00"]]},
            "closed_dates": ["2026-02-01", "2026-01-28", "2026-02-01"],
        }
    )
    assert hours.to_json() == {
        "weekly": _full(tue=[["10:00", "14:00"], ["17:00", "21:00"]]),
        "closed_dates": ["2026-01-28", "2026-02-01"],
    }
    assert list(hours.to_json()["weekly"]) == list(WEEKDAYS)


@pytest.mark.parametrize(
    ("schedule", "local", "expected"),
    [
        pytest.param("split", "2026-11-30 09:00", "2026-11-30 10:00", id="closed-then-opens"),
        pytest.param("split", "2026-11-30 10:00", "2026-11-30 14:00", id="at-open-next-close"),
        pytest.param("split", "2026-11-30 14:00", "2026-11-30 17:00", id="at-close-next-open"),
        pytest.param("split", "2026-12-01 22:00", "2026-12-03 10:00", id="skips-closed-wed"),
        pytest.param("hotpot", "2026-11-30 23:00", "2026-12-01 02:00", id="overnight-close"),
        pytest.param("bar", "2026-12-01 02:59", "2026-12-01 03:00", id="bar-closes-tuesday"),
        pytest.param("bar", "2026-12-01 03:00", "2026-12-07 18:00", id="bar-next-monday"),
        pytest.param("back_to_back", "2026-11-30 12:00", "2026-11-30 18:00", id="merged-shifts"),
        pytest.param("till_midnight", "2026-11-30 12:00", "2026-12-01 00:00", id="2400-close"),
        pytest.param("always_holiday", "2026-11-30 12:00", "2026-12-02 00:00", id="to-holiday"),
        pytest.param("always_holiday", "2026-12-02 12:00", "2026-12-03 00:00", id="holiday-end"),
        pytest.param(
            "hotpot_holiday", "2026-12-01 23:00", "2026-12-02 02:00", id="tail-into-holiday"
        ),
        pytest.param(
            "hotpot_holiday", "2026-12-02 02:00", "2026-12-03 11:00", id="reopens-after-holiday"
        ),
        pytest.param("always", "2026-11-30 12:00", None, id="always-open-never-changes"),
        pytest.param("never", "2026-11-30 12:00", None, id="never-open-never-changes"),
        pytest.param("always_holiday", "2026-11-23 12:00", None, id="holiday-beyond-8-days"),
        pytest.param(
            "always_holiday", "2026-11-24 00:00", "2026-12-02 00:00", id="holiday-exactly-8-days"
        ),
    ],
)
def test_next_change_finds_the_next_flip(schedule: str, local: str, expected: str | None) -> None:
    change = SCHEDULES[schedule].next_change(sh(local))
    assert change == (None if expected is None else sh(expected))


def test_next_change_is_in_shanghai_time_for_a_utc_moment() -> None:
    change = SPLIT.next_change(datetime(2026, 11, 30, 1, 0, tzinfo=UTC))
    assert change is not None
    assert change.tzinfo == SHANGHAI
    assert change.isoformat() == "2026-11-30T10:00:00+08:00"


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        pytest.param(ALWAYS, "24小时营业", id="always-open"),
        pytest.param(OpeningHours.daily(("10:00", "22:00")), "每天 10:00-22:00", id="every-day"),
        pytest.param(NEVER, "暂停营业", id="never-open"),
        pytest.param(
            SPLIT, "每天 10:00-14:00, 17:00-21:30；周三休息", id="same-hours-with-closed-day"
        ),
        pytest.param(
            OpeningHours.daily(("11:00", "02:00"), closed_weekdays=["mon"]),
            "每天 11:00-次日02:00；周一休息",
            id="overnight-next-day",
        ),
        pytest.param(BAR, "周一 18:00-次日03:00；周二至周日休息", id="one-night-a-week"),
        pytest.param(
            OpeningHours.daily(("10:00", "22:00"), closed_weekdays=["tue", "thu", "sat"]),
            "周一、周三、周五、周日 10:00-22:00；周二、周四、周六休息",
            id="same-hours-few-open-days",
        ),
        pytest.param(
            week(
                **{day: [["10:00", "14:00"], ["17:00", "21:30"]] for day in WEEKDAYS[:5]},
                sat=[["10:00", "22:00"]],
                sun=[["10:00", "22:00"]],
            ),
            "周一至周五 10:00-14:00, 17:00-21:30；周六、周日 10:00-22:00",
            id="weekdays-and-weekend",
        ),
        pytest.param(
            week(
                mon=[["10:00", "22:00"]],
                wed=[["10:00", "22:00"]],
                thu=[["10:00", "22:00"]],
                fri=[["00:00", "24:00"]],
                sat=[["00:00", "24:00"]],
            ),
            "周一 10:00-22:00；周三、周四 10:00-22:00；周五、周六 24小时；周二、周日休息",
            id="mixed-runs-and-24h-days",
        ),
    ],
)
def test_describe_zh_groups_consecutive_days(hours: OpeningHours, expected: str) -> None:
    assert hours.describe_zh() == expected


@pytest.mark.parametrize(
    ("closures_from", "expected"),
    [
        pytest.param(None, "每天 10:00-22:00", id="no-closures-without-a-date"),
        pytest.param(
            date(2026, 1, 1), "每天 10:00-22:00；1月28日、1月29日休息", id="upcoming-only"
        ),
        pytest.param(
            date(2025, 12, 31),
            "每天 10:00-22:00；2026年1月28日、2026年1月29日休息",
            id="next-year-shows-year",
        ),
        pytest.param(date(2026, 2, 1), "每天 10:00-22:00", id="all-past"),
    ],
)
def test_describe_zh_lists_upcoming_closed_dates(closures_from: date | None, expected: str) -> None:
    hours = OpeningHours.from_json(
        {
            "weekly": {day: [["10:00", "22:00"]] for day in WEEKDAYS},
            "closed_dates": ["2025-12-01", "2026-01-28", "2026-01-29"],
        }
    )
    assert hours.describe_zh(closures_from=closures_from) == expected


# Half-hour steps make shifts meet back to back and moments land on boundaries often.
_STEP = 30
_DAY = 24 * 60
_WEEK = 7 * _DAY
_BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def hours_and_moment(draw: st.DrawFn) -> tuple[dict[str, Any], datetime]:
    # Walk forward through one week laying down shifts and gaps, so that the shifts never
    # overlap (the walk stops before running into the first shift again).
    weekly: dict[str, list[list[str]]] = {day: [] for day in WEEKDAYS}
    start = draw(st.integers(0, _WEEK // _STEP - 1)) * _STEP
    cursor = start
    for _ in range(draw(st.integers(0, 14))):
        length = draw(st.integers(1, _DAY // _STEP)) * _STEP
        if length == _DAY and cursor % _DAY:
            length -= _STEP  # a 24 h shift must start at midnight
        if cursor + length > start + _WEEK:
            break
        day, opens = divmod(cursor % _WEEK, _DAY)
        closes = opens + length if opens + length <= _DAY else opens + length - _DAY
        weekly[WEEKDAYS[day]].append([_hhmm(opens), _hhmm(closes)])
        cursor += length + draw(st.integers(0, 2 * _DAY // _STEP)) * _STEP
    for shifts in weekly.values():
        shifts.sort()

    aligned = st.integers(0, 730 * _DAY).map(lambda m: _BASE + timedelta(minutes=m))
    exact = st.integers(0, 730 * _DAY * 60 * 10**6).map(
        lambda us: _BASE + timedelta(microseconds=us)
    )
    moment = draw(st.one_of(aligned, exact))
    today = moment.astimezone(SHANGHAI).date()
    offsets = draw(st.sets(st.integers(-2, 9), max_size=4))
    closed = sorted({(today + timedelta(days=k)).isoformat() for k in offsets})
    return {"weekly": weekly, "closed_dates": closed}, moment


@settings(database=None, max_examples=300, deadline=None)
@given(hours_and_moment())
def test_random_schedules_round_trip_and_next_change_matches_is_open_at(
    case: tuple[dict[str, Any], datetime],
) -> None:
    data, moment = case
    hours = OpeningHours.from_json(data)
    assert hours.to_json() == data
    assert OpeningHours.from_json(hours.to_json()) == hours

    state = hours.is_open_at(moment)
    change = hours.next_change(moment)
    horizon = moment + timedelta(days=8)
    if change is not None:
        assert moment < change <= horizon
        assert hours.is_open_at(change - timedelta(microseconds=1)) is state
        assert hours.is_open_at(change) is not state
    # Nothing flips between the moment and the reported change (or the horizon).
    until = horizon if change is None else change
    probe = moment
    while probe < until:
        assert hours.is_open_at(probe) is state
        probe += timedelta(minutes=23)
