"""Bank points (积分): an append-only ledger with one balance row per user.

Every change goes through :func:`post`, which in one transaction:

1. makes sure the user's balance row exists (INSERT ... ON CONFLICT DO NOTHING; on SQLite this
   first statement is a write, so the single-writer lock is taken while busy_timeout still
   applies);
2. locks that row (SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer at a time), so the
   user's ledger changes one at a time across workers;
3. returns the existing entry if the source key was applied before (each source event once);
4. moves the balance with `UPDATE ... SET balance = balance + :delta WHERE balance + :delta >= 0`
   (the CHECK balance >= 0 behind it), and appends the entry with the balance after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from coupons.errors import (
    InvalidPointsError,
    PointsEntryNotFoundError,
    PointsInsufficientError,
    PointsSourceConflictError,
)
from coupons.models import PointsAccount, PointsEntry, PointsKind
from tianfu.db import upsert_insert

MAX_SOURCE_KEY_LENGTH = 120  # leaves room for the "reverse:" prefix within the column's 160
_ACCOUNTS = cast(Table, PointsAccount.__table__)


def balance(session: Session, openid: str) -> int:
    value = session.scalar(select(PointsAccount.balance).where(PointsAccount.openid == openid))
    return value or 0


def history(session: Session, openid: str, limit: int = 50) -> list[PointsEntry]:
    """Newest first."""
    return list(
        session.scalars(
            select(PointsEntry)
            .where(PointsEntry.openid == openid)
            .order_by(PointsEntry.id.desc())
            .limit(limit)
        )
    )


def points_for_payment(paid_fen: int, points_per_yuan: int) -> int:
    """Points earned on a payment: whole yuan only, rounded down (99.99元 earns as 99元)."""
    return (max(paid_fen, 0) // 100) * points_per_yuan


def earn(
    session: Session, *, openid: str, points: int, source_key: str, now: datetime
) -> PointsEntry:
    _check_request(points, source_key)
    return post(
        session,
        openid=openid,
        delta=points,
        kind=PointsKind.earn,
        source_key=source_key,
        now=now,
    )


def spend(
    session: Session, *, openid: str, points: int, source_key: str, now: datetime
) -> PointsEntry:
    _check_request(points, source_key)
    return post(
        session,
        openid=openid,
        delta=-points,
        kind=PointsKind.spend,
        source_key=source_key,
        now=now,
    )


def reverse(session: Session, *, source_key_of_original: str, now: datetime) -> PointsEntry:
    """Undo an entry (a refund): once, because the reversal has its own unique source key.

    Reversing points already spent elsewhere is refused (PointsInsufficientError) rather than
    letting the balance go negative; what to do then is the refund's decision.
    """
    original = session.scalars(
        select(PointsEntry).where(PointsEntry.source_key == source_key_of_original)
    ).one_or_none()
    if original is None:
        raise PointsEntryNotFoundError(f"积分记录 {source_key_of_original} 不存在")
    if original.kind is PointsKind.reverse:
        raise InvalidPointsError("冲正记录不能再冲正")
    return post(
        session,
        openid=original.openid,
        delta=-original.delta,
        kind=PointsKind.reverse,
        source_key=f"reverse:{original.source_key}",
        now=now,
    )


def _check_request(points: int, source_key: str) -> None:
    if points <= 0:
        raise InvalidPointsError("积分数必须为正整数")
    if not source_key or len(source_key) > MAX_SOURCE_KEY_LENGTH:
        raise InvalidPointsError(f"source_key 须为 1..{MAX_SOURCE_KEY_LENGTH} 个字符")


def post(
    session: Session,
    *,
    openid: str,
    delta: int,
    kind: PointsKind,
    source_key: str,
    now: datetime,
) -> PointsEntry:
    """Apply one ledger entry (see the module docstring); a repeated source key returns the entry
    it created the first time."""
    if delta == 0:
        raise InvalidPointsError("积分变动不能为 0")
    session.execute(
        upsert_insert(session.get_bind().dialect.name)(_ACCOUNTS)
        .values(openid=openid, balance=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=[_ACCOUNTS.c.openid])
    )
    session.execute(
        select(_ACCOUNTS.c.balance).where(_ACCOUNTS.c.openid == openid).with_for_update()
    )
    existing = session.scalars(
        select(PointsEntry).where(PointsEntry.source_key == source_key)
    ).one_or_none()
    if existing is not None:
        if (existing.openid, existing.delta, existing.kind) != (openid, delta, kind):
            raise PointsSourceConflictError(f"积分来源 {source_key} 已用于另一笔变动")
        return existing
    after = session.execute(
        update(_ACCOUNTS)
        .where(_ACCOUNTS.c.openid == openid, _ACCOUNTS.c.balance + delta >= 0)
        .values(balance=_ACCOUNTS.c.balance + delta, updated_at=now)
        .returning(_ACCOUNTS.c.balance)
    ).scalar_one_or_none()
    if after is None:
        short = -delta - balance(session, openid)
        raise PointsInsufficientError(f"积分不足，还差{short}积分")
    entry = PointsEntry(
        openid=openid,
        delta=delta,
        balance_after=after,
        kind=kind,
        source_key=source_key,
        created_at=now,
    )
    session.add(entry)
    session.flush()
    return entry
