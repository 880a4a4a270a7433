"""An offer's terms on the portal: read from the offer form (yuan, 折, Beijing days, wall-clock
windows) into the fields of `coupons.schemas.OfferCreate`, written back into the form to edit
them, and said in Chinese for the offer pages, the bank's review and the counter.

The form speaks as merchants do: amounts in yuan ("12.5"), a percentage as 折 ("8.8" = pay 88%),
validity as Beijing calendar days (the last one included). Every amount becomes integer fen by
integer arithmetic; nothing here goes through a float. Each problem is reported on its field, in
Chinese, before coupons' own checks (which speak English) ever see the terms.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from starlette.datastructures import FormData, UploadFile

from coupons.explain import weekdays_zh, windows_zh, yuan
from coupons.models import ClaimStatus, Offer, time_windows_of, weekdays_of
from coupons.rules import OfferKind
from merchants.portal_web import SHANGHAI

KIND_ZH = {
    OfferKind.fixed_off: "立减",
    OfferKind.threshold_off: "满减",
    OfferKind.percent_off: "折扣",
    OfferKind.gift: "赠品",
    OfferKind.points_exchange: "积分兑换",
}
CLAIM_STATUS_ZH = {
    ClaimStatus.claimed: "未使用",
    ClaimStatus.redeemed: "已核销",
    ClaimStatus.expired: "已过期",
    ClaimStatus.void: "已作废",
}
LABELS = {
    "kind": "优惠类型",
    "title_zh": "标题",
    "description": "说明",
    "amount_off": "减免金额",
    "threshold": "满额门槛",
    "discount_zhe": "折扣",
    "cap": "最高减",
    "gift_value": "赠品价值",
    "points_cost": "所需积分",
    "min_spend": "最低消费",
    "valid_from": "开始日期",
    "valid_until": "结束日期",
    "valid_days_after_claim": "领取后有效天数",
    "weekday": "可用星期",
    "windows": "可用时段",
    "store_id": "适用门店",
    "per_user_limit": "每人限领",
    "per_day_limit": "每日限领",
    "total_stock": "库存",
    "budget": "预算",
}
WINDOWS = 3  # time-of-day windows the form offers
MAX_VALID_DAYS = 3650  # coupons.schemas.OfferCreate.valid_days_after_claim
# The amounts each kind takes; the form's other amount fields are ignored for that kind.
KIND_AMOUNTS: dict[OfferKind, frozenset[str]] = {
    OfferKind.fixed_off: frozenset({"amount_off", "min_spend"}),
    OfferKind.threshold_off: frozenset({"threshold", "amount_off"}),
    OfferKind.percent_off: frozenset({"discount_zhe", "cap", "min_spend"}),
    OfferKind.gift: frozenset({"gift_value", "min_spend"}),
    OfferKind.points_exchange: frozenset({"points_cost", "amount_off", "gift_value", "min_spend"}),
}
# The amount inputs of the form, in the order shown.
AMOUNT_INPUTS = (
    ("threshold", "满额门槛（元）"),
    ("amount_off", "减免金额（元）"),
    ("discount_zhe", "折扣（折，如 8.8）"),
    ("cap", "最高减（元）"),
    ("gift_value", "赠品价值（元）"),
    ("points_cost", "所需积分"),
    ("min_spend", "最低消费（元，选填）"),
)
_FEN_FIELDS = {
    "amount_off": "amount_off_fen",
    "threshold": "threshold_fen",
    "cap": "cap_fen",
    "gift_value": "gift_value_fen",
    "min_spend": "min_spend_fen",
}
# At most 9,999,999.99 yuan: within a 32-bit INTEGER column of fen on both backends.
_YUAN_RE = re.compile(r"^(\d{1,7})(?:\.(\d{1,2}))?$")
_ZHE_RE = re.compile(r"^(\d)(?:\.(\d{1,2}))?$")
_COUNT_RE = re.compile(r"^\d{1,7}$")
_TIME_RE = re.compile(r"^(\d{2}):(\d{2})$")
_LINE_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # a description keeps \n and tabs
_TEXT_LIMITS = {"title_zh": 60, "description": 2000}
_SHORT_LIMIT = 16  # any other single-line field
_REQUIRED_AMOUNTS: dict[OfferKind, frozenset[str]] = {
    OfferKind.fixed_off: frozenset({"amount_off"}),
    OfferKind.threshold_off: frozenset({"threshold", "amount_off"}),
    OfferKind.percent_off: frozenset({"cap"}),
    OfferKind.gift: frozenset({"gift_value"}),
    OfferKind.points_exchange: frozenset(),
}


def _hundredths(whole: str, fraction: str | None) -> int:
    """ "12", "5" -> 1250: a decimal with up to two places as an integer count of hundredths."""
    return int(whole) * 100 + int((fraction or "0").ljust(2, "0"))


class _Reader:
    """Reads one submitted form, collecting a Chinese message per field that is wrong."""

    def __init__(self, form: FormData) -> None:
        self.form = form
        self.errors: dict[str, str] = {}

    def text(self, name: str) -> str:
        value = str(self.form.get(name, "") or "")
        if name == "description":
            value = value.replace("\r\n", "\n")
        control = _TEXT_CONTROL_RE if name == "description" else _LINE_CONTROL_RE
        if control.search(value):
            self.errors[name] = f"{LABELS.get(name, name)}不能包含控制字符"
            return ""
        value = value.strip()
        limit = _TEXT_LIMITS.get(name, _SHORT_LIMIT)
        if len(value) > limit:
            self.errors[name] = f"{LABELS.get(name, name)}不能超过{limit}个字符"
            return ""
        # Full-width digits and punctuation (a Chinese IME's "１２．５") read as ASCII.
        return value if name in _TEXT_LIMITS else unicodedata.normalize("NFKC", value)

    def present(self, name: str, *, required: bool) -> str:
        value = self.text(name)
        if not value and required and name not in self.errors:
            self.errors[name] = f"请填写{LABELS[name]}"
        return value

    def fen(self, name: str, *, required: bool) -> int | None:
        value = self.present(name, required=required)
        if not value:
            return None
        found = _YUAN_RE.fullmatch(value)
        if found is None:
            self.errors[name] = f"{LABELS[name]}请填写金额（元），最多两位小数"
            return None
        return _hundredths(found.group(1), found.group(2))

    def count(
        self, name: str, *, required: bool, minimum: int = 1, maximum: int | None = None
    ) -> int | None:
        value = self.present(name, required=required)
        if not value:
            return None
        if not _COUNT_RE.fullmatch(value) or not minimum <= int(value) <= (maximum or int(value)):
            limits = f"{minimum}至{maximum}之间" if maximum else f"不小于{minimum}"
            self.errors[name] = f"{LABELS[name]}请填写{limits}的整数"
            return None
        return int(value)

    def day(self, name: str) -> date | None:
        value = self.text(name)
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            self.errors[name] = f"{LABELS[name]}格式不正确"
            return None

    def discount_permille(self) -> int | None:
        """8.8折 = paying 880‰ = 120‰ off."""
        value = self.present("discount_zhe", required=True)
        found = _ZHE_RE.fullmatch(value)
        pay = _hundredths(found.group(1), found.group(2)) if found else 0
        if not 0 < pay < 1000:
            if value:
                self.errors["discount_zhe"] = "折扣请填写0.01至9.99之间的折数，如 8.8"
            return None
        return 1000 - pay

    def choices(self, name: str, allowed: set[int]) -> list[int] | None:
        """The ticked boxes of a multi-valued field; None when none is ticked."""
        values = [str(v) for v in self.form.getlist(name)]
        if not all(v.isdigit() and len(v) < 10 and int(v) in allowed for v in values):
            self.errors[name] = f"{LABELS[name]}选择有误"
            return None
        return sorted({int(v) for v in values}) or None

    def _clock(self, name: str, *, closing: bool) -> time | None:
        found = _TIME_RE.fullmatch(self.text(name))
        if found is None:
            return None
        hour, minute = int(found.group(1)), int(found.group(2))
        if closing and (hour, minute) == (24, 0):
            return time(0)  # midnight, as coupons.rules.TimeWindow writes it
        return time(hour, minute) if hour < 24 and minute < 60 else None

    def windows(self) -> list[dict[str, time]]:
        windows: list[dict[str, time]] = []
        for i in range(1, WINDOWS + 1):
            names = (f"window_start_{i}", f"window_end_{i}")
            if not any(self.text(name) for name in names):
                continue
            start, end = self._clock(names[0], closing=False), self._clock(names[1], closing=True)
            if start is None or end is None:
                self.errors["windows"] = "可用时段请填写完整的开始和结束时间（HH:MM）"
            elif not (start < end or end == time(0)):
                self.errors["windows"] = "可用时段的开始时间须早于结束时间（24:00 表示午夜）"
            else:
                windows.append({"start": start, "end": end})
        return windows


def read_offer_form(
    form: FormData, *, store_ids: Sequence[int], kind: OfferKind | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the fields of an OfferCreate, {field: message}); the fields are whole only when there
    is no message. `store_ids` are the stores the account may scope the offer to; `kind` is
    the offer's own when editing (a kind cannot change), else read from the form."""
    reader = _Reader(form)
    if kind is None:
        chosen = reader.text("kind")
        if chosen not in OfferKind.__members__:
            return {}, {"kind": "请选择优惠类型"}
        kind = OfferKind(chosen)
    fields: dict[str, Any] = {"kind": kind, **_amounts(reader, kind), **_calendar(reader)}
    fields["title_zh"] = reader.present("title_zh", required=True)
    fields["description"] = reader.text("description")
    fields["store_ids"] = reader.choices("store_id", set(store_ids))
    fields["per_user_limit"] = reader.count("per_user_limit", required=True)
    fields["per_day_limit"] = reader.count("per_day_limit", required=False)
    fields["total_stock"] = reader.count("total_stock", required=True)
    fields["budget_fen"] = reader.fen("budget", required=True)
    fields["new_customers_only"] = form.get("new_customers_only") == "1"
    return fields, reader.errors


