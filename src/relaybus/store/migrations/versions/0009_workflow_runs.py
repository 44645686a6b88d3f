"""workflow runs

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 17:40:00

- ``workflow_runs``: one row per run of a workflow file (``relaybus workflow run``),
  kept by its runner: the file's ``name``, path, ``digest`` (SHA-256) and ``source``,
  the run's ``status`` (``running``, ``done``, ``failed``, ``cancelled``), the runner
  holding it (``host:pid``) and its ``heartbeat_at``, the runner's ``state`` document
  and a ``version`` that every update names and bumps (compare-and-set: two runners
  never both write a run). Listed newest first by workflow name
  (``ix_workflow_runs_name``) or by status (``ix_workflow_runs_status``).

Expand-only (a new table): older servers keep serving, so ``compatible_from`` stays.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relaybus.store.ddl import id_column, json_column

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_runs",
        id_column(),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("file", sa.Text(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("runner", sa.String(length=255), nullable=True),
        sa.Column("heartbeat_at", sa.Double(), nullable=True),
        json_column("state"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_workflow_runs_name", "workflow_runs", ["workspace", "name", "id"])
    op.create_index("ix_workflow_runs_status", "workflow_runs", ["workspace", "status"])


def downgrade() -> None:
    op.drop_index("ix_workflow_runs_status", table_name="workflow_runs")
    op.drop_index("ix_workflow_runs_name", table_name="workflow_runs")
    op.drop_table("workflow_runs")
