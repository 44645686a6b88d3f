"""Wake-ups without a write, listeners watched by an event loop, and the schema the
migrations build."""

from __future__ import annotations

import selectors

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from conftest import HUNG
from relaybus.store import Store
from relaybus.store.schema import metadata


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
