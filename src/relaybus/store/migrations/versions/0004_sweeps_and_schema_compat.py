"""background sweeps claimed in the database, and which code may serve the schema

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 13:00:00

``sweeps`` holds one row per background job (``sweep``, ``prune``): a replica
runs a job only after moving its ``due_at`` forward in its own transaction, so
in a cluster each run happens on exactly one replica.

``relay_meta`` holds facts about the schema itself. ``compatible_from`` is the
oldest schema revision whose code may still serve this database: an
expand-only migration (new tables, nullable columns, indexes) leaves it alone,
so replicas of the previous version keep serving, and restart, during a
rolling upgrade; a migration that older code cannot live with sets it to its
own revision. Both are new tables, safe to add while older servers serve.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.Double(), nullable=False),
        sa.Column("ran_at", sa.Double(), nullable=True),
        sa.Column("ran_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("job"),
    )
    meta = op.create_table(
        "relay_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    # Code before 0004 knows nothing of this table: it refuses any newer schema.
    op.bulk_insert(meta, [{"key": "compatible_from", "value": "0004"}])


def downgrade() -> None:
    op.drop_table("relay_meta")
    op.drop_table("sweeps")
