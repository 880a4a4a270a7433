"""wechat: inbound push log (dedup + stored replies), user locations, shared credentials,
template message sends

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tianfu.orm import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wechat_credentials",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("refreshing_until", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_wechat_credentials")),
    )
    op.create_table(
        "wechat_inbound",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("msg_type", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("reply_xml", sa.Text(), nullable=False),
        sa.Column(
            "delivery",
            sa.Enum(
                "passive",
                "customer_service",
                "none",
                name="reply_delivery",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_inbound")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_wechat_inbound_dedup_key")),
    )
    with op.batch_alter_table("wechat_inbound", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wechat_inbound_openid"), ["openid"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_wechat_inbound_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "wechat_template_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("template_id", sa.String(length=64), nullable=False),
        sa.Column("client_msg_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("wechat_msgid", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("error", sa.String(length=255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_template_sends")),
        sa.UniqueConstraint("client_msg_id", name=op.f("uq_wechat_template_sends_client_msg_id")),
    )
    with op.batch_alter_table("wechat_template_sends", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wechat_template_sends_openid"), ["openid"], unique=False
        )
        batch_op.create_index(
            "ix_wechat_template_sends_wechat_msgid", ["wechat_msgid"], unique=True
        )

    op.create_table(
        "wechat_user_locations",
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("lat_gcj02", sa.Float(), nullable=False),
        sa.Column("lng_gcj02", sa.Float(), nullable=False),
        sa.Column("precision_m", sa.Float(), nullable=True),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column(
            "source",
            sa.Enum(
                "message",
                "event",
                "h5",
                name="location_source",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reported_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("openid", name=op.f("pk_wechat_user_locations")),
    )


def downgrade() -> None:
    op.drop_table("wechat_user_locations")
    with op.batch_alter_table("wechat_template_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_wechat_template_sends_wechat_msgid")
        batch_op.drop_index(batch_op.f("ix_wechat_template_sends_openid"))

    op.drop_table("wechat_template_sends")
    with op.batch_alter_table("wechat_inbound", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wechat_inbound_received_at"))
        batch_op.drop_index(batch_op.f("ix_wechat_inbound_openid"))

    op.drop_table("wechat_inbound")
    op.drop_table("wechat_credentials")
