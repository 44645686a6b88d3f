"""Opening a store: engines, SQLite pragmas, migrations on open, and wake-ups.

SQLite follows datasette's split: one write connection per process (a pool of
one, so threads queue for it) that starts every transaction with ``BEGIN
IMMEDIATE``, and a small pool of read connections. WAL lets readers run while
the writer writes; ``busy_timeout`` makes writers of other processes queue
inside SQLite instead of failing.

PostgreSQL uses one SQLAlchemy ``QueuePool`` of psycopg 3 connections
(``Settings.pool_size`` + ``pool_overflow``, pre-pinged so connections a
restart killed are replaced) and one ``LISTEN`` connection per process
(:class:`~relaybus.store.notify.PostgresNotifier`). Writers of every replica
take one transaction-scoped advisory lock first, the PostgreSQL equivalent of
SQLite's ``BEGIN IMMEDIATE``: ids then become visible in commit order, which
is what lets a reader resume from an id without ever missing a lower one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import StoreError
from ..settings import Settings
from . import migrate
from .checkpoint import Checkpointer
from .files import advice, prepare_sqlite
from .locate import find_relay_dir, sqlite_url
from .notify import CHANNEL, Listener, PostgresNotifier, SocketNotifier
from .statements import StatementCache

logger = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgresql"]

# How long a SQLite writer waits for another process's write to finish (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Waiters re-check the database at least this often even without a wake-up (s).
FALLBACK_POLL_SECONDS = 1.0
#: SQLite read connections kept checked out between reads (see :meth:`Store.read`), at
#: most; the read pool holds 4 (+4 overflow).
KEPT_READERS = 4
#: The transaction-scoped advisory lock every PostgreSQL writer takes first.
WRITE_LOCK = 4850
# After commit, announce the newest event id (under the write lock: this
# transaction's last event, if it logged any) to every replica's listener.
_NOTIFY = f"SELECT pg_notify('{CHANNEL}', (SELECT COALESCE(max(id), 0) FROM events)::text)"


class Store:
    """An open relay database.

    Use :meth:`write` for a transaction that changes state (it wakes waiters
    after commit) and :meth:`read` for queries. ``clock`` returns float Unix
    seconds; tests replace it to move time without sleeping.

    A SQLite file that does not exist is created (folder 0700, files 0600,
    see :mod:`.files`) unless ``create`` is false; an existing one is refused
    if it is not a SQLite database, and made private if others could read it
    (``notice`` then says so, and a warning is logged). A database that turns
    out damaged, at open or at any later query, raises :class:`StoreError`.

    Raises:
        NoRelay: the SQLite file does not exist and ``create`` is false.
        StoreError: the database cannot be opened, is not a database, is
            damaged, or has a newer schema.
    """

    def __init__(
        self,
        url: str,
        *,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.time,
        migrate_on_open: bool = True,
        create: bool = True,
    ) -> None:
        self.url = sa.make_url(url)
        #: One line saying that an existing store was made private on open, or None.
        self.notice: str | None = None
        self._write_lock = threading.Lock()
        self._writer: Connection | None = None
        #: Idle SQLite read connections, kept checked out of the read pool.
        self._readers: list[Connection] = []
        self._readers_lock = threading.Lock()
        self._pg_notifier: PostgresNotifier | None = None
        self._closed = False
        self.settings = settings or Settings()
        self.clock = clock
        self.dialect: Dialect
        backend = self.url.get_backend_name()
        if backend == "sqlite":
            self.dialect = "sqlite"
            self._open_sqlite(create)
        elif backend == "postgresql":
            self.dialect = "postgresql"
            self._open_postgresql()
        else:
            raise StoreError(f"unsupported database {backend!r}: use sqlite or postgresql")
        if migrate_on_open:
            try:
                migrate.ensure_current(self._write_engine)
            except (sa.exc.DatabaseError, sa.exc.InterfaceError) as exc:
                self.close()
                if self.damaged(exc):
                    raise self.damage_error(exc) from exc
                cause = str(exc.orig or exc).strip().splitlines()
                where = self.url.render_as_string(hide_password=True)
                raise StoreError(
                    f"cannot open {where}: {cause[0] if cause else type(exc).__name__}"
                ) from exc
            except BaseException:
                self.close()  # a refused store must not leak its pooled connections
                raise

    # -- opening ---------------------------------------------------------

    @property
    def listening(self) -> PostgresNotifier | None:
        """PostgreSQL: the process's LISTEN connection keeper (``connected``,
        ``connections``); ``None`` on SQLite."""
        return self._pg_notifier

    def _open_sqlite(self, create: bool) -> None:
        database = self.url.database
        if not database or database == ":memory:":
            raise StoreError("the embedded store needs a file: sqlite:///path/to/relay.db")
        path = Path(os.path.abspath(database))
        self.notice = prepare_sqlite(path, create=create)
        if self.notice is not None:
            logger.warning("%s", self.notice)
        self.path: Path | None = path
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        self._write_engine = sa.create_engine(
            self.url, connect_args=connect_args, pool_size=1, max_overflow=0, pool_timeout=60
        )
        self._read_engine = sa.create_engine(
            self.url, connect_args=connect_args, pool_size=4, max_overflow=4
        )
        sa.event.listen(self._write_engine, "connect", _sqlite_on_connect)
        sa.event.listen(self._read_engine, "connect", _sqlite_on_connect)
        sa.event.listen(self._write_engine, "begin", _begin_immediate)
        sa.event.listen(self._read_engine, "begin", _begin_deferred)
        self._notifier: SocketNotifier | None = SocketNotifier(path)
        #: Checkpoints the WAL in a thread of its own, off the writes (see :mod:`.checkpoint`).
        self.checkpointer: Checkpointer | None = Checkpointer(path)
        sa.event.listen(
            self._write_engine, "connect", lambda dbapi, _record: self._attach_writer(dbapi)
        )
        statements = StatementCache(self._write_engine.dialect)
        for engine in (self._write_engine, self._read_engine):
            sa.event.listen(engine, "engine_connect", statements.attach)

    def _open_postgresql(self) -> None:
        if self.url.get_driver_name() != "psycopg":
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.path = None
        settings = self.settings
        try:
            self._write_engine = sa.create_engine(
                self.url,
                pool_pre_ping=True,
                pool_size=settings.pool_size,
                max_overflow=settings.pool_overflow,
                pool_timeout=settings.pool_timeout,
                connect_args={"application_name": f"relaybus-{os.getpid()}"},
            )
        except ModuleNotFoundError as exc:
            raise StoreError("PostgreSQL needs psycopg: pip install 'relaybus[postgres]'") from exc
        self._read_engine = self._write_engine
        self._notifier = None
        self.checkpointer = None
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._pg_notifier = PostgresNotifier(conninfo)

    def _attach_writer(self, dbapi: sqlite3.Connection) -> None:
        assert self.checkpointer is not None
        self.checkpointer.attach(dbapi)

    def damaged(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the SQLite file is damaged or not a database
        (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``), as opposed to busy or gone."""
        orig = getattr(exc, "orig", exc)
        name = getattr(orig, "sqlite_errorname", "")
        return isinstance(orig, sqlite3.DatabaseError) and name.startswith(
            ("SQLITE_CORRUPT", "SQLITE_NOTADB")
        )

    def damage_error(self, exc: BaseException) -> StoreError:
        """The :class:`StoreError` for a damaged database (see :meth:`damaged`)."""
        orig = getattr(exc, "orig", exc)
        where = self.path or self.url.render_as_string(hide_password=True)
        return StoreError(
            f"the relay database {where} is damaged ({orig}): "
            + advice(Path(str(where)))
            + "; `relaybus doctor` checks it",
            path=str(where),
        )

    # -- use -------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; commits on success, rolls back on error,
        then wakes every waiter (other processes included)."""
        if self._closed:
            raise StoreError("the store is closed")
        if self.dialect == "postgresql":
            with self._write_engine.begin() as conn:
                # Serialise writers so ids become visible in commit order: a
                # reader resuming from cursor N never misses an id below N.
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
                yield conn
                conn.exec_driver_sql(_NOTIFY)
            return
        # SQLite: this process's one writer connection, kept checked out (a
        # pool round trip per write cost more than the write); threads queue
        # on the lock, other processes on SQLite's busy timeout.
        with self._write_lock:
            try:
                if self._writer is None or self._writer.closed:
                    self._writer = self._write_engine.connect()
                conn = self._writer
                # Begun and ended on the driver: see DriverTransaction (why, and what
                # of SQLAlchemy's behaviour that relies on).
                with DriverTransaction(conn, "BEGIN IMMEDIATE"):
                    yield conn
            except (sa.exc.DatabaseError, sqlite3.DatabaseError) as exc:
                if self.damaged(exc):
                    raise self.damage_error(exc) from exc
                raise
        assert self._notifier is not None and self.checkpointer is not None
        self._notifier.notify()
        self.checkpointer.committed()

    def wake(self) -> None:
        """Wake every waiter on this database, in every process, without writing
        (a waiter re-checks and goes back to sleep); e.g. to unblock a listener
        at shutdown."""
        if self._notifier is not None:
            self._notifier.notify(commit=False)
            return
        with self._write_engine.connect() as conn:
            conn.exec_driver_sql(f"NOTIFY {CHANNEL}")
            conn.commit()

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot for several queries).

        On SQLite it runs on one of up to :data:`KEPT_READERS` connections kept
        between reads (no transaction open in between, so each read sees every
        commit before it).

        Raises:
            StoreError: the store was closed (a late call would otherwise open
                a pool that nothing closes).
        """
        if self._closed:
            raise StoreError("the store is closed")
        if self.dialect == "postgresql":
            with self._read_engine.begin() as conn:
                yield conn
            return
        # SQLite: a connection kept from an earlier read, its transaction begun and
        # ended on the driver as writes do (see DriverTransaction): the pool's
        # checkout, reset and SQLAlchemy's transaction bookkeeping were about half
        # of a short read. A read that fails gives its connection back to the pool.
        with self._readers_lock:
            reader = self._readers.pop() if self._readers else None
        try:
            if reader is None or reader.closed or reader.invalidated:
                reader = self._read_engine.connect()
            with DriverTransaction(reader, "BEGIN"):
                yield reader
        except BaseException as exc:
            if reader is not None:
                reader.close()
            if isinstance(exc, sa.exc.DatabaseError | sqlite3.DatabaseError) and self.damaged(exc):
                raise self.damage_error(exc) from exc
            raise
        with self._readers_lock:
            if not self._closed and len(self._readers) < KEPT_READERS:
                self._readers.append(reader)
                return
        reader.close()

    @contextlib.contextmanager
    def listen(self) -> Iterator[Listener]:
        """Wake-ups from writers, for waiting without polling. Enter it *before*
        checking the database, then alternate check and ``wait``."""
        if self._notifier is not None:
            with self._notifier.listen() as listener:
                yield listener
            return
        assert self._pg_notifier is not None
        with self._pg_notifier.listen() as listener:
            yield listener

    @contextlib.contextmanager
    def muted(self, listener: Listener) -> Iterator[None]:
        """While the block runs, commits made by this thread do not wake ``listener``
        (one from this store's :meth:`listen`); other waiters and other threads'
        commits wake as before. For a waiter that reads what changed itself once the
        block ends (the server's hub after a local send): the wake-up would cost it
        a thread switch and a read of nothing. On PostgreSQL nothing changes: a
        ``NOTIFY`` names its event id, which spares that read already."""
        if self._notifier is None:
            yield
            return
        with self._notifier.muted(listener):
            yield

    def wait_for(self, check: Callable[[], Any], timeout: float) -> Any:
        """Run ``check`` until it returns something truthy or ``timeout`` seconds pass.

        Returns the truthy value, or the last (falsy) value on timeout. Sleeps
        between checks until a writer's wake-up (or ``FALLBACK_POLL_SECONDS``).
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        with self.listen() as listener:
            while True:
                result = check()
                remaining = deadline - time.monotonic()
                if result or remaining <= 0:
                    return result
                listener.wait(min(remaining, FALLBACK_POLL_SECONDS))

    def migrate(self) -> str:
        """Apply pending migrations; returns the revision now current."""
        with self._write_lock:
            # The writer's pool has one connection: hand it back for Alembic.
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            return migrate.upgrade(self._write_engine)

    def close(self) -> None:
        self._closed = True
        if self.checkpointer is not None:
            self.checkpointer.close()
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        self._write_engine.dispose()
        if self._read_engine is not self._write_engine:
            self._read_engine.dispose()
        if self._notifier is not None:
            self._notifier.close()
        if self._pg_notifier is not None:
            self._pg_notifier.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r})"


def open_store(settings: Settings | None = None, **kwargs: Any) -> Store:
    """Open the store the settings point at (``database``, else ``dir``, else the
    ``.relay`` folder found from the cwd, see :func:`find_relay_dir`), migrating
    it if needed. A missing SQLite file is created unless ``create=False`` is
    passed (see :class:`Store` for the other keyword arguments).

    Raises:
        NoRelay: ``create=False`` and there is no database file.
        StoreError: the database cannot be opened, is damaged or has a newer schema.
    """
    settings = settings or Settings()
    if settings.database:
        url = settings.database
    else:
        relay_dir = settings.dir or find_relay_dir()
        url = sqlite_url(Path(os.path.abspath(relay_dir)))
    return Store(url, settings=settings, **kwargs)


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # Autocommit at the driver level so that SQLAlchemy's "begin" event below
    # decides how each transaction starts (SQLAlchemy's pysqlite recipe).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a commit survives the process being killed; only an
    # OS crash or power loss can roll back the last transactions.
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


# -- raw transactions on SQLite -------------------------------------------
#
# SQLite transactions begin and end on the driver, beside SQLAlchemy: its
# transaction bookkeeping (Connection.begin/commit, the pool's reset) was a
# fifth of a send, and pysqlite's own BEGIN cannot say IMMEDIATE. What this
# relies on, checked against SQLAlchemy 2.1.9 (uv.lock) and 2.0.58 (the newest
# 2.0; pyproject allows >=2.0.30) and asserted by
# tests/store/test_store_transactions.py, which fails if a release changes it:
# - the driver is in autocommit mode (isolation_level=None, _sqlite_on_connect)
#   and SQLAlchemy's pysqlite dialect issues no BEGIN of its own: the "begin"
#   event (_begin_immediate, _begin_deferred) is where a transaction starts;
# - that event also fires when a Core statement autobegins inside a transaction
#   DriverTransaction opened (a write's BEGIN IMMEDIATE, a kept reader's BEGIN);
#   it then finds the driver in a transaction and issues nothing, so the
#   statement runs in the driver's transaction;
# - Connection.commit()/rollback() end that autobegun transaction with the
#   driver's commit()/rollback(), and leave the Connection ready for the next
#   (in_transaction() false), as does ending it on the driver when no Core
#   statement ran.


class DriverTransaction:
    """One transaction begun and ended on the SQLite driver under a SQLAlchemy
    ``conn``: ``begin`` (``"BEGIN IMMEDIATE"``) on entry; on exit a commit, or a
    rollback if the block raised, of both SQLAlchemy's transaction (if a Core
    statement autobegan one) and the driver's. Statements inside may use Core or
    the raw cursor (:mod:`.statements`): they share the one transaction.

    A class rather than a generator: it runs once per write.
    """

    __slots__ = ("conn", "dbapi", "begin")

    def __init__(self, conn: Connection, begin: str) -> None:
        self.conn = conn
        self.dbapi = driver(conn)
        self.begin = begin

    def __enter__(self) -> sqlite3.Connection:
        self.dbapi.execute(self.begin)
        return self.dbapi

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        conn, dbapi = self.conn, self.dbapi
        if kind is not None:
            if conn.in_transaction():
                conn.rollback()
            if dbapi.in_transaction:
                dbapi.rollback()
            return
        if conn.in_transaction():
            conn.commit()
        if dbapi.in_transaction:
            dbapi.commit()


def driver(conn: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under a SQLAlchemy connection of a SQLite store."""
    dbapi = conn.connection.dbapi_connection
    assert isinstance(dbapi, sqlite3.Connection)
    return dbapi


def _begin_immediate(conn: Connection) -> None:
    # Take the write lock up front: no deadlock-prone lock upgrade mid-transaction.
    # Straight on the driver: this runs once per write.
    dbapi = driver(conn)
    if not dbapi.in_transaction:  # DriverTransaction (Store.write) may have begun it already
        dbapi.execute("BEGIN IMMEDIATE")


def _begin_deferred(conn: Connection) -> None:
    # On the driver: every read pays this, and SQLAlchemy's execute path costs
    # more than SQLite's BEGIN itself.
    dbapi = driver(conn)
    if not dbapi.in_transaction:  # DriverTransaction (Store.read) may have begun it already
        dbapi.execute("BEGIN")