def _amounts(reader: _Reader, kind: OfferKind) -> dict[str, Any]:
    """The kind's amounts; the others stay at nothing, whatever a hidden field held."""
    wanted, required = KIND_AMOUNTS[kind], _REQUIRED_AMOUNTS[kind]
    fields: dict[str, Any] = dict.fromkeys(_FEN_FIELDS.values(), 0)
    fields |= {"cap_fen": None, "discount_permille": 0, "points_cost": 0}
    for name, column in _FEN_FIELDS.items():
        if name in wanted and (fen := reader.fen(name, required=name in required)) is not None:
            fields[column] = fen
    if "discount_zhe" in wanted:
        fields["discount_permille"] = reader.discount_permille()
    if "points_cost" in wanted:
        fields["points_cost"] = reader.count("points_cost", required=True)
    _check_amounts(reader.errors, kind, fields)
    return fields


def _check_amounts(errors: dict[str, str], kind: OfferKind, fields: dict[str, Any]) -> None:
    """The rules of coupons.schemas.OfferCreate per kind, said on the field concerned."""
    amount_off, gift = fields["amount_off_fen"], fields["gift_value_fen"]
    if kind in (OfferKind.fixed_off, OfferKind.threshold_off) and amount_off <= 0:
        errors.setdefault("amount_off", "减免金额须大于0")
    if kind is OfferKind.threshold_off and fields["threshold_fen"] < amount_off:
        errors.setdefault("threshold", "满额门槛不能低于减免金额")
    if kind is OfferKind.percent_off and not fields["cap_fen"]:
        errors.setdefault("cap", "折扣券须设置大于0的最高减金额")
    if kind is OfferKind.gift and gift <= 0:
        errors.setdefault("gift_value", "赠品价值须大于0")
    if kind is OfferKind.points_exchange and amount_off <= 0 and gift <= 0:
        errors.setdefault("amount_off", "积分兑换须填写减免金额或赠品价值")


