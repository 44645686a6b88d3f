"""pairs, approval modes, and leases that remember their length

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 11:20:00

- ``pairs``: a focused two-agent session. ``inviter`` asks ``invitee`` (status
  ``pending`` until ``expires_at``); the invitee accepts (``active``) or rejects; either
  side hangs up (``ended``); an invite nobody answered ``expired``; a pair one of whose
  agents stayed offline past the grace period ``ended`` with that reason. Pair messages
  are one thread, rooted at ``thread_id``. One pending or active pair per agent: the
  store's write lock (which every write transaction takes) serialises the check.
- ``agents.approval``: the agent's approval mode (``open``, ``guarded``, ``read-only``);
  NULL reads as ``open``.
- ``tasks.lease_seconds``: the length of the lease the holder took, so that a renewal
  without a length (a runtime renewing what its agent holds) keeps it.

Expand-only (a new table, new nullable columns): older servers keep serving, so
``compatible_from`` stays.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relaybus.store.ddl import id_column

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pairs",
        id_column(),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("inviter", sa.String(length=128), nullable=False),
        sa.Column("invitee", sa.String(length=128), nullable=False),
        sa.Column("objective", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("accepted_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("ended_by", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_pairs_inviter", "pairs", ["workspace", "inviter", "status"])
    op.create_index("ix_pairs_invitee", "pairs", ["workspace", "invitee", "status"])
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("approval", sa.String(length=16), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("lease_seconds", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("lease_seconds")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("approval")
    op.drop_index("ix_pairs_invitee", table_name="pairs")
    op.drop_index("ix_pairs_inviter", table_name="pairs")
    op.drop_table("pairs")
