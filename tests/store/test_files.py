"""The files of the embedded store: where it is found (like git, never above the
repository), private modes from creation, existing stores tightened, damaged or
foreign files refused and never replaced, and the runtime folder of wake-ups."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybus import NoRelay, Relay, StoreError
from relaybus.settings import Settings
from relaybus.store import Store, find_relay_dir, open_store
from relaybus.store import files as store_files

#: A uid that is not this process's (the tests run as root or as a user: either way).
OTHER_UID = 4242 if os.geteuid() != 4242 else 4343
PAGE = 4096


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def filled_store(folder: Path) -> Path:
    """A relay in ``folder`` with enough rows to span many pages; returns relay.db."""
    with Relay.open(dir=folder) as relay:
        for n in range(40):
            relay.register(f"agent-{n}", label="x" * 200)
    return folder / "relay.db"


# -- where the store is --------------------------------------------------------------


def test_a_stray_relay_folder_above_a_repository_is_never_used(tmp_path: Path) -> None:
    (tmp_path / ".relay").mkdir()
    repo = tmp_path / "work" / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    assert find_relay_dir(repo / "src") == repo / ".relay"


def test_outside_any_repository_only_the_start_folder_counts(tmp_path: Path) -> None:
    (tmp_path / ".relay").mkdir()
    start = tmp_path / "a" / "b"
    start.mkdir(parents=True)
    assert find_relay_dir(start) == start / ".relay"


def test_a_nested_repository_has_its_own_relay(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".relay").mkdir()
    inner = tmp_path / "vendor" / "lib"
    (inner / ".git").mkdir(parents=True)
    (inner / "src").mkdir()
    assert find_relay_dir(inner / "src") == inner / ".relay"
    assert find_relay_dir(tmp_path / "vendor") == tmp_path / ".relay"


def test_relay_open_in_a_fresh_repository_creates_a_private_store_at_its_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")
    folder = tmp_path / ".relay"
    with umask(0o022), Relay.open() as relay:  # a umask that would leave files 0644
        alice = relay.register("alice")
        relay.register("bob")
        alice.send("bob", "hello")
        # While the relay is open SQLite keeps its -wal and -shm beside the database.
        companions = [folder / "relay.db-wal", folder / "relay.db-shm"]
        assert all(p.exists() for p in companions)
        assert {p.name: mode(p) for p in companions} == {p.name: 0o600 for p in companions}
    assert mode(folder) == 0o700
    assert mode(folder / "relay.db") == 0o600
    assert (folder / ".gitignore").read_text(encoding="utf-8") == "*\n"
    assert sorted(p.name for p in folder.iterdir()) == [".gitignore", "relay.db"]


def test_relay_open_without_create_refuses_a_missing_store_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NoRelay, match="no relay here: run `relaybus init`") as caught:
        Relay.open(create=False)
    assert caught.value.exit_code == 2
    assert isinstance(caught.value, StoreError)
    with pytest.raises(NoRelay):
        Relay.open(dir=tmp_path / "elsewhere", create=False)
    assert list(tmp_path.iterdir()) == [tmp_path / ".git"]


def test_an_explicit_database_file_is_created_private_in_a_private_new_folder(
    tmp_path: Path,
) -> None:
    with umask(0o022), Store(f"sqlite:///{tmp_path}/a/b/relay.db"):
        pass
    assert mode(tmp_path / "a" / "b") == 0o700
    assert mode(tmp_path / "a" / "b" / "relay.db") == 0o600
    # Not a .relay folder: relaybus made it, so it is relaybus's and ignored by git too.
    assert (tmp_path / "a" / "b" / ".gitignore").read_text(encoding="utf-8") == "*\n"


def test_an_existing_folder_of_the_user_gets_no_gitignore_and_keeps_its_mode(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    with Store(f"sqlite:///{folder}/relay.db"):
        pass
    assert mode(folder) == 0o755
    assert not (folder / ".gitignore").exists()
    assert mode(folder / "relay.db") == 0o600


def test_an_existing_store_with_loose_modes_is_tightened_on_open_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / ".relay"
    with Relay.open(dir=folder) as relay:
        relay.register("alice")
    os.chmod(folder, 0o755)
    os.chmod(folder / "relay.db", 0o644)

    with caplog.at_level(logging.WARNING, logger="relaybus.store"):
        with Relay.open(dir=folder) as relay:
            assert [a.id for a in relay.agents()] == ["alice"]
            assert relay.store.notice is not None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "private" in warnings[0].getMessage()
    assert ".relay 0755" in warnings[0].getMessage()
    assert "relay.db 0644" in warnings[0].getMessage()
    assert mode(folder) == 0o700
    assert mode(folder / "relay.db") == 0o600

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="relaybus.store"):
        with Relay.open(dir=folder) as relay:
            assert relay.store.notice is None
    assert caplog.records == []


# -- files that are not a relay --------------------------------------------------------


def garbage_pages(path: Path) -> None:
    """Every page after the first (the header and schema root) overwritten with noise."""
    data = bytearray(path.read_bytes())
    data[PAGE:] = os.urandom(len(data) - PAGE)
    path.write_bytes(bytes(data))


def not_sqlite(path: Path) -> None:
    path.write_bytes(b"these are my notes, not a database\n" * 10)


def empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [garbage_pages, not_sqlite, empty], ids=lambda f: f.__name__)
def test_a_relay_db_that_is_not_a_sound_database_is_refused_and_left_as_it_was(
    tmp_path: Path, damage: object
) -> None:
    folder = tmp_path / ".relay"
    path = filled_store(folder)
    assert callable(damage)
    damage(path)
    before = path.read_bytes()

    for create in (True, False):
        with pytest.raises(StoreError) as caught:
            with Relay.open(dir=folder, create=create) as relay:
                relay.register("carol")
        assert not isinstance(caught.value, NoRelay)
        message = caught.value.message
        assert str(path) in message and "relaybus init" in message and "migrate" not in message

    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == [".gitignore", "relay.db"]


def test_damage_found_after_opening_is_a_store_error_on_reads_and_writes(tmp_path: Path) -> None:
    folder = tmp_path / ".relay"
    path = filled_store(folder)
    with contextlib.closing(sqlite3.connect(path)) as raw:
        root = raw.execute("SELECT rootpage FROM sqlite_master WHERE name = 'agents'").fetchone()
    data = bytearray(path.read_bytes())
    start = (root[0] - 1) * PAGE
    data[start : start + PAGE] = os.urandom(PAGE)  # only the agents table's root page
    path.write_bytes(bytes(data))

    with Relay.open(dir=folder) as relay:  # the schema and its version are intact
        with pytest.raises(StoreError, match="is damaged"):
            relay.agents()
        with pytest.raises(StoreError, match="is damaged"):
            relay.register("carol")


def test_a_new_database_never_replaces_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / ".relay" / "relay.db"
    path.parent.mkdir()
    path.write_bytes(b"someone else's")
    assert store_files.create_database(path) is False
    assert path.read_bytes() == b"someone else's"
    assert sorted(p.name for p in path.parent.iterdir()) == [".gitignore", "relay.db"]


# -- the runtime folder of wake-up sockets ---------------------------------------------


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary folder of the test's own as ``$RELAYBUS_TMPDIR`` (short: socket paths
    have at most 107 bytes); yields ``relaybus-<uid>`` in it."""
    base = Path(tempfile.mkdtemp(prefix="rbt-", dir="/tmp"))
    monkeypatch.setenv("RELAYBUS_TMPDIR", str(base))
    try:
        yield base / f"relaybus-{os.getuid()}"
    finally:
        shutil.rmtree(base)


