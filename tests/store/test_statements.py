"""The hot statements' fast path (``store/statements.py``) answers as plain SQLAlchemy does.

Every statement in :data:`~relaybus.store.statements.REGISTRY` runs on a populated store,
on each dialect, once through :func:`~relaybus.store.statements.run` (the raw DBAPI cursor
on SQLite) and once through ``conn.execute(stmt, params)``, each in a transaction rolled
back afterwards; the rows returned and the rows the statement changed must be the same,
value for value and type for type. The cases come from the registry itself, so a newly
registered statement is covered (its bind parameters need a sample value in
:func:`sample_params`, or the test says which one is missing).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, UpdateBase

import relaybus.service  # noqa: F401  (imports every module that registers a statement)
from relaybus.service import Service
from relaybus.store import Store
from relaybus.store.schema import Json, agents, deliveries, load_json, messages
from relaybus.store.statements import (
    REGISTRY,
    SHAPES_PER_STATEMENT,
    Statement,
    StatementCache,
    cache_of,
    register,
    run,
    run_many,
)
from tests.conftest import Clock

#: Stands for the id a row got from its table's sequence: PostgreSQL's sequences do not
#: roll back, so the two paths' inserts get different ids there.
NEW_ID = "<new id>"
Rows = list[tuple[tuple[str, Any], ...]]


class _RolledBack(Exception):
    pass


@contextlib.contextmanager
def rolled_back(store: Store) -> Iterator[Connection]:
    """A write transaction that is rolled back at the end of the block."""
    with contextlib.suppress(_RolledBack), store.write() as conn:
        yield conn
        raise _RolledBack


@pytest.fixture
def samples(service: Service, clock: Clock) -> dict[str, Any]:
    """A store with agents, messages (a reply, a claimable one, meta), tokens and an
    idempotency key; returns sample values for the statements' bind parameters."""
    service.register("alice", tags=["lead"], capabilities=["review"], meta={"team": "core"})
    service.register("bob", label="Bob", tags=["backend"], channels=["ops"])
    service.register("carol", tags=["backend"])
    first = service.send("alice", "tag:backend", "deploy at 5", subject="deploy", meta={"n": 1})
    clock.advance(1.5)
    service.send("bob", None, "ok", reply_to=first.id, idempotency_key="key-1")
    service.send("alice", "bob", "review PR 7", claimable=True, priority="high")
    # For the fan-out statements: "lead" is dave's label, tag and capability (and
    # alice's tag), "ops" his channel; no message has the id "mid" yet.
    service.register("dave", label="lead", tags=["lead"], capabilities=["lead"], channels=["ops"])
    clock.advance(2.0)
    with service.store.read() as conn:  # bob as a sweep read him: his last heartbeat
        seen = conn.execute(
            sa.select(agents.c.last_seen_at).where(agents.c.id == "bob")
        ).scalar_one()
    return {
        "seen": seen,
        "value": "lead",
        "channel": "ops",
        "mid": 10_000,
        "ws": "default",
        "aid": "bob",
        "id": first.id,
        "since": 0,
        "limit": 3,
        "sender": "bob",
        "key": "key-1",
        "now": clock() + 10.0,
    }


def sample_params(stmt: Statement, samples: dict[str, Any]) -> dict[str, Any]:
    """Values for every bind parameter ``stmt`` names (an INSERT's are its columns).

    Raises:
        AssertionError: a parameter without a sample value: add one to :func:`samples`.
    """
    assert isinstance(stmt.sql, sa.ClauseElement)
    compiled = stmt.sql.compile()
    assert isinstance(compiled, SQLCompiler)
    names = [n for n, b in compiled.binds.items() if b.value is None and not b.callable]
    missing = sorted(set(names) - set(samples))
    assert not missing, f"{stmt.name}: no sample value for {missing}; add one to samples()"
    return {n: samples[n] for n in names}


def insert_rows(conn: Connection, stmt: Statement) -> list[dict[str, Any]]:
    """For an INSERT: parameter sets copied from the table's first row, with every
    column, and with only the columns that are not None (as callers pass them). The
    sequence-made id is left out; a table without one loses that row first, so that
    the copy does not collide with it."""
    assert isinstance(stmt.sql, Insert)
    table = stmt.sql.table
    assert isinstance(table, sa.Table)
    key = list(table.primary_key.columns)
    row = conn.execute(sa.select(table).order_by(*key).limit(1)).mappings().one()
    serial = table.autoincrement_column
    if serial is None:
        conn.execute(table.delete().where(*(c == row[c.name] for c in key)))
    full = {k: v for k, v in row.items() if serial is None or k != serial.name}
    return [full, {k: v for k, v in full.items() if v is not None}]


