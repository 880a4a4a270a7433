"""What the portal's report pages (sales, settlement, reconciliation) share: the Beijing day a
page is about, and CSV downloads (amounts in them: `payments.settlement.yuan`).

Downloads start with a UTF-8 byte-order mark: Excel, which is what merchants and bank staff open
them with, otherwise reads UTF-8 Chinese as mojibake; every other reader skips it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from fastapi import Request
from fastapi.responses import Response

from merchants.auth import now_of
from merchants.portal_web import SHANGHAI
from tianfu.csvcells import text_cell

__all__ = ["BOM", "beijing_time", "csv_response", "day_of", "text_cell", "today", "yesterday"]

BOM = "\ufeff"


def today(request: Request) -> date:
    return now_of(request).astimezone(SHANGHAI).date()


def day_of(value: str, default: date) -> date | None:
    """A `?day=YYYY-MM-DD` value; `default` when absent, None when malformed."""
    if not value:
        return default
    try:
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None


def yesterday(request: Request) -> date:
    return today(request) - timedelta(days=1)


def beijing_time(moment: datetime | None) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def csv_response(text: str, filename: str) -> Response:
    return Response(
        BOM + text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
