"""Each user's last known position, so "附近" typed later can be answered without asking again."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Insert, Table, select
from sqlalchemy.orm import Session

from lbs.models import LocationSource, UserLocation
from tianfu.db import upsert_insert


@dataclass(frozen=True)
class LocationUpdate:
    """A position to remember once the push that carried it is known to be new."""

    openid: str
    lat_gcj02: float
    lng_gcj02: float
    source: LocationSource
    reported_at: datetime
    precision_m: float | None = None
    label: str | None = None

    def __call__(self, session: Session) -> None:
        remember_location(session, **self.values())

    def values(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


def remember_location(
    session: Session,
    *,
    openid: str,
    lat_gcj02: float,
    lng_gcj02: float,
    source: LocationSource,
    reported_at: datetime,
    precision_m: float | None = None,
    label: str | None = None,
) -> None:
    """Upsert in one statement: two pushes of one user can arrive at two workers at once.

    A report older than the stored one is ignored, since WeChat's retries and the LOCATION
    event's periodic reports can arrive out of order.
    """
    values = {
        "openid": openid,
        "lat_gcj02": lat_gcj02,
        "lng_gcj02": lng_gcj02,
        "source": source,
        "reported_at": reported_at,
        "precision_m": precision_m,
        "label": label,
    }
    statement = _upsert_statement(session.get_bind().dialect.name)
    session.connection().execute(statement, values)


@lru_cache(maxsize=2)
def _upsert_statement(dialect: str) -> Insert:
    # Built once per backend, executed with parameters: it runs on every location message.
    insert = upsert_insert(dialect)
    table = cast(Table, UserLocation.__table__)
    statement = insert(table)
    changed = {
        column.name: statement.excluded[column.name]
        for column in table.columns
        if column.name != "openid"
    }
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[table.c.openid],
        set_=changed,
        where=table.c.reported_at <= statement.excluded.reported_at,
    )
    return upsert


def fresh_location(
    session: Session, openid: str, *, now: datetime, max_age_s: int
) -> UserLocation | None:
    return session.scalars(
        select(UserLocation).where(
            UserLocation.openid == openid,
            UserLocation.reported_at >= now - timedelta(seconds=max_age_s),
        )
    ).one_or_none()
