"""The SQLite layer: pragmas, migrations and backups, newer schemas, transactions, errors."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from app.store.db import (
    StoreError,
    StoreLockedError,
    backup_path,
    connect,
    environment_errors,
    migrate,
    schema_version,
    transaction,
)
from app.store.schema import MIGRATIONS
from app.store.sessions import SessionStore


def test_connect_sets_wal_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.sqlite3")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()


def test_migrate_from_an_empty_file_creates_the_schema_without_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"")
    conn = connect(path)
    try:
        assert migrate(conn, path) == len(MIGRATIONS)
        assert schema_version(conn) == len(MIGRATIONS)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"sessions", "messages", "message_attachments", "messages_fts"} <= tables
        # Nothing existed to protect, so nothing was copied.
        assert list(tmp_path.glob("*.bak-*")) == []
        # A second run is a no-op.
        assert migrate(conn, path) == len(MIGRATIONS)
    finally:
        conn.close()


def test_migrating_an_old_database_backs_it_up_first(tmp_path: Path) -> None:
    """A fake v0 file with data goes to v1; the backup holds the v0 data, unchanged."""
    path = tmp_path / "s.sqlite3"
    conn = connect(path)
    conn.execute("CREATE TABLE legacy (note TEXT)")
    conn.execute("INSERT INTO legacy VALUES ('keep me')")
    migrate(conn, path, migrations=(("CREATE TABLE added (x INTEGER)",),))
    conn.close()

    backup = backup_path(path, 0)
    assert backup.name == "s.sqlite3.bak-v0"
    saved = sqlite3.connect(backup)
    try:
        assert saved.execute("PRAGMA user_version").fetchone()[0] == 0
        assert saved.execute("SELECT note FROM legacy").fetchall() == [("keep me",)]
        assert saved.execute("SELECT name FROM sqlite_master WHERE name = 'added'").fetchall() == []
    finally:
        saved.close()


def test_a_version_bump_backs_up_the_previous_version_and_applies_the_step(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    conn = connect(path)
    migrate(conn, path)
    conn.execute("INSERT INTO sessions (id, title, created_at, updated_at) VALUES ('a', 't', 1, 1)")
    current = len(MIGRATIONS)
    bumped = (*MIGRATIONS, ("ALTER TABLE sessions ADD COLUMN pinned INTEGER DEFAULT 0",))
    assert migrate(conn, path, migrations=bumped) == current + 1
    assert conn.execute("SELECT pinned FROM sessions").fetchall() == [(0,)]
    conn.close()

    saved = sqlite3.connect(backup_path(path, current))
    try:
        assert saved.execute("PRAGMA user_version").fetchone()[0] == current
        assert saved.execute("SELECT id FROM sessions").fetchall() == [("a",)]
    finally:
        saved.close()


def test_a_failing_migration_leaves_the_database_at_its_old_version(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    conn = connect(path)
    migrate(conn, path)
    broken = (*MIGRATIONS, ("CREATE TABLE fine (x)", "THIS IS NOT SQL"))
    with pytest.raises(StoreError, match=r"Could not upgrade .*s\.sqlite3"):
        migrate(conn, path, migrations=broken)
    assert schema_version(conn) == len(MIGRATIONS)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'fine'").fetchall() == []
    conn.close()


def test_a_newer_schema_is_refused_with_a_plain_sentence(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    conn = connect(path)
    conn.execute("PRAGMA user_version = 7")
    with pytest.raises(StoreError) as caught:
        migrate(conn, path)
    conn.close()
    message = caught.value.message
    assert f"newer Scout Desk (schema 7; this version reads up to {len(MIGRATIONS)})" in message
    assert str(path) in message
    assert list(tmp_path.glob("*.bak-*")) == []


def test_garbage_bytes_are_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    garbage = b"this is not a database at all " * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreError) as caught:
        connect(path)
    assert str(path) in caught.value.message
    assert "damaged or is not a Scout Desk database" in caught.value.message
    assert path.read_bytes() == garbage


def test_transaction_commits_or_rolls_back_as_a_whole(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.sqlite3")
    conn.execute("CREATE TABLE t (x INTEGER)")
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("boom")
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (3)")
        with pytest.raises(RuntimeError), transaction(conn):  # nested: a savepoint
            conn.execute("INSERT INTO t VALUES (4)")
            raise RuntimeError("inner")
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 3]
    assert not conn.in_transaction
    conn.close()


def test_a_locked_database_becomes_a_store_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    holder = connect(path)
    holder.execute("CREATE TABLE t (x)")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        locked = pytest.raises(StoreError, match="is locked by another program")
        with locked as caught, environment_errors(path):
            other.execute("BEGIN IMMEDIATE")
        assert str(path) in caught.value.message
    finally:
        holder.execute("ROLLBACK")
        other.close()
        holder.close()


def test_a_bug_in_our_sql_is_not_disguised_as_an_environment_error(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    conn = connect(path)
    with pytest.raises(sqlite3.OperationalError, match="no such table"), environment_errors(path):
        conn.execute("SELECT * FROM nowhere")
    conn.close()


def _hold_write_lock(path: Path, seconds: float) -> threading.Thread:
    """Another program's long write (a large import): the write lock, held for `seconds`."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")

    def release() -> None:
        time.sleep(seconds)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_a_write_waits_out_a_lock_held_longer_than_one_busy_wait(tmp_path: Path) -> None:
    with SessionStore.open(tmp_path, lock_patience_s=10.0) as store:
        session = store.create_session()
        holder = _hold_write_lock(store.path, 2.5)  # longer than one 1 s attempt
        store.add_user_message(session.id, "saved once the lock is free")
        holder.join()
        assert store.messages(session.id)[0].text == "saved once the lock is free"


def test_a_checkpoint_gives_up_quickly_and_says_locked(tmp_path: Path) -> None:
    with SessionStore.open(tmp_path, lock_patience_s=10.0) as store:
        session = store.create_session()
        answer = store.begin_assistant_message(session.id)
        holder = _hold_write_lock(store.path, 3.0)
        try:
            with pytest.raises(StoreLockedError, match="locked by another program"):
                store.checkpoint_message(answer.id, "kept in memory for the next checkpoint")
        finally:
            holder.join()
        store.checkpoint_message(answer.id, "saved at the next one")
        assert store.messages(session.id)[0].text == "saved at the next one"
