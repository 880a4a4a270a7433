"""cinema: halls with their seat maps, films, showtimes, seat holds and tickets

`seat_holds` is the double-booking guard: one row per held or sold seat of a showtime under
UNIQUE (showtime_id, seat_id). `holds` allows one live hold per user and showtime (a partial
unique index on status = 'held').

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tianfu.orm import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "films",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("runtime_min", sa.Integer(), nullable=False),
        sa.Column("rating", sa.String(length=16), nullable=False),
        sa.Column("external_ref", sa.String(length=64), nullable=True),
        sa.CheckConstraint("runtime_min > 0", name=op.f("ck_films_runtime_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_films")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_films_external_ref")),
    )
    op.create_table(
        "halls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("layout", sa.JSON(), nullable=False),
        sa.Column("seat_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_halls_store_id_stores"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_halls")),
        sa.UniqueConstraint("store_id", "name", name=op.f("uq_halls_store_id_name")),
    )
    with op.batch_alter_table("halls", schema=None) as batch_op:
        batch_op.create_index("ix_halls_store_id", ["store_id"], unique=False)

    op.create_table(
        "showtimes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hall_id", sa.Integer(), nullable=False),
        sa.Column("film_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("sales_close_at", UTCDateTime(), nullable=False),
        sa.Column("prices_fen", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "scheduled",
                "cancelled",
                name="showtime_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_showtimes_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["film_id"], ["films.id"], name=op.f("fk_showtimes_film_id_films"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["hall_id"], ["halls.id"], name=op.f("fk_showtimes_hall_id_halls"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_showtimes")),
        sa.UniqueConstraint("hall_id", "starts_at", name=op.f("uq_showtimes_hall_id_starts_at")),
    )
    with op.batch_alter_table("showtimes", schema=None) as batch_op:
        batch_op.create_index("ix_showtimes_film_id", ["film_id"], unique=False)
        batch_op.create_index("ix_showtimes_starts_at", ["starts_at"], unique=False)

    op.create_table(
        "holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("showtime_id", sa.Integer(), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("seats", sa.JSON(), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "held",
                "converted",
                "released",
                "expired",
                name="hold_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("order_no", sa.String(length=24), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("amount_fen >= 0", name=op.f("ck_holds_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["showtime_id"],
            ["showtimes.id"],
            name=op.f("fk_holds_showtime_id_showtimes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
        sa.UniqueConstraint("order_no", name=op.f("uq_holds_order_no")),
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index("ix_holds_status_expires_at", ["status", "expires_at"], unique=False)
        batch_op.create_index(
            "uq_holds_live_showtime_id_openid",
            ["showtime_id", "openid"],
            unique=True,
            sqlite_where=sa.text("status = 'held'"),
            postgresql_where=sa.text("status = 'held'"),
        )

    op.create_table(
        "seat_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("showtime_id", sa.Integer(), nullable=False),
        sa.Column("seat_id", sa.String(length=8), nullable=False),
        sa.Column("hold_id", sa.Integer(), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "held",
                "sold",
                name="seat_hold_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "(status = 'held' AND expires_at IS NOT NULL) "
            "OR (status = 'sold' AND expires_at IS NULL)",
            name=op.f("ck_seat_holds_expiry_iff_held"),
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["holds.id"], name=op.f("fk_seat_holds_hold_id_holds"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_seat_holds_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["showtime_id"],
            ["showtimes.id"],
            name=op.f("fk_seat_holds_showtime_id_showtimes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seat_holds")),
        sa.UniqueConstraint(
            "showtime_id", "seat_id", name=op.f("uq_seat_holds_showtime_id_seat_id")
        ),
    )
    with op.batch_alter_table("seat_holds", schema=None) as batch_op:
        batch_op.create_index("ix_seat_holds_hold_id", ["hold_id"], unique=False)

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("showtime_id", sa.Integer(), nullable=False),
        sa.Column("seat_id", sa.String(length=8), nullable=False),
        sa.Column("hold_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "valid",
                "used",
                name="ticket_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("used_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["holds.id"], name=op.f("fk_tickets_hold_id_holds"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_tickets_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["showtime_id"],
            ["showtimes.id"],
            name=op.f("fk_tickets_showtime_id_showtimes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("code", name=op.f("uq_tickets_code")),
        sa.UniqueConstraint("order_id", "seat_id", name=op.f("uq_tickets_order_id_seat_id")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_openid", ["openid"], unique=False)
        batch_op.create_index("ix_tickets_showtime_id", ["showtime_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_showtime_id")
        batch_op.drop_index("ix_tickets_openid")

    op.drop_table("tickets")
    with op.batch_alter_table("seat_holds", schema=None) as batch_op:
        batch_op.drop_index("ix_seat_holds_hold_id")

    op.drop_table("seat_holds")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_holds_live_showtime_id_openid",
            sqlite_where=sa.text("status = 'held'"),
            postgresql_where=sa.text("status = 'held'"),
        )
        batch_op.drop_index("ix_holds_status_expires_at")

    op.drop_table("holds")
    with op.batch_alter_table("showtimes", schema=None) as batch_op:
        batch_op.drop_index("ix_showtimes_starts_at")
        batch_op.drop_index("ix_showtimes_film_id")

    op.drop_table("showtimes")
    with op.batch_alter_table("halls", schema=None) as batch_op:
        batch_op.drop_index("ix_halls_store_id")

    op.drop_table("halls")
    op.drop_table("films")
