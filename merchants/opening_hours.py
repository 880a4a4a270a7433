"""Weekly opening hours of a store: split shifts, overnight shifts, closed days and dates.

Stored in ``stores.opening_hours`` (a JSON column) in the shape produced by
:meth:`OpeningHours.to_json`::

    {"weekly": {"mon": [["10:00", "14:00"], ["17:00", "21:30"]], ..., "sun": []},
     "closed_dates": ["2026-01-28"]}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from itertools import groupby, pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

# China has had no daylight saving time since 1991, so wall-clock arithmetic on aware
# datetimes in this zone (which Python does for equal tzinfo objects) is exact.
SHANGHAI = ZoneInfo("Asia/Shanghai")

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DAY = 24 * 60
# Long enough to cross a closed weekday and a holiday or two, and so find the next opening
# of any store that opens at all in a normal week.
_HORIZON = timedelta(days=8)
_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})")
_ZH_DAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def _parse_hhmm(text: object, *, closing: bool) -> int:
    match = _HHMM.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"invalid time {text!r}, expected 'HH:MM'")
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not closing)):
        raise ValueError(
            f"invalid time {text!r}, expected 00:00 to 23:59 (24:00 only as a closing time)"
        )
    return hours * 60 + minutes


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class Shift(BaseModel):
    """One opening span; ``closes <= opens`` means it ends the next day."""

    model_config = ConfigDict(frozen=True)

    opens: int = Field(ge=0, lt=_DAY, description="minutes after midnight")
    closes: int = Field(gt=0, le=_DAY, description="minutes after midnight; 1440 is 24:00")

    @model_validator(mode="after")
    def _not_ambiguous(self) -> Shift:
        if self.opens == self.closes:
            raise ValueError(f"shift {self.label()} is ambiguous; write 00:00-24:00 for a full day")
        return self

    @classmethod
    def parse(cls, raw: object) -> Shift:
        if isinstance(raw, Shift):
            return raw
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            raise ValueError("expected [open, close] as two 'HH:MM' strings")
        opens = _parse_hhmm(raw[0], closing=False)
        closes = _parse_hhmm(raw[1], closing=True)
        if opens == closes:
            # Zero length or a full 24 h? Only 00:00-24:00 says a full day unambiguously.
            raise ValueError("ambiguous (empty or 24 h); write 00:00-24:00 for a full day")
        return cls(opens=opens, closes=closes)

    @property
    def overnight(self) -> bool:
        return self.closes <= self.opens

    @property
    def end(self) -> int:
        """Closing time in minutes after the midnight that starts the opening day."""
        return self.closes + _DAY if self.overnight else self.closes

    def label(self) -> str:
        return f"{_hhmm(self.opens)}-{_hhmm(self.closes)}"

    def label_zh(self) -> str:
        closes = f"次日{_hhmm(self.closes)}" if self.overnight else _hhmm(self.closes)
        return f"{_hhmm(self.opens)}-{closes}"

    @model_serializer
    def _as_pair(self) -> list[str]:
        return [_hhmm(self.opens), _hhmm(self.closes)]


FULL_DAY = Shift(opens=0, closes=_DAY)


def _normalise_weekly(raw: object) -> dict[Weekday, tuple[Shift, ...]]:
    if not isinstance(raw, Mapping):
        raise ValueError("weekly must be an object keyed by mon..sun")
    unknown = [key for key in raw if key not in WEEKDAYS]
    if unknown:
        raise ValueError(f"unknown day {unknown[0]!r}; expected one of {', '.join(WEEKDAYS)}")
    days: dict[Weekday, tuple[Shift, ...]] = {}
    for day in WEEKDAYS:
        entries = raw.get(day, ())
        if not isinstance(entries, list | tuple):
            raise ValueError(f"{day}: expected a list of shifts, got {entries!r}")
        parsed: list[Shift] = []
        for entry in entries:
            try:
                parsed.append(Shift.parse(entry))
            except ValueError as exc:
                raise ValueError(f"{day}: shift {entry!r}: {exc}") from None
        days[day] = tuple(sorted(parsed, key=lambda shift: shift.opens))

    for day, shifts in days.items():
        for earlier, later in pairwise(shifts):
            if later.opens < earlier.end:
                raise ValueError(f"{day}: shift {earlier.label()} overlaps {later.label()}")
    for day, next_day in pairwise((*WEEKDAYS, WEEKDAYS[0])):
        if days[day] and days[next_day]:
            last, first = days[day][-1], days[next_day][0]
            if last.end - _DAY > first.opens:
                raise ValueError(
                    f"{day}: shift {last.label()} runs into {next_day} shift {first.label()}"
                )
    return days


def _local(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"moment must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(SHANGHAI)


def _span_zh(first: int, last: int) -> str:
    if first == last:
        return _ZH_DAYS[first]
    joiner = "、" if last == first + 1 else "至"
    return f"{_ZH_DAYS[first]}{joiner}{_ZH_DAYS[last]}"


def _shifts_zh(shifts: tuple[Shift, ...]) -> str:
    if shifts == (FULL_DAY,):
        return "24小时"
    return ", ".join(shift.label_zh() for shift in shifts)


class OpeningHours(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    weekly: dict[Weekday, tuple[Shift, ...]]
    closed_dates: frozenset[date] = frozenset()

    @field_validator("weekly", mode="before")
    @classmethod
    def _check_weekly(cls, raw: object) -> dict[Weekday, tuple[Shift, ...]]:
        return _normalise_weekly(raw)

    @field_serializer("closed_dates")
    def _dates_sorted(self, closed_dates: frozenset[date]) -> list[str]:
        return [day.isoformat() for day in sorted(closed_dates)]

    @classmethod
    def from_json(cls, data: Any) -> OpeningHours:
        return cls.model_validate(data)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def always_open(cls) -> OpeningHours:
        return cls.daily(("00:00", "24:00"))

    @classmethod
    def daily(cls, *shifts: tuple[str, str], closed_weekdays: Iterable[str] = ()) -> OpeningHours:
        closed = set(closed_weekdays)
        unknown = sorted(closed.difference(WEEKDAYS))
        if unknown:
            raise ValueError(
                f"unknown weekday {unknown[0]!r}; expected one of {', '.join(WEEKDAYS)}"
            )
        weekly = {day: [] if day in closed else list(shifts) for day in WEEKDAYS}
        return cls.model_validate({"weekly": weekly})

    def _open_spans(self, first: date, last: date) -> list[tuple[datetime, datetime]]:
        """Merged open spans of the shifts starting from ``first`` to ``last`` inclusive."""
        spans: list[tuple[datetime, datetime]] = []
        day = first
        while day <= last:
            # A closed date cancels the shifts starting on it; the tail of the previous
            # evening's overnight shift is still served, since guests are already seated.
            if day not in self.closed_dates:
                midnight = datetime.combine(day, time(), tzinfo=SHANGHAI)
                for shift in self.weekly[WEEKDAYS[day.weekday()]]:
                    opens = midnight + timedelta(minutes=shift.opens)
                    closes = midnight + timedelta(minutes=shift.end)
                    # Back-to-back shifts (14:00-18:00 after 10:00-14:00, or a day that starts
                    # at 00:00 where yesterday ended at 24:00) are one open period.
                    if spans and opens <= spans[-1][1]:
                        spans[-1] = (spans[-1][0], max(closes, spans[-1][1]))
                    else:
                        spans.append((opens, closes))
            day += timedelta(days=1)
        return spans

    def is_open_at(self, moment: datetime) -> bool:
        local = _local(moment)
        today = local.date()
        spans = self._open_spans(today - timedelta(days=1), today)
        return any(opens <= local < closes for opens, closes in spans)

    def next_change(self, moment: datetime) -> datetime | None:
        local = _local(moment)
        horizon = local + _HORIZON
        today = local.date()
        for opens, closes in self._open_spans(today - timedelta(days=1), horizon.date()):
            for flip in (opens, closes):
                if local < flip <= horizon:
                    return flip
        return None

    def describe_zh(self, *, closures_from: date | None = None) -> str:
        """Short Chinese summary, e.g. ``周一至周五 10:00-22:00；周六、周日 24小时；周二休息``.

        Holiday closures on or after ``closures_from`` are appended; none are listed without
        it, since the stored list keeps past dates.
        """
        days = [self.weekly[day] for day in WEEKDAYS]
        open_days = [shifts for shifts in days if shifts]
        runs: list[tuple[tuple[Shift, ...], str]] = []
        for shifts, run in groupby(range(7), key=lambda index: days[index]):
            indices = list(run)
            runs.append((shifts, _span_zh(indices[0], indices[-1])))
        parts: list[str] = []
        if not open_days:
            parts.append("暂停营业")
        elif open_days.count(open_days[0]) == len(open_days) and len(open_days) >= 5:
            # "每天 10:00-22:00；周三休息" reads better than listing the runs either side of
            # one or two closed days.
            full_day = open_days[0] == (FULL_DAY,)
            parts.append("24小时营业" if full_day else f"每天 {_shifts_zh(open_days[0])}")
        elif open_days.count(open_days[0]) == len(open_days):
            spans = "、".join(span for shifts, span in runs if shifts)
            parts.append(f"{spans} {_shifts_zh(open_days[0])}")
        else:
            parts.extend(f"{span} {_shifts_zh(shifts)}" for shifts, span in runs if shifts)
        closed = [span for shifts, span in runs if not shifts]
        if closed and open_days:
            parts.append(f"{'、'.join(closed)}休息")
        if closures_from is not None:
            upcoming = sorted(day for day in self.closed_dates if day >= closures_from)
            if upcoming:
                labels = [
                    f"{'' if day.year == closures_from.year else f'{day.year}年'}"
                    f"{day.month}月{day.day}日"
                    for day in upcoming
                ]
                parts.append(f"{'、'.join(labels)}休息")
        return "；".join(parts)
