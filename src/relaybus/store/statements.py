"""Running hot statements on SQLite without SQLAlchemy's per-call overhead.

SQLAlchemy Core builds, caches and runs a statement in ~40 µs; SQLite itself
runs a small insert in a few. On the paths every operation takes (fencing the
acting agent, appending an event, writing a message and its deliveries) that
overhead was ~80% of a send. :class:`StatementCache` compiles each Core
statement once for the dialect and afterwards runs it straight on the DBAPI
cursor of the caller's SQLAlchemy connection (same transaction), applying the
column types' bind and result processors (JSON) as SQLAlchemy would. The Core
statement stays the single definition; PostgreSQL keeps the ordinary path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    # The statement's own values (a LIMIT, a literal) for names not passed in.
    defaults: dict[str, Any]
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]


_KEY = "relaybus.statements"


def run(conn: Connection, stmt: sa.Executable, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Execute a statement built once (a module constant with bind parameters)
    with named ``params`` in ``conn``'s transaction.

    Fast on a SQLite store (see the module docstring); the ordinary
    ``conn.execute`` elsewhere. Never pass a statement built per call: the
    cache is keyed by the statement object.

    Returns:
        the result rows as tuples (empty for DML without RETURNING).
    """
    cache: StatementCache | None = conn.info.get(_KEY)
    if cache is None:
        result = conn.execute(stmt, dict(params))
        return [tuple(r) for r in result] if result.returns_rows else []
    return cache.run(conn, stmt, params)


def run_many(conn: Connection, stmt: sa.Executable, rows: Sequence[Mapping[str, Any]]) -> None:
    """Execute a DML statement once per parameter set (``executemany``)."""
    cache: StatementCache | None = conn.info.get(_KEY)
    if cache is None:
        conn.execute(stmt, [dict(r) for r in rows])
        return
    for row in rows:
        cache.run(conn, stmt, row)


class StatementCache:
    """Core statements compiled once per dialect, run on the raw DBAPI cursor."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[tuple[int, tuple[str, ...]], tuple[sa.Executable, _Compiled]] = {}

    def attach(self, conn: Connection) -> None:
        """``engine_connect`` hook: make :func:`run` use this cache on ``conn``."""
        conn.info[_KEY] = self

    def run(
        self, conn: Connection, stmt: sa.Executable, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Execute ``stmt`` with named ``params`` in ``conn``'s transaction.

        Returns:
            the result rows as tuples (empty for DML without RETURNING).
        """
        key = (id(stmt), tuple(params))
        entry = self._compiled.get(key)
        compiled = entry[1] if entry is not None and entry[0] is stmt else self._compile(stmt, key)
        values = {**compiled.defaults, **params} if compiled.defaults else params
        args = [
            p(values[n]) if p is not None else values[n]
            for n, p in zip(compiled.names, compiled.binds, strict=True)
        ]
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            cursor.execute(compiled.sql, args)
            rows: Sequence[Any] = cursor.fetchall() if compiled.results else ()
        finally:
            cursor.close()
        if not any(compiled.results):
            return [tuple(r) for r in rows]
        return [
            tuple(p(v) if p is not None else v for p, v in zip(compiled.results, r, strict=True))
            for r in rows
        ]

    def _compile(self, stmt: sa.Executable, key: tuple[int, tuple[str, ...]]) -> _Compiled:
        assert isinstance(stmt, sa.ClauseElement)
        # column_keys: an INSERT names exactly the columns given, as Core would.
        compiled = stmt.compile(dialect=self.dialect, column_keys=list(key[1]))
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        binds = tuple(
            compiled.binds[n].type.dialect_impl(self.dialect).bind_processor(self.dialect)
            for n in names
        )
        columns: list[Any] = []
        if isinstance(stmt, sa.Select):
            columns = list(stmt.selected_columns)
        elif isinstance(stmt, UpdateBase):
            columns = list(stmt.exported_columns)  # the RETURNING columns, if any
        results = tuple(
            c.type.dialect_impl(self.dialect).result_processor(self.dialect, None) for c in columns
        )
        defaults = {
            n: compiled.binds[n].effective_value
            for n in names
            if n not in key[1] and compiled.binds[n].effective_value is not None
        }
        found = _Compiled(str(compiled), names, defaults, binds, results)
        self._compiled[key] = (stmt, found)
        return found
