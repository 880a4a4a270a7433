"""The store change log: how every worker's in-memory spatial index learns about changes made
through any other worker (docs/architecture.md, "Scaling out").

Each change takes the next version from a one-row counter with `UPDATE … RETURNING`. The row lock
that UPDATE takes is held until the transaction commits, so versions become visible in commit
order: a poller that has seen version v has already seen every version below v. (A sequence would
not give that: a transaction holding version 10 can commit after one holding 11, and a poller that
read 11 in between would skip 10 for ever.) Store edits are rare, so serialising them is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Integer, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from tianfu.orm import Base, UTCDateTime, utcnow


class StoreChangeCounter(Base):
    __tablename__ = "store_change_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class StoreChange(Base):
    """One change: a store (`store_id`), every store of a merchant (`merchant_id`), or, with
    neither, everything (a bulk load such as the demo seed): readers then rebuild."""

    __tablename__ = "store_changes"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # No foreign keys: the log must outlive a deleted store, or readers would never drop it.
    store_id: Mapped[int | None] = mapped_column(Integer)
    merchant_id: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


COUNTER_ROW_ID = 1


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    up_to_version: int
    store_ids: frozenset[int]
    merchant_ids: frozenset[int]
    reload_everything: bool


def _next_version(session: Session) -> int:
    version: int | None = session.scalar(
        update(StoreChangeCounter)
        .where(StoreChangeCounter.id == COUNTER_ROW_ID)
        .values(version=StoreChangeCounter.version + 1)
        .returning(StoreChangeCounter.version)
    )
    if version is None:  # pragma: no cover - the migration creates the row
        raise RuntimeError("store_change_counter has no row: run `tianfu db upgrade`")
    return version


def record_store_change(session: Session, store_id: int) -> int:
    version = _next_version(session)
    session.add(StoreChange(version=version, store_id=store_id))
    session.flush()
    return version


def record_merchant_change(session: Session, merchant_id: int) -> int:
    """A merchant-wide change (approval, suspension) touches every store of that merchant."""
    version = _next_version(session)
    session.add(StoreChange(version=version, merchant_id=merchant_id))
    session.flush()
    return version


def record_bulk_change(session: Session) -> int:
    version = _next_version(session)
    session.add(StoreChange(version=version))
    session.flush()
    return version


def latest_version(session: Session) -> int:
    version: int | None = session.scalar(select(StoreChangeCounter.version))
    return version or 0


def changes_since(session: Session, version: int, *, limit: int = 10_000) -> ChangeBatch:
    rows = session.execute(
        select(StoreChange.version, StoreChange.store_id, StoreChange.merchant_id)
        .where(StoreChange.version > version)
        .order_by(StoreChange.version)
        .limit(limit)
    ).all()
    store_ids = {row.store_id for row in rows if row.store_id is not None}
    merchant_ids = {row.merchant_id for row in rows if row.merchant_id is not None}
    return ChangeBatch(
        up_to_version=rows[-1].version if rows else version,
        store_ids=frozenset(store_ids),
        merchant_ids=frozenset(merchant_ids),
        reload_everything=any(row.store_id is None and row.merchant_id is None for row in rows),
    )
