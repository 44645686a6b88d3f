"""deliveries laid out for fan-out: in message order, one agent-ordered index each

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 11:00:00

A broadcast writes one delivery per recipient. Each b-tree ordered by agent takes
those rows at as many places as there are recipients (a page each, written to the
WAL at commit), and ``deliveries`` had three of them: its primary key
(workspace, agent_id, message_id), ``ix_deliveries_unread`` and ``ix_deliveries_queued``,
plus ``ix_deliveries_message`` and, on SQLite, the rowid table. Now:

- the primary key is (message_id, workspace, agent_id): the same rows are unique, a
  send's deliveries are appended side by side, and a message's recipients are a range
  of it (``ix_deliveries_message`` goes). On SQLite the table is ``WITHOUT ROWID``,
  so the key is the table (rebuilt here, rows copied);
- ``ix_deliveries_read`` (workspace, agent_id, message_id, read_at, delivered_at)
  WHERE read_at IS NOT NULL joins ``ix_deliveries_unread``: a delivery is in exactly
  one of the two, so a new one is written into one agent-ordered index, and a whole
  inbox is the two merged;
- ``ix_deliveries_queued`` goes: a queued delivery is unread (read implies delivered),
  so the unread index finds the queued ones;
- ``ix_deliveries_unread`` also holds ``read_at`` and ``delivered_at``, as the read one
  does: the unread count and an inbox page read the indexes alone (without them SQLite
  looked each entry up in the table, by the new key now, no longer by rowid).

Older code reads and writes the same columns and keys: ``compatible_from`` stays.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relaybus.store.ddl import partial

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = "workspace, agent_id, message_id, read_at, delivered_at, via"
_BY_AGENT = ["workspace", "agent_id", "message_id"]
#: The columns of ``ix_deliveries_unread`` and ``ix_deliveries_read`` from this revision on.
_UNREAD = _READ = [*_BY_AGENT, "read_at", "delivered_at"]


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("read_at", sa.Double(), nullable=True),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.Column("via", sa.String(length=16), nullable=True),
    ]


def _rebuild_sqlite(key: list[str], with_rowid: bool) -> None:
    # SQLite cannot change a table's key or rowid-ness in place: copy into a new table.
    op.create_table(
        "_deliveries_new",
        *_columns(),
        sa.PrimaryKeyConstraint(*key),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(f"INSERT INTO _deliveries_new ({_COLUMNS}) SELECT {_COLUMNS} FROM deliveries")
    op.drop_table("deliveries")  # its indexes go with it
    op.rename_table("_deliveries_new", "deliveries")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(["message_id", "workspace", "agent_id"], with_rowid=False)
    else:
        op.drop_index("ix_deliveries_queued", table_name="deliveries")
        op.drop_index("ix_deliveries_message", table_name="deliveries")
        op.drop_index("ix_deliveries_unread", table_name="deliveries")
        op.drop_constraint("deliveries_pkey", "deliveries", type_="primary")
        op.create_primary_key(
            "deliveries_pkey", "deliveries", ["message_id", "workspace", "agent_id"]
        )
    op.create_index("ix_deliveries_unread", "deliveries", _UNREAD, **partial("read_at IS NULL"))
    op.create_index("ix_deliveries_read", "deliveries", _READ, **partial("read_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_deliveries_read", table_name="deliveries")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(_BY_AGENT, with_rowid=True)
    else:
        op.drop_index("ix_deliveries_unread", table_name="deliveries")
        op.drop_constraint("deliveries_pkey", "deliveries", type_="primary")
        op.create_primary_key("deliveries_pkey", "deliveries", _BY_AGENT)
    op.create_index("ix_deliveries_unread", "deliveries", _BY_AGENT, **partial("read_at IS NULL"))
    op.create_index("ix_deliveries_message", "deliveries", ["message_id"])
    op.create_index(
        "ix_deliveries_queued", "deliveries", _BY_AGENT, **partial("delivered_at IS NULL")
    )
