"""Alembic migrations, applied when a store opens and by ``relaybus migrate``.

Opening a store is on every CLI call's path, so the check is one query: the
stored revision against :data:`HEAD`. Only when they differ is Alembic loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

from ..errors import StoreError

#: The newest revision in ``store/migrations/versions`` (a test keeps them equal).
HEAD = "0003"


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
    if version != HEAD:
        upgrade(engine)


def upgrade(engine: Engine) -> str:
    """Apply every pending migration in one transaction; returns the revision.

    Concurrent openers are safe: SQLite's ``BEGIN IMMEDIATE`` and PostgreSQL's
    advisory lock (see ``migrations/env.py``) make the second one wait and then
    find nothing to do.

    Raises:
        StoreError: the database has a revision unknown to this version.
    """
    # Imported here: opening an up-to-date store must not pay for Alembic.
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config()
    with engine.begin() as conn:
        found = MigrationContext.configure(conn).get_current_revision()
        known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
        if found is not None and found not in known:
            raise StoreError(
                f"the database is at schema revision {found!r}, newer than this relaybus "
                f"(head {HEAD!r}): upgrade relaybus"
            )
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        revision = MigrationContext.configure(conn).get_current_revision()
    return revision or ""
