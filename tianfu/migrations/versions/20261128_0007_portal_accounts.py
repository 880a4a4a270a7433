"""merchants: portal accounts and roles, staff store scopes, server-side portal sessions,
onboarding applications (one row per submitted version) and the append-only audit log

The audit log is append-only in the database too: triggers refuse UPDATE and DELETE of its rows
(and TRUNCATE on PostgreSQL). A later migration that rebuilds `audit_entries` in SQLite's batch
mode (a table copy) must create the triggers again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tianfu.orm import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSAL = "audit_entries is append-only"


def _create_audit_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{_REFUSAL}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_entries_no_change BEFORE UPDATE OR DELETE ON audit_entries "
            "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_entries_no_{event.lower()} BEFORE {event} ON audit_entries "
            f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END"
        )


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor_account_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entries_action", ["action"], unique=False)
        batch_op.create_index(
            "ix_audit_entries_actor_account_id", ["actor_account_id"], unique=False
        )
        batch_op.create_index("ix_audit_entries_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_entries_merchant_id", ["merchant_id"], unique=False)
    _create_audit_triggers()

    op.create_table(
        "portal_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "bank_admin",
                "merchant_owner",
                "merchant_staff",
                name="portal_role",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("last_login_at", UTCDateTime(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "(role = 'bank_admin' AND merchant_id IS NULL) "
            "OR (role <> 'bank_admin' AND merchant_id IS NOT NULL)",
            name=op.f("ck_portal_accounts_merchant_unless_admin"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_portal_accounts_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_portal_accounts_username")),
    )
    with op.batch_alter_table("portal_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_portal_accounts_merchant_id", ["merchant_id"], unique=False)

    op.create_table(
        "merchant_applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("business_name", sa.String(length=120), nullable=False),
        sa.Column("licence_no", sa.String(length=32), nullable=False),
        sa.Column("contact_name", sa.String(length=32), nullable=False),
        sa.Column("contact_phone", sa.String(length=20), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "rejected",
                "approved",
                name="application_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("field_reasons", sa.JSON(), nullable=False),
        sa.Column("submitted_by", sa.Integer(), nullable=True),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("reviewed_by", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_merchant_applications_category_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_merchant_applications_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by"],
            ["portal_accounts.id"],
            name=op.f("fk_merchant_applications_reviewed_by_portal_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by"],
            ["portal_accounts.id"],
            name=op.f("fk_merchant_applications_submitted_by_portal_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_applications")),
        sa.UniqueConstraint(
            "merchant_id", "version", name=op.f("uq_merchant_applications_merchant_id_version")
        ),
    )
    with op.batch_alter_table("merchant_applications", schema=None) as batch_op:
        batch_op.create_index("ix_merchant_applications_licence_no", ["licence_no"], unique=False)
        batch_op.create_index("ix_merchant_applications_merchant_id", ["merchant_id"], unique=False)
        batch_op.create_index("ix_merchant_applications_status", ["status"], unique=False)

    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["portal_accounts.id"],
            name=op.f("fk_portal_sessions_account_id_portal_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_sessions")),
    )
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_portal_sessions_account_id", ["account_id"], unique=False)
        batch_op.create_index("ix_portal_sessions_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "staff_store_scopes",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["portal_accounts.id"],
            name=op.f("fk_staff_store_scopes_account_id_portal_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_staff_store_scopes_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "store_id", name=op.f("pk_staff_store_scopes")),
    )
    with op.batch_alter_table("staff_store_scopes", schema=None) as batch_op:
        batch_op.create_index("ix_staff_store_scopes_store_id", ["store_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("staff_store_scopes", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_store_scopes_store_id")

    op.drop_table("staff_store_scopes")
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_portal_sessions_expires_at")
        batch_op.drop_index("ix_portal_sessions_account_id")

    op.drop_table("portal_sessions")
    with op.batch_alter_table("merchant_applications", schema=None) as batch_op:
        batch_op.drop_index("ix_merchant_applications_status")
        batch_op.drop_index("ix_merchant_applications_merchant_id")
        batch_op.drop_index("ix_merchant_applications_licence_no")

    op.drop_table("merchant_applications")
    with op.batch_alter_table("portal_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_portal_accounts_merchant_id")

    op.drop_table("portal_accounts")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_merchant_id")
        batch_op.drop_index("ix_audit_entries_at")
        batch_op.drop_index("ix_audit_entries_actor_account_id")
        batch_op.drop_index("ix_audit_entries_action")

    op.drop_table("audit_entries")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_entries_append_only()")
