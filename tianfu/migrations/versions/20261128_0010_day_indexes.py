"""indexes for a day's money: orders and attempts by paid_at, refunds by succeeded_at

Reconciliation, settlement and the portal's sales page each read one Beijing day of payments
and refunds; without these they scan every order ever made.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_orders_paid_at", "orders", ["paid_at"]),
    ("ix_orders_merchant_id_paid_at", "orders", ["merchant_id", "paid_at"]),
    ("ix_payment_attempts_paid_at", "payment_attempts", ["paid_at"]),
    ("ix_refunds_succeeded_at", "refunds", ["succeeded_at"]),
)


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
