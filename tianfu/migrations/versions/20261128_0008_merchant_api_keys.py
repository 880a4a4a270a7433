"""merchants: API keys for the merchant REST API (prefix shown, SHA-256 of the secret stored,
read or write access, revocable)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tianfu.orm import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merchant_api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "access",
            sa.Enum(
                "read",
                "write",
                name="api_key_access",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["portal_accounts.id"],
            name=op.f("fk_merchant_api_keys_created_by_portal_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_merchant_api_keys_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_merchant_api_keys_prefix")),
    )
    with op.batch_alter_table("merchant_api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_merchant_api_keys_merchant_id", ["merchant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("merchant_api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_merchant_api_keys_merchant_id")

    op.drop_table("merchant_api_keys")