def _calendar(reader: _Reader) -> dict[str, Any]:
    first, last = reader.day("valid_from"), reader.day("valid_until")
    if first and last and last < first:
        reader.errors["valid_until"] = "结束日期不能早于开始日期"
    weekdays = reader.choices("weekday", set(range(7)))
    # Beijing days; the last one is included, so the offer ends at the next midnight.
    until = datetime.combine(last + timedelta(days=1), time(0), SHANGHAI) if last else None
    return {
        "valid_from": datetime.combine(first, time(0), SHANGHAI) if first else None,
        "valid_until": until,
        "valid_days_after_claim": reader.count(
            "valid_days_after_claim", required=False, maximum=MAX_VALID_DAYS
        ),
        "weekdays": None if weekdays is None or len(weekdays) == 7 else weekdays,
        "time_windows": reader.windows(),
    }


# -- the offer back into the form -----------------------------------------------------------------


def _day_text(moment: datetime | None, *, last: bool = False) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(SHANGHAI)
    # The stored end is exclusive: the form shows the last day the offer runs.
    return (local - timedelta(microseconds=1) if last else local).date().isoformat()


def form_values(offer: Offer, store_ids: Sequence[int]) -> dict[str, Any]:
    """The offer as its edit form shows it (`store_ids`: its scope; empty for every store)."""
    values: dict[str, Any] = {
        "kind": offer.kind.value,
        "title_zh": offer.title_zh,
        "description": offer.description,
        "discount_zhe": yuan(1000 - offer.discount_permille) if offer.discount_permille else "",
        "points_cost": str(offer.points_cost or ""),
        "valid_from": _day_text(offer.valid_from),
        "valid_until": _day_text(offer.valid_until, last=True),
        "valid_days_after_claim": str(offer.valid_days_after_claim or ""),
        "weekday": [str(d) for d in sorted(weekdays_of(offer.weekdays_mask) or ())],
        "store_id": [str(s) for s in store_ids],
        "per_user_limit": str(offer.per_user_limit),
        "per_day_limit": str(offer.per_day_limit or ""),
        "total_stock": str(offer.total_stock),
        "budget": yuan(offer.budget_fen),
        "new_customers_only": "1" if offer.new_customers_only else "",
    }
    for name, column in _FEN_FIELDS.items():
        fen = getattr(offer, column)
        values[name] = yuan(fen) if fen else ""
    for i, window in enumerate(time_windows_of(offer.time_windows), start=1):
        values[f"window_start_{i}"] = window.start.strftime("%H:%M")
        end = "24:00" if window.end == time(0) else window.end.strftime("%H:%M")
        values[f"window_end_{i}"] = end
    return values