def typed(rows: Any) -> Rows:
    """Rows with each value paired with its type's name: 1 and 1.0 differ."""
    return [tuple((type(v).__name__, v) for v in row) for row in rows]


def table_rows(conn: Connection, table: sa.Table) -> dict[Any, tuple[Any, ...]]:
    """Every row of ``table`` by primary key (read through plain SQLAlchemy)."""
    key = [c.name for c in table.primary_key.columns]
    found = conn.execute(sa.select(table)).mappings().all()
    return {tuple(r[k] for k in key): tuple(r.values()) for r in found}


def outcome(
    store: Store, stmt: Statement, samples: dict[str, Any], *, fast: bool, shape: int
) -> tuple[Rows, Rows, Rows]:
    """Run ``stmt`` (``fast``: through :func:`run`, else ``conn.execute``) in a rolled-back
    transaction; returns the rows it returned, the rows it added or changed, and the
    rows it removed, with sequence-made ids as :data:`NEW_ID`."""
    table = stmt.sql.table if isinstance(stmt.sql, UpdateBase) else None
    assert table is None or isinstance(table, sa.Table)
    with rolled_back(store) as conn:
        # The fast path is the raw cursor on SQLite, the ordinary one on PostgreSQL.
        assert (cache_of(conn) is not None) == (store.dialect == "sqlite")
        if isinstance(stmt.sql, Insert) and stmt.sql.select is None:
            params = insert_rows(conn, stmt)[shape]
        else:
            params = sample_params(stmt, samples)
        before = table_rows(conn, table) if table is not None else {}
        if fast:
            returned = run(conn, stmt, params)
        else:
            result = conn.execute(stmt.sql, params)
            returned = [tuple(r) for r in result] if result.returns_rows else []
        after = table_rows(conn, table) if table is not None else {}
    changed = [row for k, row in after.items() if before.get(k) != row]
    removed = [row for k, row in before.items() if after.get(k) != row]
    serial = table.autoincrement_column if table is not None else None
    if table is not None and serial is not None:
        position = list(table.columns).index(serial)
        new_ids = {row[position] for k, row in after.items() if k not in before}
        changed = [
            tuple(NEW_ID if i == position and v in new_ids else v for i, v in enumerate(r))
            for r in changed
        ]
        columns = list(stmt.sql.exported_columns) if isinstance(stmt.sql, UpdateBase) else []
        pairs = [zip(columns, r, strict=True) for r in returned]
        returned = [
            tuple(NEW_ID if c is serial and v in new_ids else v for c, v in p) for p in pairs
        ]
    return typed(returned), typed(sorted(changed, key=repr)), typed(sorted(removed, key=repr))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_registered_statement_answers_alike_on_the_fast_path_and_through_sqlalchemy(
    name: str, store: Store, samples: dict[str, Any]
) -> None:
    stmt = REGISTRY[name]
    shapes = 2 if isinstance(stmt.sql, Insert) and stmt.sql.select is None else 1
    for shape in range(shapes):
        fast = outcome(store, stmt, samples, fast=True, shape=shape)
        plain = outcome(store, stmt, samples, fast=False, shape=shape)
        assert fast == plain
        returned, changed, _ = plain
        # Not vacuous: the samples make every query find rows and every write change one.
        assert changed if isinstance(stmt.sql, UpdateBase) else returned, name


def test_a_raw_run_leaves_only_the_json_columns_undecoded_and_only_on_sqlite(
    store: Store, samples: dict[str, Any]
) -> None:
    # The inbox reads its pages raw and decodes meta itself (service/inbox.py).
    pages = [REGISTRY[name] for name in sorted(REGISTRY) if name.startswith("inbox.")]
    assert len(pages) == 4
    for stmt in pages:
        assert isinstance(stmt.sql, sa.Select)
        columns = list(stmt.sql.selected_columns)
        params = {**sample_params(stmt, samples), "limit": 10}
        with store.read() as conn:
            rows = run(conn, stmt, params)
            raw = run(conn, stmt, params, raw=True)
        assert rows, stmt.name
        text = store.dialect == "sqlite"
        decoded = [
            tuple(
                load_json(v) if text and c.type is Json else v
                for c, v in zip(columns, r, strict=True)
            )
            for r in raw
        ]
        assert typed(decoded) == typed(rows)
        assert (raw == rows) is not text  # on SQLite, meta ({} or an object) stays text