def test_the_runtime_folder_is_created_private(tmp_path: Path, runtime: Path) -> None:
    with umask(0o022), Store(f"sqlite:///{tmp_path}/relay.db") as store:
        with store.listen():
            assert mode(runtime) == 0o700
            (folder,) = runtime.iterdir()
            assert mode(folder) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_runtime_folder_of_another_user_is_refused(tmp_path: Path, runtime: Path) -> None:
    runtime.mkdir(mode=0o700)
    os.chown(runtime, OTHER_UID, -1)
    with pytest.raises(StoreError, match="belongs to another user"):
        Store(f"sqlite:///{tmp_path}/relay.db")
    # ... and one made by another user after the store opened, before anyone waits.
    os.rmdir(runtime)
    with Store(f"sqlite:///{tmp_path}/relay.db") as store:
        runtime.mkdir(mode=0o700)
        os.chown(runtime, OTHER_UID, -1)
        with pytest.raises(StoreError, match="belongs to another user"):
            with store.listen():
                pass
        with store.write() as conn:  # a write still commits; it wakes no one there
            conn.exec_driver_sql("SELECT 1")
    assert list(runtime.iterdir()) == []


def test_a_runtime_folder_others_may_write_in_is_refused(tmp_path: Path, runtime: Path) -> None:
    runtime.mkdir()
    os.chmod(runtime, 0o777)
    with pytest.raises(StoreError, match="writable by other users"):
        Store(f"sqlite:///{tmp_path}/relay.db")


