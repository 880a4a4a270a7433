"""The push log: each WeChat push stored once, with the reply it got, so that a retry reaching
any worker is recognised and answered alike (see lbs/dispatch.py for the flow)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import cast

from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from lbs.locations import LocationUpdate
from lbs.models import InboundPush, ReplyDelivery
from lbs.wxxml import IncomingMessage
from tianfu.db import upsert_insert

SUCCESS = "success"
_PUSHES = cast(Table, InboundPush.__table__)


@lru_cache(maxsize=2)
def _claim_statement(dialect: str) -> ReturningInsert[tuple[int]]:
    # Built once per backend and executed with parameters: building an INSERT with literal
    # values on every push costs more than running it.
    insert = upsert_insert(dialect)
    statement: ReturningInsert[tuple[int]] = (
        insert(_PUSHES)
        .on_conflict_do_nothing(index_elements=[_PUSHES.c.dedup_key])
        .returning(_PUSHES.c.id)
    )
    return statement


@dataclass(frozen=True)
class PushClaim:
    message: IncomingMessage
    received_at: datetime
    reply_xml: str
    delivery: ReplyDelivery

    def row(self) -> dict[str, object]:
        message = self.message
        return {
            "dedup_key": message.dedup_key,
            "openid": message.from_user[:64],
            "msg_type": message.msg_type[:32],
            "event": message.event[:64] if message.event else None,
            "received_at": self.received_at,
            "reply_xml": self.reply_xml,
            "delivery": self.delivery,
        }


def claim_push(session: Session, claim: PushClaim) -> bool:
    """Insert the push with its reply; False if another attempt got there first. A concurrent
    attempt's insert waits here until the first commits (PostgreSQL waits on the unique index,
    SQLite on its write lock), then finds the row."""
    statement = _claim_statement(session.get_bind().dialect.name)
    return session.connection().execute(statement, claim.row()).scalar_one_or_none() is not None


def fits_one_statement(effects: Sequence[object]) -> bool:
    """Whether the push's effects fit `claim_with_location`: none, or one location."""
    return not effects or (len(effects) == 1 and isinstance(effects[0], LocationUpdate))


# The claim and, only if it is new, the user's location: PostgreSQL runs both inserts of this
# one statement atomically, and the second sees the first's RETURNING rows, so a retry (whose
# claim inserts nothing) moves nothing either.
_CLAIM_AND_LOCATE = text(
    """
    WITH claimed AS (
        INSERT INTO wechat_inbound
            (dedup_key, openid, msg_type, event, received_at, reply_xml, delivery)
        VALUES
            (:dedup_key, :openid, :msg_type, :event, :received_at, :reply_xml, :delivery)
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING id
    ), located AS (
        INSERT INTO wechat_user_locations AS known
            (openid, lat_gcj02, lng_gcj02, precision_m, label, source, reported_at)
        SELECT CAST(:loc_openid AS varchar), CAST(:lat_gcj02 AS double precision),
               CAST(:lng_gcj02 AS double precision), CAST(:precision_m AS double precision),
               CAST(:label AS varchar), CAST(:source AS varchar),
               CAST(:reported_at AS timestamptz)
        FROM claimed
        WHERE CAST(:loc_openid AS varchar) IS NOT NULL
        ON CONFLICT (openid) DO UPDATE SET
            lat_gcj02 = excluded.lat_gcj02, lng_gcj02 = excluded.lng_gcj02,
            precision_m = excluded.precision_m, label = excluded.label,
            source = excluded.source, reported_at = excluded.reported_at
        WHERE known.reported_at <= excluded.reported_at
    )
    SELECT id FROM claimed
    """
)


def claim_with_location(
    session: Session, claim: PushClaim, location: LocationUpdate | None
) -> bool:
    row: dict[str, object] = claim.row()
    row["delivery"] = claim.delivery.value
    located = location.values() if location is not None else {}
    row |= {
        "loc_openid": located.get("openid"),
        "lat_gcj02": located.get("lat_gcj02"),
        "lng_gcj02": located.get("lng_gcj02"),
        "precision_m": located.get("precision_m"),
        "label": located.get("label"),
        "source": location.source.value if location is not None else None,
        "reported_at": located.get("reported_at"),
    }
    return session.connection().execute(_CLAIM_AND_LOCATE, row).scalar_one_or_none() is not None


def stored_reply(session: Session, dedup_key: str) -> str:
    row = session.execute(
        select(InboundPush.reply_xml, InboundPush.delivery).where(
            InboundPush.dedup_key == dedup_key
        )
    ).one()
    return row.reply_xml if row.delivery is ReplyDelivery.passive else SUCCESS
