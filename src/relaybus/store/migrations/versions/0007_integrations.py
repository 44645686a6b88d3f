"""integrations, the callback outbox, and tasks that external systems raise

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 07:10:00

- ``integrations``: one row per external system of a workspace (monitoring, CI, a
  ticket desk): its scopes, the targets and channels it may address, its callback URL
  and signing secret, its rate limit. Its bearer token is a ``tokens`` row of kind
  ``integration``.
- ``callbacks``: the outbox. A task change that an integration hears about writes a row
  here in the same transaction; the servers' sweepers send it, retry it and, after the
  last attempt, mark it dead. ``callback_attempts`` keeps every attempt.
- ``rate_counts``: each integration's events of the current minute, counted in the
  database so that every replica takes from one budget.
- ``tasks`` gains ``integration``, ``source``, ``external_url``, ``priority``,
  ``last_seen_at`` and ``notified_at`` (when a repeat last told anyone). A dedupe key
  is unique among the active tasks of one integration (``ux_tasks_dedupe`` becomes
  ``ux_tasks_active_dedupe``): once the task is closed, the same key opens a new one.

Expand-only (new tables, new nullable columns, an index made narrower): older servers
keep serving, so ``compatible_from`` stays.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relaybus.store.ddl import id_column, json_column, partial

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ACTIVE = "dedupe_key IS NOT NULL AND status IN ('open', 'claimed', 'in_progress', 'blocked')"


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        json_column("scopes"),
        json_column("targets"),
        json_column("channels"),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("secret", sa.String(length=128), nullable=True),
        sa.Column("rate_limit", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("workspace", "name"),
    )
    op.create_table(
        "callbacks",
        id_column(),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("integration", sa.String(length=128), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=48), nullable=False),
        json_column("payload"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Double(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_callbacks_due", "callbacks", ["next_attempt_at"], **partial("status = 'pending'")
    )
    op.create_index("ix_callbacks_integration", "callbacks", ["workspace", "integration", "id"])
    op.create_table(
        "callback_attempts",
        id_column(),
        sa.Column("callback_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("runner", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("latency", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_callback_attempts_callback", "callback_attempts", ["callback_id"])
    op.create_table(
        "rate_counts",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("window_start", sa.Double(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("workspace", "subject"),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("integration", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("source", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("external_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("priority", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("notified_at", sa.Double(), nullable=True))
    op.drop_index("ux_tasks_dedupe", table_name="tasks", **partial("dedupe_key IS NOT NULL"))
    op.create_index(
        "ux_tasks_active_dedupe",
        "tasks",
        ["workspace", "integration", "dedupe_key"],
        unique=True,
        **partial(_ACTIVE),
    )


def downgrade() -> None:
    op.drop_index("ux_tasks_active_dedupe", table_name="tasks", **partial(_ACTIVE))
    op.create_index(
        "ux_tasks_dedupe",
        "tasks",
        ["workspace", "dedupe_key"],
        unique=True,
        **partial("dedupe_key IS NOT NULL"),
    )
    with op.batch_alter_table("tasks") as batch:
        for column in (
            "notified_at",
            "last_seen_at",
            "priority",
            "external_url",
            "source",
            "integration",
        ):
            batch.drop_column(column)
    op.drop_table("rate_counts")
    op.drop_index("ix_callback_attempts_callback", table_name="callback_attempts")
    op.drop_table("callback_attempts")
    op.drop_index("ix_callbacks_integration", table_name="callbacks")
    op.drop_index("ix_callbacks_due", table_name="callbacks", **partial("status = 'pending'"))
    op.drop_table("callbacks")
    op.drop_table("integrations")
