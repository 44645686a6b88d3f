"""Migrated SQLite relays for tests without running the migrations in every test.

Migrating a new SQLite file costs ~45 ms of CPU (Alembic loads its scripts and runs every
step); the suite opens a new relay in over a thousand tests. :func:`seed_sqlite` makes the
relay file as relaybus makes it (:func:`relaybus.store.files.create_database`: the folder,
its ``.gitignore``, the file and their private modes) and then fills it with a copy of a
template this process migrated once, just as every PostgreSQL test database is a clone of a
migrated template (:func:`tests.support.pg.fresh_database_url`). The store that opens it
finds the schema at :data:`~relaybus.store.migrate.HEAD` and serves it, as it would a relay
migrated by an earlier process. The migrations themselves are tested on empty databases
(``tests/store/test_migrations.py``), which never take this shortcut.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

from relaybus.store import Store
from relaybus.store.files import COMPANIONS, create_database


@functools.cache
def migrated_template() -> Path:
    """A SQLite file migrated to the head revision and closed (no ``-wal``/``-shm`` left),
    made once per process and deleted at its exit."""
    folder = Path(tempfile.mkdtemp(prefix="relaybus-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "relay.db"
    Store(f"sqlite:///{path}").close()
    leftovers = [f"{path}{suffix}" for suffix in COMPANIONS if os.path.exists(f"{path}{suffix}")]
    assert not leftovers, f"the template was not checkpointed on close: {leftovers}"
    return path


def seed_sqlite(path: Path) -> None:
    """Create the relay file ``path`` (with its folder) as relaybus does and give it the
    migrated template's contents. Does nothing if ``path`` exists: an existing relay is the
    test's own.

    Raises:
        relaybus.errors.StoreError: the folder or the file cannot be created.
    """
    if os.path.lexists(path):
        return
    create_database(path)
    # Into the file relaybus made: its mode (0600) stays, its contents become the template's.
    shutil.copyfile(migrated_template(), path)
