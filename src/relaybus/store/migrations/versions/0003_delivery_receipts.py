"""delivery receipts: when and how each delivery reached its agent

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 10:00:00

Adds ``deliveries.delivered_at`` and ``deliveries.via`` (queued → delivered →
read) and a partial index over the queued ones, which the stuck-delivery
count reads. Deliveries already read count as delivered at their read time
through an inbox read. Adding nullable columns and an index is safe while
older servers keep serving: they never read or write the new columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relaybus.store.ddl import partial

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("delivered_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("via", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE deliveries SET delivered_at = read_at, via = 'inbox' WHERE read_at IS NOT NULL"
    )
    op.create_index(
        "ix_deliveries_queued",
        "deliveries",
        ["workspace", "agent_id", "message_id"],
        **partial("delivered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_queued", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("via")
        batch.drop_column("delivered_at")
