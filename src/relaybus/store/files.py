"""The files of the embedded store: created private, checked before SQLite opens them.

- The relay folder is created 0700 and ``relay.db`` 0600 from the moment they
  exist. The database is made under a temporary name (``os.open`` with mode
  0600; SQLite then writes its header) and hard-linked into place, so
  ``relay.db`` is never seen half made and never replaces a file that
  appeared meanwhile. SQLite creates ``-wal`` and ``-shm`` with the mode of
  the database file, so they are 0600 too. Modes are given to the calls that
  create (masked by the umask, which can only narrow them) instead of a
  process-wide ``umask()``, which would race with other threads' files.
- An existing store with looser modes is tightened on open
  (:func:`tighten`); the caller logs the one notice it returns.
- An existing ``relay.db`` that is empty (0 bytes) or not a SQLite file is
  refused with :class:`~relaybus.errors.StoreError`: relaybus never replaces,
  truncates or re-creates an existing database file.
- ``.gitignore`` holding ``*`` keeps the relay out of ``git add -A``.

Wake-up sockets (:mod:`.notify`) live in a runtime folder that must be this
user's and closed to others (:func:`private_runtime_folder`); per-database
folders whose database is gone are removed (:func:`sweep_runtime`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import NoRelay, StoreError
from .locate import RELAY_DIRNAME

#: The first 16 bytes of every SQLite 3 database file (the file format's magic).
SQLITE_HEADER = b"SQLite format 3\x00"
FOLDER_MODE = 0o700
FILE_MODE = 0o600
#: The files SQLite keeps beside a database.
COMPANIONS = ("-wal", "-shm", "-journal")
GITIGNORE = ".gitignore"
#: What ``.relay/.gitignore`` holds: ignore everything in the folder, itself included.
GITIGNORE_TEXT = "*\n"
#: In a per-database runtime folder: the database path it belongs to.
MARKER = ".database"
#: Most bytes of the marker read back (a path: PATH_MAX is 4,096 on Linux).
MARKER_BYTES = 1 << 16
#: A runtime folder without a marker (made by an older relaybus) is removed only
#: after this many seconds without a change and with no live socket in it.
IDLE_SECONDS = 60.0
#: A process sweeps the runtime folder at most once per this many seconds.
SWEEP_EVERY = 60.0

_last_sweep: float | None = None


def no_relay(path: Path) -> NoRelay:
    """The error of a call that needs an existing relay where there is none."""
    return NoRelay("no relay here: run `relaybus init`", path=str(path))


def advice(path: Path) -> str:
    """What to do about a database file relaybus cannot use."""
    return (
        f"restore it from a backup, or move it aside (mv {path} {path}.broken) "
        "and run `relaybus init` for a new, empty relay"
    )


def check_database(path: Path) -> None:
    """Refuse an existing ``path`` that cannot be a SQLite database, without changing it.

    Raises:
        StoreError: it is a folder, unreadable, empty (0 bytes) or does not start
            with the SQLite header.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except IsADirectoryError:
        raise StoreError(f"{path} is a folder, not a relay database", path=str(path)) from None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    if not head:
        raise StoreError(
            f"{path} is empty (0 bytes), not a relay database; relaybus does not replace it: "
            + advice(path),
            path=str(path),
        )
    if head != SQLITE_HEADER:
        raise StoreError(
            f"{path} is not a SQLite database (it starts with {head[:8]!r}); relaybus does "
            "not replace it: " + advice(path),
            path=str(path),
        )


def write_gitignore(folder: Path) -> bool:
    """Write ``folder/.gitignore`` holding ``*`` unless the folder has one; True if written.

    Raises:
        StoreError: the file cannot be written.
    """
    path = folder / GITIGNORE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror}", path=str(path)) from exc
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(GITIGNORE_TEXT)
    return True


