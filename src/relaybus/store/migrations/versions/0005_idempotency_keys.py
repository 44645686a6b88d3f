"""idempotency keys of sends

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:30:00

``idempotency_keys`` holds one row per (workspace, sender, key) of a send made
with an ``Idempotency-Key``: the request's SHA-256 and the ids of the messages
it stored. Its primary key makes a retried send return the original messages
on every replica, racing retries included. A new table, expand-only: older
servers keep serving (``compatible_from`` stays).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relaybus.store.ddl import json_column

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        json_column("message_ids"),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("workspace", "sender", "key"),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["workspace", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
