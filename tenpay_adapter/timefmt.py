"""The three time formats of WeChat Pay (spec §1.3, §1.9, §1.10, §2.3, §6 "Timezones").

v2 and the bill files write Beijing wall time with no offset marker; v3 writes RFC 3339 with
`+08:00`. Everything parsed here comes back as an aware UTC datetime; everything formatted must
be aware (a naive datetime would silently take the host's zone, the bug §6 describes).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from tenpay_adapter.errors import TenpayProtocolError

# China has had no DST since 1991, so a fixed offset is exact.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

_COMPACT_RE = re.compile(r"[0-9]{14}")
_DASHED_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def _parse_beijing(s: str, pattern: re.Pattern[str], fmt: str) -> datetime:
    # The regex first: strptime alone accepts single-digit fields and surrounding space.
    if not isinstance(s, str) or not pattern.fullmatch(s):
        raise TenpayProtocolError("malformed Beijing time")
    try:
        return datetime.strptime(s + "+0800", fmt + "%z").astimezone(UTC)
    except (ValueError, OverflowError):  # 2024-02-30, or year 1 moved before year 1
        raise TenpayProtocolError("impossible Beijing time") from None


def _require_aware(dt: datetime) -> None:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime: WeChat Pay times must be formatted from aware values")


def parse_beijing_compact(s: str) -> datetime:
    """'yyyyMMddHHmmss' in Beijing time (time_end, time_start, time_expire) → aware UTC."""
    return _parse_beijing(s, _COMPACT_RE, "%Y%m%d%H%M%S")


def format_beijing_compact(dt: datetime) -> str:
    _require_aware(dt)
    return dt.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def parse_beijing_dashed(s: str) -> datetime:
    """'yyyy-MM-dd HH:mm:ss' in Beijing time (refund success_time, bill rows) → aware UTC."""
    return _parse_beijing(s, _DASHED_RE, "%Y-%m-%d %H:%M:%S")


def format_beijing_dashed(dt: datetime) -> str:
    _require_aware(dt)
    return dt.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def parse_rfc3339(s: str) -> datetime:
    """v3 times ('2018-06-08T10:34:56+08:00') → aware UTC; an offset is required."""
    # fromisoformat alone would also take dates, week dates and offset-less (naive) times.
    if not isinstance(s, str) or not _RFC3339_RE.fullmatch(s):
        raise TenpayProtocolError("malformed RFC 3339 time")
    try:
        return datetime.fromisoformat(s).astimezone(UTC)
    except (ValueError, OverflowError):
        raise TenpayProtocolError("impossible RFC 3339 time") from None


def format_rfc3339_beijing(dt: datetime) -> str:
    """Aware dt → '2024-01-01T12:45:45+08:00' (v3 time_expire); sub-seconds are dropped."""
    _require_aware(dt)
    return dt.astimezone(BEIJING).replace(microsecond=0).isoformat()
