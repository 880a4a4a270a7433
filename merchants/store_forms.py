"""The store form of the portal: plain fields a person can fill in without a script, checked
field by field with Chinese messages, and turned into the same StoreCreate the APIs take.

Opening hours are one text field per weekday, shifts separated by commas:
`10:00-14:00,17:00-22:00` (a split shift), `18:00-02:00` (overnight), `24小时`, or empty for a
closed day; holiday closures are dates, one per line or separated by commas.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date
from itertools import pairwise
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from lbs.coords import CoordSystem
from merchants.models import Store
from merchants.opening_hours import WEEKDAYS, OpeningHours, Shift
from merchants.portal_forms import PortalForm
from merchants.schemas import PHONE_RE, StoreCreate
from merchants.stores import hours_of, position_of

MAX_SHIFTS_PER_DAY = 6
MAX_CLOSED_DATES = 100
DAY_ZH = dict(zip(WEEKDAYS, ("周一", "周二", "周三", "周四", "周五", "周六", "周日"), strict=True))
COORD_ZH = {
    CoordSystem.GCJ02: "GCJ-02（腾讯、高德地图）",
    CoordSystem.BD09: "BD-09（百度地图）",
    CoordSystem.WGS84: "WGS-84（GPS）",
}
LABELS = {
    "name": "门店名称",
    "address": "地址",
    "district": "区县",
    "phone": "电话",
    "category": "经营类目",
    "lat": "纬度",
    "lng": "经度",
    "coord": "坐标系",
    "closed_dates": "休息日期",
} | {f"hours_{day}": f"{zh}营业时间" for day, zh in DAY_ZH.items()}

_SHIFT_SEPARATORS = re.compile(r"[,，、;；\s]+")
_SHIFT_RE = re.compile(r"(\d{1,2})[:：](\d{2})\s*[-–—~～至到]\s*(\d{1,2})[:：](\d{2})")
_FULL_DAY_WORDS = frozenset({"24小时", "全天", "24h", "24H"})
_CLOSED_WORDS = frozenset({"休息", "不营业", "closed"})
_DATE_SEPARATORS = re.compile(r"[,，、;；\s]+")


def _shift(token: str) -> Shift:
    match = _SHIFT_RE.fullmatch(token)
    if match is None:
        raise ValueError(f"“{token[:20]}”格式不对，应为 10:00-22:00 这样的时段")
    oh, om, ch, cm = (int(part) for part in match.groups())
    opens, closes = oh * 60 + om, ch * 60 + cm
    if oh > 23 or om > 59 or ch > 24 or cm > 59 or (ch == 24 and cm):
        raise ValueError(f"“{token}”的时间无效（00:00 至 23:59，24:00 只能作结束时间）")
    if opens == closes % (24 * 60):
        raise ValueError(f"“{token}”开始和结束相同；全天营业请写 00:00-24:00")
    # 22:00-00:00 closes at midnight, which the stored form writes 24:00.
    return Shift(opens=opens, closes=closes or 24 * 60)


def parse_shifts(raw: object) -> tuple[Shift, ...]:
    text = raw.strip() if isinstance(raw, str) else ""
    if len(text) > 100:
        raise ValueError("内容过长（最多100个字符）")
    if not text or text in _CLOSED_WORDS:
        return ()
    if text in _FULL_DAY_WORDS:
        return (Shift(opens=0, closes=24 * 60),)
    shifts = sorted(
        (_shift(token) for token in _SHIFT_SEPARATORS.split(text) if token),
        key=lambda shift: shift.opens,
    )
    if len(shifts) > MAX_SHIFTS_PER_DAY:
        raise ValueError(f"每天最多{MAX_SHIFTS_PER_DAY}个时段")
    for earlier, later in pairwise(shifts):
        if later.opens < earlier.end:
            raise ValueError(f"时段 {earlier.label_zh()} 与 {later.label_zh()} 重叠")
    return tuple(shifts)


def parse_dates(raw: object) -> frozenset[date]:
    text = raw.strip() if isinstance(raw, str) else ""
    if len(text) > 2000:
        raise ValueError("内容过长")
    days: set[date] = set()
    for token in _DATE_SEPARATORS.split(text):
        if not token:
            continue
        try:
            day = date.fromisoformat(token.replace("/", "-"))
        except ValueError:
            raise ValueError(f"“{token[:20]}”不是有效日期，应为 2026-10-01 这样的格式") from None
        if not 2000 <= day.year <= 2100:
            raise ValueError(f"“{token}”的年份不对")
        days.add(day)
    if len(days) > MAX_CLOSED_DATES:
        raise ValueError(f"最多{MAX_CLOSED_DATES}个日期；过去的日期可以删掉")
    return frozenset(days)


def _number(raw: object, low: float, high: float) -> float:
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        raise ValueError("请填写")
    try:
        value = float(text[:40])
    except ValueError:
        raise ValueError("应为数字，例如 30.657700") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"应在 {low:g} 到 {high:g} 之间（经纬度是否填反了？）")
    return value


def parse_lat(raw: object) -> float:
    return _number(raw, -90.0, 90.0)


def parse_lng(raw: object) -> float:
    return _number(raw, -180.0, 180.0)


def parse_coord(raw: object) -> CoordSystem:
    try:
        return CoordSystem(raw) if isinstance(raw, str) and raw else CoordSystem.GCJ02
    except ValueError:
        raise ValueError("应为 gcj02、wgs84 或 bd09") from None


Shifts = Annotated[tuple[Shift, ...], BeforeValidator(parse_shifts)]


class StoreForm(PortalForm):
    name: Annotated[str, Field(min_length=2, max_length=60)]
    address: Annotated[str, Field(min_length=2, max_length=120)]
    district: Annotated[str, Field(max_length=32)] = ""
    phone: Annotated[str, Field(max_length=20)] = ""
    category: Annotated[str, Field(min_length=1, max_length=32)]
    lat: Annotated[float, BeforeValidator(parse_lat)]
    lng: Annotated[float, BeforeValidator(parse_lng)]
    coord: Annotated[CoordSystem, BeforeValidator(parse_coord)] = CoordSystem.GCJ02
    hours_mon: Shifts = ()
    hours_tue: Shifts = ()
    hours_wed: Shifts = ()
    hours_thu: Shifts = ()
    hours_fri: Shifts = ()
    hours_sat: Shifts = ()
    hours_sun: Shifts = ()
    closed_dates: Annotated[frozenset[date], BeforeValidator(parse_dates)] = frozenset()

    @field_validator("name", "address", "district", "phone")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\t" in value or "\n" in value:
            raise ValueError("不能包含换行或制表符")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        if value and not PHONE_RE.fullmatch(value):
            raise ValueError("请填写11位手机号或带区号的固定电话")
        return value

    @model_validator(mode="after")
    def _no_overnight_overlap(self) -> Self:
        weekly = self.weekly()
        for day, next_day in pairwise((*WEEKDAYS, WEEKDAYS[0])):
            if weekly[day] and weekly[next_day]:
                last, first = weekly[day][-1], weekly[next_day][0]
                if last.end - 24 * 60 > first.opens:
                    raise ValueError(
                        f"{DAY_ZH[day]}的 {last.label_zh()} 与{DAY_ZH[next_day]}的 "
                        f"{first.label_zh()} 重叠"
                    )
        return self

    def weekly(self) -> dict[str, tuple[Shift, ...]]:
        return {day: getattr(self, f"hours_{day}") for day in WEEKDAYS}

    def opening_hours(self) -> OpeningHours:
        weekly = {day: [shift.model_dump() for shift in s] for day, s in self.weekly().items()}
        return OpeningHours.model_validate(
            {"weekly": weekly, "closed_dates": sorted(self.closed_dates)}
        )

    def create(self) -> StoreCreate:
        return StoreCreate(
            name=self.name,
            address=self.address,
            district=self.district,
            phone=self.phone,
            category=self.category,
            lat=self.lat,
            lng=self.lng,
            coord=self.coord,
            opening_hours=self.opening_hours(),
        )


def _message(field: str, error: Any) -> str:
    label = LABELS.get(field, field)
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and error.get("input") == ""):
        return f"请填写{label}"
    if kind == "string_too_long":
        return f"{label}不能超过{ctx.get('max_length')}个字符"
    if kind == "string_too_short":
        return f"{label}至少{ctx.get('min_length')}个字符"
    if kind == "value_error":
        text = str(error["msg"]).removeprefix("Value error, ")
        return f"{label}：{text}" if field in LABELS else text
    return f"{label}格式不正确"


def _errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        # The form's own model check is about hours across two days.
        field = str(error["loc"][0]) if error["loc"] else "hours"
        errors.setdefault(field, _message(field, error))
    return errors


def parse_store_form(form: Mapping[str, Any]) -> StoreCreate | dict[str, str]:
    """The store the form describes, or {field: message} to show next to the fields."""
    try:
        return StoreForm.model_validate(dict(form)).create()
    except ValidationError as exc:
        return _errors(exc)


def form_values(store: Store, category_code: str) -> dict[str, str]:
    """The form filled in with a store as it is (GCJ-02, as stored)."""
    hours = hours_of(store)
    position = position_of(store)
    return {
        "name": store.name,
        "address": store.address,
        "district": store.district,
        "phone": store.phone,
        "category": category_code,
        "lat": repr(position.lat),
        "lng": repr(position.lng),
        "coord": CoordSystem.GCJ02.value,
        "closed_dates": "\n".join(day.isoformat() for day in sorted(hours.closed_dates)),
    } | {f"hours_{day}": ",".join(shift.label() for shift in hours.weekly[day]) for day in WEEKDAYS}
