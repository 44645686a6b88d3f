"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 01:33:34.648237
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relaybus.store.ddl import id_column, json_column, partial

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "agents",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        json_column("tags"),
        json_column("capabilities"),
        json_column("channels"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("cwd", sa.Text(), nullable=True),
        json_column("meta"),
        sa.Column("instance_id", sa.String(length=128), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("registered_at", sa.Double(), nullable=False),
        sa.Column("last_seen_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("workspace", "id"),
    )
    op.create_table(
        "deliveries",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("read_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("workspace", "agent_id", "message_id"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_message", ["message_id"], unique=False)
        batch_op.create_index(
            "ix_deliveries_unread",
            ["workspace", "agent_id", "message_id"],
            unique=False,
            **partial("read_at IS NULL"),
        )

    op.create_table(
        "events",
        id_column(),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=True),
        json_column("data"),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_created", ["created_at"], unique=False)
        batch_op.create_index("ix_events_workspace", ["workspace", "id"], unique=False)

    op.create_table(
        "messages",
        id_column(),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("reply_to", sa.BigInteger(), nullable=True),
        sa.Column("thread_id", sa.BigInteger(), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=False),
        json_column("meta"),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_created", ["created_at"], unique=False)
        batch_op.create_index("ix_messages_thread", ["workspace", "thread_id"], unique=False)

    op.create_table(
        "task_events",
        id_column(),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=True),
        sa.Column("progress", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.create_index("ix_task_events_task", ["task_id"], unique=False)

    op.create_table(
        "tasks",
        id_column(),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("creator", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assignee", sa.String(length=128), nullable=True),
        sa.Column("assignee_epoch", sa.Integer(), nullable=True),
        sa.Column("lease_expires_at", sa.Double(), nullable=True),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("progress_note", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("occurrence_count", sa.Integer(), nullable=False),
        json_column("meta"),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_status", ["workspace", "status"], unique=False)
        batch_op.create_index(
            "ux_tasks_dedupe",
            ["workspace", "dedupe_key"],
            unique=True,
            **partial("dedupe_key IS NOT NULL"),
        )


def downgrade() -> None:

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_tasks_dedupe",
            **partial("dedupe_key IS NOT NULL"),
        )
        batch_op.drop_index("ix_tasks_status")

    op.drop_table("tasks")
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.drop_index("ix_task_events_task")

    op.drop_table("task_events")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_thread")
        batch_op.drop_index("ix_messages_created")

    op.drop_table("messages")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_workspace")
        batch_op.drop_index("ix_events_created")

    op.drop_table("events")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_deliveries_unread",
            **partial("read_at IS NULL"),
        )
        batch_op.drop_index("ix_deliveries_message")

    op.drop_table("deliveries")
    op.drop_table("agents")
