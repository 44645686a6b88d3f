"""Running hot statements on SQLite without SQLAlchemy's per-call overhead.

SQLAlchemy Core builds, caches and runs a statement in ~40 µs; SQLite itself
runs a small insert in a few. On the paths every operation takes (fencing the
acting agent, appending an event, writing a message and its deliveries) that
overhead was ~80% of a send. :class:`StatementCache` compiles each Core
statement once for the dialect and afterwards runs it straight on the DBAPI
cursor of the caller's SQLAlchemy connection (same transaction), applying the
column types' bind and result processors (JSON) as SQLAlchemy would. The Core
statement stays the single definition; PostgreSQL keeps the ordinary path.

Only statements registered by name (:func:`register`, at import of the module
that defines them) take this path, so the set is closed and known:
``tests/store/test_store_statements.py`` runs every entry of :data:`REGISTRY`
through the fast path and through plain ``conn.execute`` on both dialects and
compares the results, and the compiled forms are bounded by the registry's size.
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


@dataclass(frozen=True, eq=False)
class Statement:
    """A hot Core statement registered under a unique ``name`` (see :func:`register`).

    Compared and hashed by identity: the fast path's cache is keyed by the object.
    """

    name: str
    #: The Core statement: the one definition of its SQL, for both paths.
    sql: sa.Executable


#: Every registered statement by name (filled as the service modules are imported).
REGISTRY: dict[str, Statement] = {}
#: Compiled forms kept per registered statement: one per set of parameter names
#: passed (an INSERT compiles per set of columns given); callers use one each.
SHAPES_PER_STATEMENT = 4


def register(name: str, stmt: sa.Executable) -> Statement:
    """Register ``stmt``, a module constant with bind parameters, for :func:`run`.

    Args:
        name: unique, ``"<table>.<what>"`` by convention (``"events.append"``).
        stmt: a SELECT, or an INSERT/UPDATE/DELETE with or without RETURNING;
            no expanding (``IN``) parameters, which only ``conn.execute`` renders.

    Returns:
        the :class:`Statement` to pass to :func:`run` and :func:`run_many`.

    Raises:
        ValueError: ``name`` is registered already.
    """
    if name in REGISTRY:
        raise ValueError(f"statement {name!r} is registered already")
    entry = Statement(name, stmt)
    REGISTRY[name] = entry
    return entry


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    # The statement's own values (a LIMIT, a literal) for names not passed in.
    defaults: dict[str, Any]
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]
    #: The result columns that have a processor, by position: a row's other
    #: values are passed through untouched.
    processed: tuple[tuple[int, Callable[[Any], Any]], ...]


_KEY = "relaybus.statements"


def run(
    conn: Connection, stmt: Statement, params: Mapping[str, Any], *, raw: bool = False
) -> list[tuple[Any, ...]]:
    """Execute a registered statement with named ``params`` in ``conn``'s transaction.

    Fast on a SQLite store (see the module docstring); the ordinary
    ``conn.execute`` elsewhere.

    Args:
        raw: on the fast path (:func:`cache_of` gives a cache), return the values as
            the driver gives them, without the result processors: a JSON column is
            its text, for a caller that decodes it itself (with
            :func:`relaybus.store.schema.load_json`). Elsewhere no effect.

    Returns:
        the result rows as tuples (empty for DML without RETURNING).
    """
    cache: StatementCache | None = conn.info.get(_KEY)
    if cache is None:
        result = conn.execute(stmt.sql, dict(params))
        return [tuple(r) for r in result] if result.returns_rows else []
    return cache.run(conn, stmt, params, raw=raw)


def run_many(conn: Connection, stmt: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
    """Execute a registered DML statement once per parameter set (``executemany``)."""
    cache: StatementCache | None = conn.info.get(_KEY)
    if cache is None:
        conn.execute(stmt.sql, [dict(r) for r in rows])
        return
    cache.run_many(conn, stmt, rows)


def cache_of(conn: Connection) -> StatementCache | None:
    """The cache :func:`run` uses on ``conn`` (a SQLite store's), or None: the ordinary path."""
    cache: StatementCache | None = conn.info.get(_KEY)
    return cache


class StatementCache:
    """Registered statements compiled once per dialect, run on the raw DBAPI cursor.

    Holds at most :data:`SHAPES_PER_STATEMENT` compiled forms per registered
    statement; past that the oldest is dropped (and compiled again if needed).
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[tuple[Statement, tuple[str, ...]], _Compiled] = {}

    def attach(self, conn: Connection) -> None:
        """``engine_connect`` hook: make :func:`run` use this cache on ``conn``."""
        conn.info[_KEY] = self

    @property
    def size(self) -> int:
        """How many compiled forms are held (at most ``SHAPES_PER_STATEMENT *
        len(REGISTRY)``)."""
        return len(self._compiled)

    def run(
        self, conn: Connection, stmt: Statement, params: Mapping[str, Any], *, raw: bool = False
    ) -> list[tuple[Any, ...]]:
        """Execute ``stmt`` with named ``params`` in ``conn``'s transaction; with
        ``raw``, without the result processors (see :func:`run`).

        Returns:
            the result rows as tuples (empty for DML without RETURNING).

        Raises:
            ValueError: ``stmt`` is not the registered statement of its name.
        """
        key = (stmt, tuple(params))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(stmt, key[1])
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
        processed = compiled.processed
        if raw:
            return list(rows)
        if not processed:
            return [tuple(r) for r in rows]
        found = []
        for r in rows:
            row = list(r)
            for i, p in processed:
                row[i] = p(row[i])
            found.append(tuple(row))
        return found

    def run_many(
        self, conn: Connection, stmt: Statement, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Execute DML ``stmt`` once per parameter set in ``conn``'s transaction, in
        one ``executemany`` on the raw cursor when every set names the same keys
        (the usual case: one delivery row per recipient), else one by one.

        Raises:
            ValueError: ``stmt`` returns rows (``executemany`` returns none), or is
                not the registered statement of its name.
        """
        if not rows:
            return
        names = tuple(rows[0])
        if any(tuple(row) != names for row in rows):
            for row in rows:
                self.run(conn, stmt, row)
            return
        key = (stmt, names)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(stmt, names)
        if compiled.results:
            raise ValueError(f"{stmt.name} returns rows: run it with run(), not run_many()")
        defaults = compiled.defaults
        pairs = list(zip(compiled.names, compiled.binds, strict=True))
        args = []
        for row in rows:
            values = {**defaults, **row} if defaults else row
            args.append([p(values[n]) if p is not None else values[n] for n, p in pairs])
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            cursor.executemany(compiled.sql, args)
        finally:
            cursor.close()

    def _compile(self, stmt: Statement, keys: tuple[str, ...]) -> _Compiled:
        if REGISTRY.get(stmt.name) is not stmt:
            raise ValueError(f"statement {stmt.name!r} is not registered: see register()")
        core = stmt.sql
        assert isinstance(core, sa.ClauseElement)
        # column_keys: an INSERT names exactly the columns given, as Core would.
        compiled = core.compile(dialect=self.dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError(
                f"statement {stmt.name!r} has expanding parameters: run it with conn.execute"
            )
        names = tuple(compiled.positiontup or ())
        binds = tuple(
            compiled.binds[n].type.dialect_impl(self.dialect).bind_processor(self.dialect)
            for n in names
        )
        columns: list[Any] = []
        if isinstance(core, sa.Select):
            columns = list(core.selected_columns)
        elif isinstance(core, UpdateBase):
            columns = list(core.exported_columns)  # the RETURNING columns, if any
        results = tuple(
            c.type.dialect_impl(self.dialect).result_processor(self.dialect, None) for c in columns
        )
        defaults = {
            n: compiled.binds[n].effective_value
            for n in names
            if n not in keys and compiled.binds[n].effective_value is not None
        }
        processed = tuple((i, p) for i, p in enumerate(results) if p is not None)
        found = _Compiled(str(compiled), names, defaults, binds, results, processed)
        if len(self._compiled) >= SHAPES_PER_STATEMENT * len(REGISTRY):
            del self._compiled[next(iter(self._compiled))]  # the oldest
        self._compiled[(stmt, keys)] = found
        return found