def as_form(values: Mapping[str, Any]) -> FormData:
    """Form values (lists for the multi-valued fields) as a FormData, to be read again."""
    pairs: list[tuple[str, str | UploadFile]] = []
    for name, value in values.items():
        pairs.extend((name, str(v)) for v in (value if isinstance(value, list) else [value]))
    return FormData(pairs)


def submitted_values(form: FormData) -> dict[str, Any]:
    """A submitted form as the template shows it again after a refusal."""
    values: dict[str, Any] = {k: v for k, v in form.items() if k != "csrf_token"}
    for name in ("weekday", "store_id"):
        values[name] = [str(v) for v in form.getlist(name)]
    return values


# -- the terms in words ---------------------------------------------------------------------------


def headline_zh(offer: Offer) -> str:
    kind = offer.kind
    if kind is OfferKind.threshold_off:
        return f"满{yuan(offer.threshold_fen)}减{yuan(offer.amount_off_fen)}元"
    if kind is OfferKind.percent_off:
        # 120‰ off is paying 880‰: "8.8折" (yuan() prints hundredths the same way).
        cap = f"，最高减{yuan(offer.cap_fen)}元" if offer.cap_fen else ""
        return f"{yuan(1000 - offer.discount_permille)}折{cap}"
    parts = []
    if kind is OfferKind.points_exchange:
        parts.append(f"{offer.points_cost}积分兑换")
    if offer.amount_off_fen and kind is not OfferKind.gift:
        parts.append(f"立减{yuan(offer.amount_off_fen)}元")
    if offer.gift_value_fen:
        parts.append(f"赠价值{yuan(offer.gift_value_fen)}元礼品")
    return "，".join(parts)


def terms_facts(
    offer: Offer, store_names: Sequence[str], *, all_stores: bool
) -> list[tuple[str, str]]:
    """(label, text) rows for a definition list. `store_names`: the scope's stores this viewer
    may see; `all_stores`: the offer is not limited to some stores."""
    windows = time_windows_of(offer.time_windows)
    weekdays = weekdays_of(offer.weekdays_mask)
    validity = "不限"
    if offer.valid_from or offer.valid_until:
        first = _day_text(offer.valid_from) or "即日"
        validity = f"{first} 至 {_day_text(offer.valid_until, last=True) or '长期'}"
    facts = [
        ("类型", KIND_ZH[offer.kind]),
        ("优惠", headline_zh(offer)),
        ("最低消费", f"满{yuan(offer.min_spend_fen)}元可用" if offer.min_spend_fen else "无"),
        ("有效期", validity),
        ("可用星期", weekdays_zh(weekdays) if weekdays is not None else "每天"),
        ("可用时段", windows_zh((w.start, w.end) for w in windows) if windows else "全天"),
        ("适用门店", "全部门店" if all_stores else "、".join(store_names) or "（其他门店）"),
        ("每人限领", f"{offer.per_user_limit}张"),
        ("库存", f"{offer.total_stock}张"),
        ("预算", f"{yuan(offer.budget_fen)}元"),
    ]
    if offer.valid_days_after_claim:
        facts.insert(4, ("领取后有效", f"{offer.valid_days_after_claim}天"))
    if offer.per_day_limit:
        facts.append(("每日限领", f"{offer.per_day_limit}张"))
    if offer.new_customers_only:
        facts.append(("仅限新客", "是"))
    return facts
