"""Wake-ups without a write, listeners watched by an event loop, and the schema the
migrations build."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from relaybus.service.common import append_event
from relaybus.store import Store
from relaybus.store.schema import metadata
from tests.conftest import HUNG


def test_wake_wakes_a_listener_without_writing(store: Store) -> None:
    with store.listen() as listener:
        assert not listener.drain()
        store.wake()
        assert listener.wait(HUNG)
        assert not listener.drain()  # wait() consumed the wake-up


def test_a_listener_descriptor_turns_readable_on_a_commit(store: Store) -> None:
    with store.listen() as listener, selectors.DefaultSelector() as selector:
        selector.register(listener.fileno(), selectors.EVENT_READ)
        assert selector.select(0) == []
        with store.write() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert selector.select(HUNG)
        assert listener.drain()
        assert not listener.drain()


def test_the_migrations_build_exactly_the_schema_the_code_uses(store: Store) -> None:
    with store.read() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def _append_event(store: Store) -> int:
    with store.write() as conn:
        return append_event(conn, "default", "relay.test", store.clock(), None)


def test_a_wake_up_announces_the_newest_event_id_on_postgresql(postgresql_store: Store) -> None:
    # Only PostgreSQL's wake-ups carry a payload (NOTIFY); SQLite's datagrams do not.
    store = postgresql_store
    with store.listen() as listener:
        event_id = _append_event(store)
        assert listener.wait(HUNG)
        assert listener.announced == event_id
        store.wake()  # a wake-up without an id: the reader must re-read
        assert listener.wait(HUNG)
        assert listener.announced is None


def test_a_lost_listen_connection_comes_back_and_wakes_waiters_to_catch_up(
    postgresql_store: Store,
) -> None:
    store = postgresql_store  # only PostgreSQL has a LISTEN connection
    notifier = store.listening
    assert notifier is not None
    name = f"relaybus-listen-{os.getpid()}"
    with store.listen() as listener:
        assert notifier.connected.is_set() and notifier.connections == 1
        with store.read() as conn:
            killed = (
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": name},
                )
                .scalars()
                .all()
            )
        assert killed == [True]
        # The reconnect itself wakes the waiter (announcing no id: re-read the log).
        assert listener.wait(HUNG)
        deadline = time.monotonic() + HUNG
        while notifier.connections < 2 and time.monotonic() < deadline:
            listener.wait(0.05)
        assert notifier.connections == 2
        assert notifier.connected.wait(HUNG)
        listener.drain()
        event_id = _append_event(store)  # and notifications flow again
        assert listener.wait(HUNG)
        assert listener.announced == event_id


def _commit(store: Store) -> None:
    with store.write() as conn:
        conn.exec_driver_sql("SELECT 1")


def test_a_muted_listener_sleeps_through_the_muting_threads_commits_only(
    sqlite_store: Store,
) -> None:
    # Only SQLite's datagrams can skip one waiter (PostgreSQL's NOTIFY reaches all).
    store = sqlite_store
    with store.listen() as muted, store.listen() as other:
        with store.muted(muted):
            _commit(store)  # a datagram is queued when sendto returns: no wait needed
            assert not muted.drain()
            assert other.drain()
            elsewhere = threading.Thread(target=_commit, args=(store,))
            elsewhere.start()
            elsewhere.join(HUNG)
            assert muted.drain()  # another thread's commit wakes it
            assert other.drain()
            store.wake()  # a wake-up without a commit is no commit of the block's
            assert muted.drain()
        _commit(store)  # after the block: woken again
        assert muted.drain()
        assert other.drain()


def test_a_commit_wakes_listeners_of_processes_with_another_tmpdir(tmp_path: Path) -> None:
    # The wake-up sockets are found the same way by every process of the user
    # (relaybus.identity.runtime_root), not through TMPDIR, which differs between a
    # user's processes (macOS gives each login its own; MCP clients drop it).
    url = f"sqlite:///{tmp_path}/relay.db"
    writer = "import sys; from relaybus.store import Store\n" + (
        "with Store(sys.argv[1]) as s, s.write() as c: c.exec_driver_sql('SELECT 1')"
    )
    with Store(url) as store, store.listen() as listener:
        for tmpdir in (str(tmp_path), None):
            env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
            if tmpdir is not None:
                env["TMPDIR"] = tmpdir
            subprocess.run([sys.executable, "-c", writer, url], env=env, timeout=HUNG, check=True)
            assert listener.wait(HUNG), f"not woken by a writer with TMPDIR={tmpdir}"
