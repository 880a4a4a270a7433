"""The audit log: entries carry who, when, from where and what; filters; and no way to change
or delete one, neither through the ORM nor with SQL (the triggers of migration 0007)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from merchants import audit
from merchants.audit import Actor, AuditQuery
from merchants.models import AuditEntry, AuditEntryImmutableError
from tests.builders import make_merchant, make_store
from tests.merchants.portal_support import make_admin, make_owner
from tianfu.orm import utcnow


def test_an_entry_names_actor_address_action_target_and_merchant(db_session: Session) -> None:
    admin = make_admin(db_session)
    store = make_store(db_session)
    now = utcnow()
    entry = audit.record(
        db_session, actor=Actor.of(admin, ip="203.0.113.7"), action="store.moved",
        target=store, detail={"from": [30.1, 104.1]}, now=now,
    )  # fmt: skip
    assert (entry.actor_account_id, entry.actor_label, entry.ip) == (
        admin.id, admin.username, "203.0.113.7",
    )  # fmt: skip
    assert (entry.action, entry.target_type, entry.target_id) == (
        "store.moved",
        "stores",
        str(store.id),
    )
    assert entry.merchant_id == store.merchant_id  # taken from the target
    assert (entry.at, entry.detail) == (now, {"from": [30.1, 104.1]})
    merchant = make_merchant(db_session, name="另一家")
    assert audit.record(db_session, actor=Actor(None, "cli:ops"), action="merchant.suspended",
                        target=merchant).merchant_id == merchant.id  # fmt: skip


def test_actions_are_dotted_lower_case_names(db_session: Session) -> None:
    admin = make_admin(db_session)
    for bad in ("Merchant Approved", "merchant-approved", "x" * 49, ""):
        with pytest.raises(ValueError, match="dotted"):
            audit.record(db_session, actor=Actor.of(admin), action=bad, target=admin)


def test_filters_by_actor_merchant_action_and_time(db_session: Session) -> None:
    admin, owner = make_admin(db_session), make_owner(db_session)
    merchant_id = owner.merchant_id
    start = utcnow() - timedelta(days=3)
    rows = [
        audit.record(db_session, actor=Actor.of(admin), action="merchant.suspended",
                     target=owner, now=start),
        audit.record(db_session, actor=Actor.of(owner), action="staff.created", target=owner,
                     now=start + timedelta(days=1)),
        audit.record(db_session, actor=Actor.of(admin), action="merchant.reinstated",
                     target=admin, merchant_id=merchant_id, now=start + timedelta(days=2)),
    ]  # fmt: skip
    ids = {row.id for row in rows}

    def found(**filters: object) -> list[int]:
        entries = audit.search(db_session, AuditQuery(**filters))  # type: ignore[arg-type]
        return [entry.id for entry in entries if entry.id in ids]

    assert found() == [rows[2].id, rows[1].id, rows[0].id]  # newest first
    assert found(actor=admin.username) == [rows[2].id, rows[0].id]
    assert found(merchant_id=merchant_id) == [rows[2].id, rows[1].id, rows[0].id]
    assert found(action="staff.created") == [rows[1].id]
    assert found(since=start + timedelta(hours=1), until=start + timedelta(days=2)) == [rows[1].id]
    older = audit.search(db_session, AuditQuery(merchant_id=merchant_id), before_id=rows[2].id)
    assert [entry.id for entry in older] == [rows[1].id, rows[0].id]


def test_the_orm_refuses_to_change_or_delete_an_entry(db_session: Session) -> None:
    admin = make_admin(db_session)
    entry = audit.record(db_session, actor=Actor.of(admin), action="login.succeeded", target=admin)
    entry.actor_label = "somebody else"
    with pytest.raises(AuditEntryImmutableError):
        db_session.flush()
    db_session.rollback()


def test_the_orm_refuses_to_delete_an_entry(db_session: Session) -> None:
    admin = make_admin(db_session)
    entry = audit.record(db_session, actor=Actor.of(admin), action="login.succeeded", target=admin)
    db_session.delete(entry)
    with pytest.raises(AuditEntryImmutableError):
        db_session.flush()
    db_session.rollback()


@pytest.mark.parametrize(
    "statement",
    [
        update(AuditEntry).values(actor_label="somebody else"),
        delete(AuditEntry),
        text("UPDATE audit_entries SET ip = '0.0.0.0'"),
        text("DELETE FROM audit_entries"),
    ],
    ids=["orm-update", "orm-delete", "sql-update", "sql-delete"],
)
def test_the_database_refuses_to_change_or_delete_entries(
    db_session: Session, statement: object
) -> None:
    admin = make_admin(db_session)
    audit.record(db_session, actor=Actor.of(admin), action="login.succeeded", target=admin)
    with pytest.raises(DBAPIError, match="append-only"):
        db_session.execute(statement.execution_options(synchronize_session=False))  # type: ignore[attr-defined]