def create_database(path: Path) -> bool:
    """Create the SQLite database ``path`` (mode 0600), its folder (0700) if missing,
    and the folder's ``.gitignore`` when relaybus made the folder or it is a
    ``.relay`` folder. Returns False when another process created ``path`` first
    (its file is kept, never replaced).

    Raises:
        StoreError: the folder or the file cannot be created.
    """
    folder = path.parent
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir(mode=FOLDER_MODE)
            made_folder = True
        except FileExistsError:
            made_folder = False
        if made_folder or folder.name == RELAY_DIRNAME:
            write_gitignore(folder)
        temporary = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new"
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except OSError as exc:
        where = exc.filename or folder
        raise StoreError(f"cannot create {where}: {exc.strerror}", path=str(path)) from exc
    try:
        try:
            conn = sqlite3.connect(temporary, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")  # writes the header: page 1
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create {path}: {exc}", path=str(path)) from exc
        try:
            os.link(temporary, path)  # fails, rather than replaces, if path exists
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise StoreError(f"cannot create {path}: {exc.strerror}", path=str(path)) from exc
            # No hard links on this file system: a rename, only while nothing is there.
            if path.exists():
                return False
            os.rename(temporary, path)
        return True
    finally:
        for name in [str(temporary), *(f"{temporary}{suffix}" for suffix in COMPANIONS)]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)


def tighten(path: Path, *, folder: bool) -> str | None:
    """Take group and other permissions off the database ``path``, its companions
    (``-wal``, ``-shm``) and, with ``folder``, its folder.

    Returns:
        one notice line saying what was tightened, or None if all was private.
    """
    changed: list[str] = []
    targets = [path.parent] if folder else []
    targets += [path, *(Path(f"{path}{suffix}") for suffix in COMPANIONS)]
    for target in targets:
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
            if not mode & 0o077:
                continue
            os.chmod(target, mode & 0o700)
        except OSError:
            continue  # gone meanwhile, or not ours to change
        changed.append(f"{target.name} {mode:04o}")
    if not changed:
        return None
    return (
        f"made the relay at {path.parent} private: other users could read its messages "
        f"({', '.join(changed)}; now 0700 for the folder, 0600 for files)"
    )


def prepare_sqlite(path: Path, *, create: bool) -> str | None:
    """Everything before SQLite opens ``path``: refuse what is not a database,
    tighten the modes of an existing store, or create a new one.

    Returns:
        a notice line when an existing store was made private, else None.

    Raises:
        NoRelay: ``path`` does not exist and ``create`` is false.
        StoreError: ``path`` is not a database, or cannot be created; its folder
            is a file.
    """
    folder = path.parent
    if os.path.lexists(folder) and not folder.is_dir():
        raise StoreError(f"{folder} is not a folder, so it cannot hold a relay", path=str(folder))
    if not os.path.lexists(path):
        if not create:
            raise no_relay(path)
        if create_database(path):
            return None
    check_database(path)
    return tighten(path, folder=path.parent.name == RELAY_DIRNAME)


@dataclass
class Examination:
    """What :func:`examine` found in an existing SQLite relay file.

    Attributes:
        damage: what ``PRAGMA quick_check`` (or opening the file) reported
            wrong, at most :data:`QUICK_CHECK_ROWS` lines; empty if intact.
        revision: the schema revision in ``alembic_version``; None when the
            file has no relaybus schema (or is damaged).
        loose: the files (and ``.relay`` folder) other users may read, as
            ``"relay.db 0644"``.
    """

    damage: list[str]
    revision: str | None
    loose: list[str]


#: The most problems ``PRAGMA quick_check`` lists before it stops.
QUICK_CHECK_ROWS = 10


