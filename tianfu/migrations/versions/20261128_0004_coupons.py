"""coupons: offers with their stock, budget and store scope; per-user claim counters; claims;
bank points accounts and ledger

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

from tianfu.orm import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


_offer_kind = _enum(
    "offer_kind", "fixed_off", "threshold_off", "percent_off", "gift", "points_exchange"
)
_offer_status = _enum(
    "offer_status", "draft", "pending_review", "active", "paused", "ended", "expired"
)
_claim_status = _enum("claim_status", "claimed", "redeemed", "expired", "void")
_points_kind = _enum("points_kind", "earn", "spend", "reverse", "exchange")

# The CHECKs that keep stock and budget honest whatever code writes the row.
_OFFER_CHECKS = {
    "amounts_not_negative": (
        "amount_off_fen >= 0 AND threshold_fen >= 0 AND gift_value_fen >= 0 "
        "AND points_cost >= 0 AND min_spend_fen >= 0 AND (cap_fen IS NULL OR cap_fen >= 0) "
        "AND max_benefit_fen >= 0 AND budget_fen >= 0 AND claimed_fen >= 0 "
        "AND total_stock >= 0 AND claimed_count >= 0 AND day_claimed >= 0 "
        "AND points_per_yuan >= 0"
    ),
    "stock_not_oversold": "claimed_count <= total_stock",
    "budget_not_overspent": "claimed_fen <= budget_fen",
    "discount_permille_range": "discount_permille BETWEEN 0 AND 1000",
    "per_user_limit_positive": "per_user_limit >= 1",
    "per_day_limit_positive": "per_day_limit IS NULL OR per_day_limit >= 1",
    "weekdays_mask_range": "weekdays_mask IS NULL OR weekdays_mask BETWEEN 1 AND 127",
    "claim_radius_positive": "claim_radius_m IS NULL OR claim_radius_m > 0",
    "valid_days_positive": "valid_days_after_claim IS NULL OR valid_days_after_claim >= 1",
    "validity_ordered": "valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until",
}


def upgrade() -> None:
    _create_points()
    _create_offers()
    _create_claims()


def _create_points() -> None:
    op.create_table(
        "points_accounts",
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_points_accounts_balance_not_negative")),
        sa.PrimaryKeyConstraint("openid", name=op.f("pk_points_accounts")),
    )
    op.create_table(
        "points_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("kind", _points_kind, nullable=False),
        sa.Column("source_key", sa.String(length=160), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "balance_after >= 0", name=op.f("ck_points_entries_balance_after_not_negative")
        ),
        sa.CheckConstraint("delta <> 0", name=op.f("ck_points_entries_delta_not_zero")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_entries")),
        sa.UniqueConstraint("source_key", name=op.f("uq_points_entries_source_key")),
    )
    op.create_index("ix_points_entries_openid_id", "points_entries", ["openid", "id"])


def _create_offers() -> None:
    # create_geospatial_table registers the area column with SpatiaLite (RecoverGeometryColumn);
    # geoalchemy2 adds it to `op` at runtime, hence the ignore.
    op.create_geospatial_table(  # type: ignore[attr-defined]
        "offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("kind", _offer_kind, nullable=False),
        sa.Column("title_zh", sa.String(length=60), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", _offer_status, nullable=False),
        sa.Column("amount_off_fen", sa.Integer(), nullable=False),
        sa.Column("threshold_fen", sa.Integer(), nullable=False),
        sa.Column("discount_permille", sa.Integer(), nullable=False),
        sa.Column("cap_fen", sa.Integer(), nullable=True),
        sa.Column("gift_value_fen", sa.Integer(), nullable=False),
        sa.Column("points_cost", sa.Integer(), nullable=False),
        sa.Column("min_spend_fen", sa.Integer(), nullable=False),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("weekdays_mask", sa.Integer(), nullable=True),
        sa.Column("time_windows", sa.JSON(), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=True),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.Column("valid_days_after_claim", sa.Integer(), nullable=True),
        sa.Column("new_customers_only", sa.Boolean(), nullable=False),
        sa.Column("total_stock", sa.Integer(), nullable=False),
        sa.Column("budget_fen", sa.Integer(), nullable=False),
        sa.Column("max_benefit_fen", sa.Integer(), nullable=False),
        sa.Column("claimed_count", sa.Integer(), nullable=False),
        sa.Column("claimed_fen", sa.Integer(), nullable=False),
        sa.Column("per_user_limit", sa.Integer(), nullable=False),
        sa.Column("per_day_limit", sa.Integer(), nullable=True),
        sa.Column("day_key", sa.Integer(), nullable=False),
        sa.Column("day_claimed", sa.Integer(), nullable=False),
        sa.Column("terms_version", sa.Integer(), nullable=False),
        sa.Column("claim_radius_m", sa.Integer(), nullable=True),
        sa.Column(
            "claim_area_gcj02",
            Geometry(geometry_type="POLYGON", srid=4326, spatial_index=False),
            nullable=True,
        ),
        sa.Column("points_per_yuan", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("edited_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("review_note", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        *[
            sa.CheckConstraint(text, name=op.f(f"ck_offers_{name}"))
            for name, text in _OFFER_CHECKS.items()
        ],
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_offers_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
    )
    op.create_index("ix_offers_merchant_id_status", "offers", ["merchant_id", "status"])

    op.create_table(
        "offer_stores",
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["offers.id"],
            name=op.f("fk_offer_stores_offer_id_offers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_offer_stores_store_id_stores"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("offer_id", "store_id", name=op.f("pk_offer_stores")),
    )
    op.create_index(op.f("ix_offer_stores_store_id"), "offer_stores", ["store_id"])

    op.create_table(
        "offer_user_counts",
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.CheckConstraint("claimed >= 0", name=op.f("ck_offer_user_counts_claimed_not_negative")),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["offers.id"],
            name=op.f("fk_offer_user_counts_offer_id_offers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("offer_id", "openid", name=op.f("pk_offer_user_counts")),
    )


def _create_claims() -> None:
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("client_request_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("status", _claim_status, nullable=False),
        sa.Column("reserved_fen", sa.Integer(), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("redeemed_at", UTCDateTime(), nullable=True),
        sa.Column("redeemed_store_id", sa.Integer(), nullable=True),
        sa.Column("order_ref", sa.String(length=64), nullable=True),
        sa.Column("restore_count", sa.Integer(), nullable=False),
        sa.Column("restored_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("reserved_fen >= 0", name=op.f("ck_claims_reserved_not_negative")),
        sa.CheckConstraint(
            "restore_count BETWEEN 0 AND 1", name=op.f("ck_claims_restored_at_most_once")
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["offers.id"],
            name=op.f("fk_claims_offer_id_offers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_store_id"],
            ["stores.id"],
            name=op.f("fk_claims_redeemed_store_id_stores"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        sa.UniqueConstraint("code", name=op.f("uq_claims_code")),
        sa.UniqueConstraint(
            "openid", "client_request_id", name=op.f("uq_claims_openid_client_request_id")
        ),
    )
    op.create_index("ix_claims_offer_id_status", "claims", ["offer_id", "status"])
    op.create_index("ix_claims_openid_claimed_at", "claims", ["openid", "claimed_at"])
    op.create_index("ix_claims_status_expires_at", "claims", ["status", "expires_at"])


def downgrade() -> None:
    # Children before parents: SQLite's DROP TABLE checks foreign keys row by row.
    op.drop_index("ix_claims_status_expires_at", table_name="claims")
    op.drop_index("ix_claims_openid_claimed_at", table_name="claims")
    op.drop_index("ix_claims_offer_id_status", table_name="claims")
    op.drop_table("claims")
    op.drop_table("offer_user_counts")
    op.drop_index(op.f("ix_offer_stores_store_id"), table_name="offer_stores")
    op.drop_table("offer_stores")
    op.drop_index("ix_offers_merchant_id_status", table_name="offers")
    op.drop_geospatial_table("offers")  # type: ignore[attr-defined]
    op.drop_index("ix_points_entries_openid_id", table_name="points_entries")
    op.drop_table("points_entries")
    op.drop_table("points_accounts")
