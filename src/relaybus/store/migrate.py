"""Alembic migrations, applied when a store opens and by ``relaybus migrate``.

Opening a store is on every CLI call's path, so the check is one query: the
stored revision against :data:`HEAD`. Only when they differ is Alembic loaded.

Rolling upgrades of a cluster (expand, then contract): ``relaybus migrate``
with the new version runs while replicas of the old one keep serving, then
replicas are replaced one by one. That works because migrations are
expand-only (new tables, nullable columns, indexes) and because an old
replica that restarts meanwhile still opens the newer schema: the database
records in ``relay_meta.compatible_from`` the oldest revision whose code may
serve it, and a store at that revision or later serves without migrating. A
migration that old code cannot live with (dropping or renaming what it uses)
raises ``compatible_from`` to its own revision, in a later release.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

from ..errors import StoreError

logger = logging.getLogger(__name__)

#: The newest revision in ``store/migrations/versions`` (a test keeps them equal).
HEAD = "0009"
#: PostgreSQL: how long a migration waits for a table lock held by live traffic
#: before it gives up (and rolls back) rather than stall every replica behind it.
LOCK_TIMEOUT = "5s"
#: PostgreSQL's SQLSTATE for a lock_timeout that expired.
LOCK_NOT_AVAILABLE = "55P03"


def alembic_config() -> Config:
    """The Alembic config of relaybus (no ``alembic.ini`` needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "relaybus.store:migrations")
    return config


def script_head() -> str | None:
    """The head revision as Alembic sees it in the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_current(engine: Engine) -> None:
    """Migrate ``engine``'s database to :data:`HEAD` unless it is there already.

    Raises:
        StoreError: the database is at a revision this relaybus does not know
            (written by a newer version).
    """
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.OperationalError:
        version = None  # SQLite: no such table yet
    except sa.exc.ProgrammingError:
        version = None  # PostgreSQL: no such table yet
    if version == HEAD:
        return
    if version is not None and compatible_newer(engine, version):
        logger.warning(
            "the database is at schema %s, newer than this relaybus (%s) but compatible "
            "with it: serving without migrating",
            version,
            HEAD,
        )
        return
    upgrade(engine)


def known_revisions() -> set[str]:
    """Every revision in this version's migration scripts."""
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def compatible_newer(engine: Engine, version: str) -> bool:
    """True if the database is at ``version``, a revision this code does not know
    (a newer relaybus migrated it), whose ``compatible_from`` this code knows."""
    known = known_revisions()
    if version in known:
        return False
    try:
        with engine.connect() as conn:
            floor = conn.execute(
                sa.text("SELECT value FROM relay_meta WHERE key = 'compatible_from'")
            ).scalar()
    except sa.exc.DBAPIError:
        return False  # a schema from before relay_meta: not one we can judge
    return floor in known


def upgrade(engine: Engine) -> str:
    """Apply every pending migration in one transaction; returns the revision.

    Concurrent openers are safe: SQLite's ``BEGIN IMMEDIATE`` and PostgreSQL's
    advisory lock (see ``migrations/env.py``) make the second one wait and then
    find nothing to do.

    Raises:
        StoreError: the database has a revision unknown to this version, or
            (PostgreSQL) a table lock stayed taken by live traffic for longer
            than :data:`LOCK_TIMEOUT`; nothing changed then, and running it
            again is safe.
    """
    # Imported here: opening an up-to-date store must not pay for Alembic.
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = alembic_config()
    try:
        with engine.begin() as conn:
            found = MigrationContext.configure(conn).get_current_revision()
            if found is not None and found not in known_revisions():
                raise StoreError(
                    f"the database is at schema revision {found!r}, newer than this relaybus "
                    f"(head {HEAD!r}): upgrade relaybus"
                )
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            revision = MigrationContext.configure(conn).get_current_revision()
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        raise StoreError(
            f"the migration waited more than {LOCK_TIMEOUT} for a table lock that live "
            "traffic holds, and rolled back; nothing changed: run it again"
        ) from exc
    return revision or ""