def test_the_service_registers_its_hot_statements() -> None:
    assert {"events.append", "agents.touch", "messages.insert", "events.tail"} <= set(REGISTRY)
    assert all(REGISTRY[name].name == name for name in REGISTRY)


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="registered already"):
        register("events.append", sa.select(sa.literal(1)))


def test_the_fast_path_refuses_a_statement_nobody_registered(sqlite_store: Store) -> None:
    stray = Statement("stray", sa.select(sa.literal(1)))
    with sqlite_store.read() as conn, pytest.raises(ValueError, match="not registered"):
        run(conn, stray, {})


def test_the_compiled_forms_stay_bounded_by_the_registry(sqlite_store: Store) -> None:
    service = Service(sqlite_store)
    service.register("bob")
    stmt = REGISTRY["agents.exists"]
    with sqlite_store.read() as conn:
        cache = cache_of(conn)
        assert isinstance(cache, StatementCache)
        bound = SHAPES_PER_STATEMENT * len(REGISTRY)
        # Every order of the names, and an unused extra name each time, is a new shape.
        orders = itertools.permutations([("ws", "default"), ("aid", "bob")])
        shapes = [dict(order) for order in orders] + [
            {"ws": "default", "aid": "bob", f"unused{i}": i} for i in range(bound + 10)
        ]
        for params in shapes:
            assert run(conn, stmt, params) == [("bob",)]
            assert cache.size <= bound


def test_run_many_writes_the_same_rows_on_the_fast_path_and_through_sqlalchemy(
    store: Store, samples: dict[str, Any]
) -> None:
    stmt = REGISTRY["deliveries.insert"]
    with store.read() as conn:
        message_id = conn.execute(sa.select(sa.func.max(deliveries.c.message_id))).scalar_one()
    rows = [
        {"workspace": "default", "agent_id": agent, "message_id": message_id + 1, "read_at": None}
        for agent in ("alice", "bob", "carol")
    ]
    written = []
    for fast in (True, False):
        with rolled_back(store) as conn:
            conn.execute(
                messages.insert().values(
                    id=message_id + 1,
                    workspace="default",
                    sender="alice",
                    target="broadcast",
                    body="all",
                    priority="normal",
                    meta={},
                    created_at=1.0,
                )
            )
            before = table_rows(conn, deliveries)
            if fast:
                run_many(conn, stmt, rows)
            else:
                conn.execute(stmt.sql, rows)
            after = table_rows(conn, deliveries)
        written.append(typed(sorted(v for k, v in after.items() if k not in before)))
    assert written[0] == written[1]
    assert len(written[0]) == 3


def test_run_many_refuses_a_statement_that_returns_rows(sqlite_store: Store) -> None:
    with sqlite_store.read() as conn:
        cache = cache_of(conn)
        assert isinstance(cache, StatementCache)
        with pytest.raises(ValueError, match="returns rows"):
            cache.run_many(conn, REGISTRY["agents.exists"], [{"ws": "default", "aid": "bob"}])


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "{}",
        "[]",
        '{"a": {"b": [1, 2.5, null, "\\u00fc"]}}',
        '"text"',
        "3",
        b'{"x": 1}',
        7,
        2.5,
    ],
)
def test_json_columns_on_sqlite_decode_as_sqlalchemys_own_processor(stored: Any) -> None:
    # The JSON type's SQLite processor is relaybus's own (load_json, the cheaper one).
    from sqlalchemy.dialects import sqlite

    from relaybus.store.schema import Json, load_json

    dialect = sqlite.dialect()
    assert Json.dialect_impl(dialect).result_processor(dialect, None) is load_json
    theirs = sa.JSON().dialect_impl(dialect).result_processor(dialect, None)
    assert theirs is not None
    decoded = load_json(stored)
    assert decoded == theirs(stored) and type(decoded) is type(theirs(stored))
    if stored == "{}":
        assert decoded is not load_json(stored)  # a fresh dict each time: callers may keep it