def test_a_runtime_folder_only_others_may_read_is_tightened(tmp_path: Path, runtime: Path) -> None:
    runtime.mkdir()
    os.chmod(runtime, 0o755)  # what older relaybus versions made
    with Store(f"sqlite:///{tmp_path}/relay.db"):
        assert mode(runtime) == 0o700


def dead_socket(path: Path) -> None:
    """A socket file whose process is gone (bound, then closed without unlinking)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.close()


def database_folder(runtime: Path, name: str, database: Path | None) -> Path:
    folder = runtime / name
    folder.mkdir(parents=True, mode=0o700)
    if database is not None:
        (folder / store_files.MARKER).write_text(str(database), encoding="utf-8")
    return folder


def test_runtime_folders_of_databases_that_are_gone_are_removed_when_unused(
    tmp_path: Path, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone" / "relay.db"
    kept_db = tmp_path / "kept.db"
    kept_db.write_bytes(b"")
    removed_dead = database_folder(runtime, "dead", gone)
    dead_socket(removed_dead / "1-aa")
    removed_empty = database_folder(runtime, "empty", gone)
    existing = database_folder(runtime, "existing", kept_db)
    dead_socket(existing / "4-dd")  # a waiter of a database that is still there died
    in_use = database_folder(runtime, "in-use", gone)
    legacy_old = database_folder(runtime, "legacy-old", None)
    dead_socket(legacy_old / "2-bb")
    hour_ago = time.time() - 3600
    os.utime(legacy_old, (hour_ago, hour_ago))
    legacy_fresh = database_folder(runtime, "legacy-fresh", None)
    monkeypatch.setattr(store_files, "_last_sweep", None)

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as live:
        live.bind(str(in_use / "3-cc"))
        with Store(f"sqlite:///{tmp_path}/relay.db") as store, store.listen():
            left = {p.name for p in runtime.iterdir()}
            (mine,) = left - {"existing", "in-use", "legacy-fresh"}
            assert (runtime / mine / store_files.MARKER).read_text(encoding="utf-8") == str(
                tmp_path / "relay.db"
            )
            store.wake()  # the marker is not taken for a waiter

    assert left == {mine, "existing", "in-use", "legacy-fresh"}
    for folder in (removed_dead, removed_empty, legacy_old):
        assert not folder.exists()
    assert existing.exists() and legacy_fresh.exists() and in_use.exists()
    assert (runtime / mine / store_files.MARKER).exists()


def test_open_store_reads_the_location_from_settings_without_creating(tmp_path: Path) -> None:
    with pytest.raises(NoRelay):
        open_store(Settings(dir=tmp_path / ".relay"), create=False)
    assert not (tmp_path / ".relay").exists()
