"""Opening a store: migrations on open, refusing newer schemas, SQLite's WAL, finding .relay/."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from relaybus.errors import StoreError
from relaybus.service import Service
from relaybus.settings import Settings
from relaybus.store import Store, find_relay_dir, migrate, open_store, sqlite_url
from relaybus.store.migrate import HEAD
from relaybus.store.schema import metadata

TABLES = {"agents", "messages", "deliveries", "tasks", "task_events", "events"}


def revision(store: Store) -> str | None:
    with store.read() as conn:
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def test_head_constant_matches_the_migration_scripts() -> None:
    assert migrate.HEAD == migrate.script_head()


def test_opening_an_empty_database_applies_every_migration(empty_database_url: str) -> None:
    with Store(empty_database_url) as store:
        with store.read() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert TABLES <= tables
        assert {t.name for t in metadata.sorted_tables} <= tables
        assert revision(store) == migrate.HEAD


def test_opening_without_migrate_on_open_leaves_the_database_empty(
    empty_database_url: str,
) -> None:
    with Store(empty_database_url, migrate_on_open=False) as store:
        with store.read() as conn:
            assert not TABLES & set(sa.inspect(conn).get_table_names())
        assert store.migrate() == migrate.HEAD
        assert revision(store) == migrate.HEAD


def test_reopening_a_current_database_changes_nothing(store: Store) -> None:
    from relaybus.service import Service

    Service(store).register("alice")
    url = store.url.render_as_string(hide_password=False)
    with Store(url) as again:
        assert revision(again) == migrate.HEAD
        assert again.migrate() == migrate.HEAD
        assert [a.id for a in Service(again).list_agents()] == ["alice"]


def test_a_newer_schema_that_old_code_cannot_serve_is_refused(store: Store) -> None:
    with store.write() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        conn.execute(sa.text("UPDATE relay_meta SET value = '9999' WHERE key = 'compatible_from'"))
    url = store.url.render_as_string(hide_password=False)
    with pytest.raises(StoreError, match="9999"):
        Store(url)
    # The refusal did not touch the database either.
    assert revision(store) == "9999"


def test_a_newer_expand_only_schema_is_served_without_migrating(store: Store) -> None:
    # A newer relaybus migrated (adding a table) and left compatible_from at our head:
    # this older replica restarts during the rolling upgrade and keeps serving.
    with store.write() as conn:
        conn.execute(sa.text("CREATE TABLE from_the_future (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    url = store.url.render_as_string(hide_password=False)
    with Store(url) as older:
        service = Service(older)
        service.register("alice")
        assert [a.id for a in service.list_agents()] == ["alice"]
        # `relaybus migrate` from the older version still refuses to touch it.
        with pytest.raises(StoreError, match="newer than this relaybus"):
            older.migrate()
    assert revision(store) == "9999"


def test_an_unsupported_database_url_is_refused() -> None:
    with pytest.raises(StoreError, match="unsupported"):
        Store("mysql://localhost/relay")


def test_an_in_memory_sqlite_database_is_refused() -> None:
    with pytest.raises(StoreError, match="needs a file"):
        Store("sqlite:///:memory:")


def test_sqlite_store_runs_in_wal_mode(sqlite_store: Store) -> None:
    with sqlite_store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    # WAL is a property of the file, so every other process sees it too.
    assert sqlite_store.path is not None
    # (sqlite3.Connection's own context manager commits but never closes.)
    with contextlib.closing(sqlite3.connect(sqlite_store.path)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_store_creates_its_folder(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path}/a/b/relay.db") as store:
        assert store.path == tmp_path / "a" / "b" / "relay.db"
    assert (tmp_path / "a" / "b" / "relay.db").is_file()


def test_find_relay_dir_prefers_an_existing_relay_folder_on_the_way_up(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub" / ".relay").mkdir(parents=True)
    deep = tmp_path / "sub" / "pkg" / "mod"
    deep.mkdir(parents=True)
    assert find_relay_dir(deep) == tmp_path / "sub" / ".relay"


def test_find_relay_dir_uses_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_relay_dir(deep) == tmp_path / ".relay"


def test_find_relay_dir_recognises_a_git_file_of_a_worktree(tmp_path: Path) -> None:
    (tmp_path / ".git").write_text("gitdir: /elsewhere\n", encoding="utf-8")
    deep = tmp_path / "src"
    deep.mkdir()
    assert find_relay_dir(deep) == tmp_path / ".relay"


def test_find_relay_dir_outside_a_repository_is_the_start_folder(tmp_path: Path) -> None:
    start = tmp_path / "loose"
    start.mkdir()
    assert find_relay_dir(start) == start / ".relay"


def test_find_relay_dir_defaults_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")
    assert find_relay_dir() == tmp_path / ".relay"


def test_open_store_creates_relay_db_in_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")
    with open_store() as store:
        assert store.path == tmp_path / ".relay" / "relay.db"
    assert (tmp_path / ".relay" / "relay.db").is_file()


def test_relaybus_dir_overrides_the_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAYBUS_DIR", str(tmp_path / "elsewhere"))
    with open_store() as store:
        assert store.path == tmp_path / "elsewhere" / "relay.db"
    assert not (tmp_path / ".relay").exists()


def test_settings_dir_overrides_the_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    with open_store(Settings(dir=tmp_path / "mine")) as store:
        assert store.path == tmp_path / "mine" / "relay.db"
    assert not (tmp_path / ".relay").exists()


def test_settings_database_wins_over_dir(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db")
    with open_store(Settings(dir=tmp_path / "ignored", database=url)) as store:
        assert store.path == tmp_path / "db" / "relay.db"
    assert not (tmp_path / "ignored").exists()


def test_migrate_after_writes_hands_the_writer_back(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/relay.db")
    try:
        service = Service(store)
        service.register("alice")
        assert store.migrate() == HEAD
        service.register("bob")  # the writer reconnects after migrating
        assert {a.id for a in service.list_agents()} == {"alice", "bob"}
    finally:
        store.close()
