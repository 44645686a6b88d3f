"""SQLite transactions begun and ended on the driver (``store/engine.py``,
:class:`~relaybus.store.engine.DriverTransaction`) behave as SQLAlchemy's own would.

The store relies on how SQLAlchemy treats a transaction it did not begin (see the comment
above ``DriverTransaction``); these tests fail if a SQLAlchemy release changes that: a Core
statement and a raw one share the driver's transaction, nothing is visible to another
connection before the commit, an exception rolls both back, and the connection is left
with no transaction open, ready for the next write.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from relaybus.store import Store
from relaybus.store.engine import driver
from relaybus.store.schema import sweeps


def jobs(store: Store) -> list[str]:
    """The ``sweeps`` rows another connection sees (a read transaction of its own)."""
    with store.read() as conn:
        return list(conn.execute(sa.select(sweeps.c.job).order_by(sweeps.c.job)).scalars())


def write_both_ways(conn: Connection, suffix: str) -> None:
    """One row through Core (SQLAlchemy autobegins) and one straight on the driver."""
    conn.execute(sweeps.insert().values(job=f"core{suffix}", due_at=1.0))
    driver(conn).execute("INSERT INTO sweeps (job, due_at) VALUES (?, 2.0)", (f"raw{suffix}",))


def test_core_and_raw_writes_share_one_transaction_seen_only_after_commit(
    sqlite_store: Store,
) -> None:
    with sqlite_store.write() as conn:
        write_both_ways(conn, "")
        assert conn.in_transaction()  # Core autobegan inside the driver's transaction
        assert driver(conn).in_transaction
        assert conn.execute(sa.select(sa.func.count()).select_from(sweeps)).scalar() == 2
        assert jobs(sqlite_store) == []
    assert jobs(sqlite_store) == ["core", "raw"]
    assert not conn.in_transaction()
    assert not driver(conn).in_transaction


def test_an_exception_rolls_back_core_and_raw_writes_and_leaves_no_transaction_open(
    sqlite_store: Store,
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), sqlite_store.write() as conn:
        write_both_ways(conn, "")
        raise Boom
    assert not conn.in_transaction()
    assert not driver(conn).in_transaction
    assert jobs(sqlite_store) == []
    with sqlite_store.write() as again:  # the writer is reusable after a rollback
        assert again is conn
        write_both_ways(again, "2")
    assert jobs(sqlite_store) == ["core2", "raw2"]


def test_a_transaction_with_only_raw_statements_commits_on_the_driver(
    sqlite_store: Store,
) -> None:
    with sqlite_store.write() as conn:
        driver(conn).execute("INSERT INTO sweeps (job, due_at) VALUES ('raw', 1.0)")
        assert not conn.in_transaction()  # SQLAlchemy never saw it
    assert not driver(conn).in_transaction
    assert jobs(sqlite_store) == ["raw"]


def test_a_write_takes_the_write_lock_before_its_first_statement(
    sqlite_store: Store, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "relay.db", timeout=0, isolation_level=None)
    try:
        with sqlite_store.write():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again after the commit
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_a_read_is_one_snapshot_although_a_write_commits_during_it(sqlite_store: Store) -> None:
    with sqlite_store.read() as conn:
        count = sa.select(sa.func.count()).select_from(sweeps)
        assert conn.execute(count).scalar() == 0
        assert driver(conn).in_transaction  # the "begin" event began it on the driver
        with sqlite_store.write() as writer:
            write_both_ways(writer, "")
        assert conn.execute(count).scalar() == 0
    assert not conn.in_transaction()
    assert jobs(sqlite_store) == ["core", "raw"]


def test_a_kept_read_connection_sees_each_commit_and_holds_no_transaction_between_reads(
    sqlite_store: Store,
) -> None:
    with sqlite_store.read() as first:
        assert driver(first).in_transaction  # one snapshot for the block's queries
        assert first.execute(sa.select(sa.func.count()).select_from(sweeps)).scalar() == 0
    assert not driver(first).in_transaction and not first.in_transaction()
    with sqlite_store.write() as conn:
        write_both_ways(conn, "")
    with sqlite_store.read() as again:
        assert again is first  # kept between reads, not taken from the pool again
        assert again.execute(sa.select(sa.func.count()).select_from(sweeps)).scalar() == 2


def test_a_read_that_raises_gives_its_connection_back_and_the_next_read_works(
    sqlite_store: Store,
) -> None:
    with pytest.raises(sa.exc.OperationalError), sqlite_store.read() as failed:
        failed.exec_driver_sql("SELECT * FROM no_such_table")
    assert failed.closed  # back to the pool, not kept
    with sqlite_store.read() as conn:
        assert conn is not failed
        assert conn.execute(sa.select(sa.func.count()).select_from(sweeps)).scalar() == 0


def test_closing_the_store_closes_its_kept_read_connections(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'relay.db'}")
    with store.read() as conn:
        pass
    assert not conn.closed
    store.close()
    assert conn.closed
