"""Migrations that move rows: what they keep, up and down."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext

from relaybus.store import migrate

ROWS = [
    # workspace, agent_id, message_id, read_at, delivered_at, via
    ("default", "bob", 1, None, None, None),
    ("default", "carol", 1, 10.5, 10.5, "inbox"),
    ("default", "bob", 2, None, 9.25, "hook"),
    ("team", "bob", 2, None, None, None),
]
COLUMNS = "workspace, agent_id, message_id, read_at, delivered_at, via"


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            config = migrate.alembic_config()
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
            assert MigrationContext.configure(conn).get_current_revision() == revision
    finally:
        engine.dispose()


def _deliveries(url: str) -> tuple[list[tuple[object, ...]], set[str], list[str]]:
    # The rows, the index names and the primary key's columns in key order.
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.exec_driver_sql(f"SELECT {COLUMNS} FROM deliveries")]
            inspector = sa.inspect(conn)
            indexes = {i["name"] for i in inspector.get_indexes("deliveries")}
            key = inspector.get_pk_constraint("deliveries")["constrained_columns"]
    finally:
        engine.dispose()
    return sorted(rows, key=repr), {i for i in indexes if i}, key


def test_deliveries_laid_out_for_fan_out_keep_every_row_up_and_down(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    _migrate(url, "0005")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO deliveries ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
            if url.startswith("sqlite")
            else f"INSERT INTO deliveries ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
            ROWS,
        )
    engine.dispose()
    expected = sorted(ROWS, key=repr)
    _migrate(url, "0006")
    rows, indexes, key = _deliveries(url)
    assert rows == expected
    assert indexes == {"ix_deliveries_unread", "ix_deliveries_read"}
    assert key == ["message_id", "workspace", "agent_id"]
    _migrate(url, "0005", down=True)
    rows, indexes, key = _deliveries(url)
    assert rows == expected
    assert indexes == {"ix_deliveries_unread", "ix_deliveries_message", "ix_deliveries_queued"}
    assert key == ["workspace", "agent_id", "message_id"]
    _migrate(url, "0006")
    assert _deliveries(url)[0] == expected
