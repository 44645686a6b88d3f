"""WAL checkpoints of a SQLite store run in a thread of their own, off the writes."""

from __future__ import annotations

import os

from relaybus.service import Service
from relaybus.store import Store
from relaybus.store.checkpoint import INLINE_PAGES
from relaybus.store.engine import driver
from tests.conftest import HUNG


def test_the_writer_leaves_checkpoints_to_sqlite_only_past_the_inline_bound(
    sqlite_store: Store,
) -> None:
    with sqlite_store.write() as conn:
        (pages,) = driver(conn).execute("PRAGMA wal_autocheckpoint").fetchone()
    assert pages == INLINE_PAGES


def test_a_wal_past_the_threshold_is_checkpointed_by_the_thread(sqlite_store: Store) -> None:
    checkpointer = sqlite_store.checkpointer
    assert checkpointer is not None
    service = Service(sqlite_store)
    service.register("alice")
    service.register("bob")
    assert checkpointer.runs == 0 and not checkpointer.running
    checkpointer.threshold = os.stat(checkpointer.wal).st_size  # the next commit passes it
    sent = service.send("alice", "bob", "past the threshold")
    assert checkpointer.wait(1, HUNG)
    assert checkpointer.last is not None
    busy, logged, copied = checkpointer.last
    assert busy == 0 and logged == copied > 0  # every frame copied into the database
    assert [m.id for m in service.inbox("bob")] == [sent.id]
    assert checkpointer.running
    sqlite_store.close()
    assert not checkpointer.running


def test_a_wal_below_the_threshold_starts_no_thread(sqlite_store: Store) -> None:
    service = Service(sqlite_store)
    service.register("alice")
    service.register("bob")
    service.send("alice", "bob", "hello")
    checkpointer = sqlite_store.checkpointer
    assert checkpointer is not None and checkpointer.runs == 0 and not checkpointer.running


def test_a_wal_grown_past_the_threshold_is_cut_back_to_it_once_checkpointed(
    sqlite_store: Store,
) -> None:
    # A burst faster than the checkpoints grows the file; SQLite reuses it from its start
    # without shrinking it unless journal_size_limit says so, and every later commit
    # would find it past the threshold and wake the thread for nothing.
    checkpointer = sqlite_store.checkpointer
    assert checkpointer is not None
    with sqlite_store.write() as conn:
        driver(conn).execute("CREATE TABLE burst (x BLOB)")
    with sqlite_store.write() as conn:  # one commit of about three thresholds
        for _ in range(3 * checkpointer.threshold // 100_000):
            driver(conn).execute("INSERT INTO burst VALUES (randomblob(100000))")
    assert os.stat(checkpointer.wal).st_size > 2 * checkpointer.threshold
    assert checkpointer.wait(1, HUNG)
    with sqlite_store.write() as conn:  # a small write: it restarts the WAL
        driver(conn).execute("INSERT INTO burst VALUES (1)")
    assert os.stat(checkpointer.wal).st_size <= checkpointer.threshold