def examine(path: Path) -> Examination:
    """Look at the existing SQLite relay ``path`` without changing it: its header,
    SQLite's ``PRAGMA quick_check`` (every page read, O(size)), its schema
    revision and its modes. Only reads.

    Raises:
        StoreError: not a SQLite file (see :func:`check_database`), or it cannot
            be read (permissions, locked), as opposed to damaged.
    """
    check_database(path)
    targets = [path.parent] if path.parent.name == RELAY_DIRNAME else []
    loose: list[str] = []
    for target in [*targets, path, *(Path(f"{path}{suffix}") for suffix in COMPANIONS)]:
        with contextlib.suppress(OSError):
            mode = stat.S_IMODE(target.stat().st_mode)
            if mode & 0o077:
                loose.append(f"{target.name} {mode:04o}")
    damage: list[str] = []
    revision: str | None = None
    try:
        # Not mode=ro: a read-only connection cannot remove the -wal and -shm files
        # it makes. Nothing here writes; closing only checkpoints an empty log.
        conn = sqlite3.connect(path, timeout=5.0)
        try:
            rows = conn.execute(f"PRAGMA quick_check({QUICK_CHECK_ROWS})").fetchall()
            damage = [str(row[0]) for row in rows if row[0] != "ok"]
            if not damage:
                with contextlib.suppress(sqlite3.OperationalError):  # no such table
                    found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                    revision = None if found is None else str(found[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if not getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            raise StoreError(f"cannot read {path}: {exc}", path=str(path)) from exc
        damage = [str(exc)]
    return Examination(damage, revision, loose)


# -- the runtime folder ------------------------------------------------------------


def private_runtime_folder(folder: Path) -> None:
    """Create ``folder`` (mode 0700), or check that an existing one is a folder of
    this user that no one else may write; one only others may read (made by an
    older relaybus) is tightened to 0700.

    Raises:
        StoreError: it cannot be created, is a link or a file, belongs to
            another user, or others may write in it.
    """
    try:
        os.mkdir(folder, FOLDER_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create {folder}: {exc.strerror}", path=str(folder)) from exc
    info = os.lstat(folder)
    fix = "remove it, or point RELAYBUS_TMPDIR at a folder of yours"
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{folder} is not a folder (a link or a file): {fix}", path=str(folder))
    if info.st_uid != os.geteuid():
        raise StoreError(
            f"{folder} belongs to another user (uid {info.st_uid}), who could listen to this "
            f"relay's wake-ups: {fix}",
            path=str(folder),
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise StoreError(
            f"{folder} is writable by other users (mode {mode:04o}): {fix}", path=str(folder)
        )
    if mode & 0o077:
        os.chmod(folder, FOLDER_MODE)


def mark(folder: Path, database: Path) -> None:
    """Record in a per-database runtime folder which database it serves (once)."""
    try:
        fd = os.open(folder / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError:
        return  # already marked (or unwritable: then it is only swept later)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(str(database))


def sweep_runtime(root: Path, *, keep: Path | None = None, force: bool = False) -> int:
    """Remove the per-database folders under ``root`` that nothing uses any more:
    no live socket in them, and either their database no longer exists or (no
    marker: an older relaybus made them) nothing changed in them for
    :data:`IDLE_SECONDS`. Runs at most once per :data:`SWEEP_EVERY` seconds per
    process unless ``force``. Never raises.

    Returns:
        how many folders were removed.
    """
    global _last_sweep
    now = time.monotonic()
    if not force and _last_sweep is not None and now - _last_sweep < SWEEP_EVERY:
        return 0
    _last_sweep = now
    removed = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    skip = None if keep is None else os.fspath(keep)
    for entry in entries:
        if entry.path == skip or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            names = _unused(entry.path)
            if names is not None:
                removed += _remove(Path(entry.path), names)
        except OSError:
            continue  # changed under us: leave it to a later sweep
    return removed


def _unused(folder: str) -> list[str] | None:
    """The entries of ``folder`` to delete if nothing uses it, else None.

    The marker first: a folder whose database is there stays whatever its sockets
    say, and that is most folders; it costs an ``open`` and an ``lstat``, where
    probing each socket costs a ``socket``/``connect``/``close`` (a sweep of a test
    machine's 1,800 folders took 0.19 s of CPU probing first, 0.027 s now)."""
    database: str | None = None  # no marker: an older relaybus's folder, or one being set up
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(os.path.join(folder, MARKER), os.O_RDONLY)
        try:
            database = os.read(fd, MARKER_BYTES).decode("utf-8")
        finally:
            os.close(fd)
    if database is not None and os.path.lexists(database):
        return None
    names = os.listdir(folder)
    if any(_alive(os.path.join(folder, name)) for name in names if name != MARKER):
        return None
    if database is not None:
        return names
    return names if time.time() - os.stat(folder).st_mtime > IDLE_SECONDS else None


def _alive(path: str) -> bool:
    """Whether a process still receives on the datagram socket ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(path)
    except OSError:
        return False  # refused (its process is gone), or not a socket at all
    finally:
        probe.close()
    return True


def _remove(folder: Path, names: list[str]) -> int:
    # Only what was found dead: a waiter that bound a socket since then keeps it,
    # and its socket makes rmdir fail, which leaves the folder in use.
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)
    try:
        os.rmdir(folder)
    except OSError:
        return 0
    return 1
