"""The small SQLite layer: connect, migrate by `user_version`, transactions, and error mapping."""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from app.core.errors import ExpectedError
from app.store.schema import MIGRATIONS

log = logging.getLogger(__name__)

#: Seconds a writer waits for another process (the CLI beside the GUI) before "locked".
BUSY_TIMEOUT_S = 5.0
#: Longest single wait inside SQLite's own busy handler; between such waits we back off and log.
_LOCK_ATTEMPT_S = 1.0
_BACKOFF_FIRST_S, _BACKOFF_MAX_S = 0.05, 1.0

# SQLite primary result codes that describe the machine, not a bug in our SQL.
_BUSY, _LOCKED, _NOMEM, _READONLY, _IOERR = 5, 6, 7, 8, 10
_CORRUPT, _FULL, _CANTOPEN, _PROTOCOL, _PERM, _NOTADB = 11, 13, 14, 15, 3, 26


class StoreError(ExpectedError):
    """An expected storage failure, carrying one plain sentence for the user."""


class StoreLockedError(StoreError):
    """Another program held the database longer than the caller was willing to wait.

    Nothing was written; the same call can succeed later (a streaming answer keeps its text
    and saves it at the next checkpoint).
    """


def _sentence_for(code: int, path: Path, detail: str) -> str | None:
    """Return the user sentence for an environment error code, or None when it is a bug."""
    if code in (_BUSY, _LOCKED, _PROTOCOL):
        return f"{path} is locked by another program (is Scout Desk already running?) ({detail})."
    if code in (_READONLY, _PERM, _CANTOPEN):
        return f"Cannot open or write {path}: the file or its folder is read-only ({detail})."
    if code == _FULL:
        return f"The disk holding {path} is full; free some space and try again ({detail})."
    if code == _IOERR:
        return f"Reading or writing {path} failed with a disk error ({detail})."
    if code in (_CORRUPT, _NOTADB):
        return (
            f"{path} is damaged or is not a Scout Desk database ({detail}). It was left "
            "untouched; move it aside to start a new one, or restore it from a backup."
        )
    if code == _NOMEM:
        return f"Out of memory while using {path} ({detail})."
    return None


def as_store_error(exc: sqlite3.Error, path: Path) -> StoreError | None:
    """Translate an sqlite3 error caused by the environment into a `StoreError`.

    Args:
        exc: the error sqlite3 raised.
        path: the database file, named in the sentence.

    Returns:
        A `StoreError` for disk full, locked, read-only, I/O and corruption errors; None for
        errors that mean our own SQL is wrong (those must surface as bugs).
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    sentence = _sentence_for(code & 0xFF, path, str(exc))
    if sentence is None:
        return None
    return StoreLockedError(sentence) if code & 0xFF in (_BUSY, _LOCKED) else StoreError(sentence)


@contextmanager
def environment_errors(path: Path) -> Iterator[None]:
    """Re-raise environment errors from SQLite or the OS as `StoreError`; let bugs through.

    Args:
        path: the file named in the sentence.
    """
    try:
        yield
    except sqlite3.Error as exc:
        mapped = as_store_error(exc, path)
        if mapped is None:
            raise
        raise mapped from exc
    except OSError as exc:
        raise StoreError(f"Cannot use {path}: {exc.strerror or exc}.") from exc


def _lenient_text(data: bytes) -> str:
    """Decode a TEXT value, replacing what is not UTF-8 instead of failing the whole query.

    Our own code only writes valid UTF-8, but another tool (or a damaged page) can leave a title
    that is not, and sqlite3's default decoder would then fail every listing that reads it.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        log.warning("a text value in the database is not UTF-8; shown with replacements")
        return data.decode("utf-8", errors="replace")


def connect(path: Path, *, check: bool = True) -> sqlite3.Connection:
    """Open the database in WAL mode with full fsync and foreign keys.

    The integrity check runs before anything is written, so a damaged file is reported and left
    exactly as it was found.

    Args:
        path: the database file (created when missing).
        check: run `PRAGMA quick_check` first.

    Returns:
        A connection in autocommit mode; use `transaction()` to group writes.

    Raises:
        StoreError: the file is damaged, locked, read-only or on a full disk.
    """
    with environment_errors(path):
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.text_factory = _lenient_text
        try:
            if check:
                rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
                if rows != ["ok"]:
                    raise StoreError(
                        f"{path} is damaged ({'; '.join(map(str, rows[:3]))}). It was left "
                        "untouched; move it aside to start a new one, or restore it from a backup."
                    )
            mode = _switch_to_wal(conn)
            if str(mode).lower() != "wal":
                raise StoreError(f"Cannot use {path} in write-ahead mode (got {mode!r}).")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
    return conn


def _switch_to_wal(conn: sqlite3.Connection) -> str:
    """Turn on write-ahead logging, waiting while another program holds the database.

    Changing the journal mode needs an exclusive lock and SQLite answers "locked" at once
    instead of calling the busy handler, so two programs opening a fresh data folder together
    (the GUI and the CLI) would fail without this wait.

    Returns:
        The journal mode now in force.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _begin_immediate(conn: sqlite3.Connection, patience_s: float) -> None:
    """Take the write lock, retrying with back-off while another program holds it.

    A large import holds the lock for seconds; a writer that gave up after SQLite's single
    busy wait would cut a streaming answer short. In WAL mode the lock is the only thing a
    writer waits for, so once BEGIN IMMEDIATE succeeds the commit does not wait again.

    Raises:
        sqlite3.OperationalError: still locked after `patience_s` (or any other failure).
    """
    deadline = time.monotonic() + patience_s
    delay = _BACKOFF_FIRST_S
    while True:
        remaining = deadline - time.monotonic()
        wait_ms = max(1, int(min(remaining, _LOCK_ATTEMPT_S) * 1000))
        conn.execute(f"PRAGMA busy_timeout = {wait_ms:d}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Later statements (reads outside a transaction) keep the usual wait.
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000):d}")
            return
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in (_BUSY, _LOCKED) or time.monotonic() + delay >= deadline:
                raise
            log.info("the database is locked by another program; retrying in %.2f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX_S)


@contextmanager
def transaction(
    conn: sqlite3.Connection, *, patience_s: float = BUSY_TIMEOUT_S
) -> Iterator[sqlite3.Connection]:
    """Run the block as one transaction: commit on success, roll back on any exception.

    Nested use becomes a savepoint, so helpers can be transactional on their own and still
    compose. BEGIN IMMEDIATE takes the write lock up front, so two processes never deadlock
    upgrading a read lock.

    Args:
        conn: a connection from `connect()` (autocommit mode).
        patience_s: how long to keep retrying while another program holds the write lock.

    Returns:
        The same connection, for convenience.
    """
    if conn.in_transaction:
        conn.execute("SAVEPOINT nested")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK TO nested")
            conn.execute("RELEASE nested")
            raise
        conn.execute("RELEASE nested")
        return
    _begin_immediate(conn, patience_s)
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # Also after a failed COMMIT (disk full): never leave the connection mid-transaction.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the database's `PRAGMA user_version`."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def backup_path(path: Path, version: int) -> Path:
    """Return where the pre-migration copy of a schema-`version` database goes."""
    return path.with_name(f"{path.name}.bak-v{version}")


def _backup(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    """Copy the live database with SQLite's backup API (consistent even mid-WAL), atomically."""
    dest = backup_path(path, version)
    # A name of its own: two programs opening the store together may both back it up, and a
    # shared temp file would be deleted under the other's feet ("disk I/O error").
    tmp = dest.with_name(f"{dest.name}.{secrets.token_hex(6)}.tmp")
    try:
        target = sqlite3.connect(str(tmp))
        try:
            conn.backup(target)
        finally:
            target.close()
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)  # only left when something above failed
    return dest


def migrate(
    conn: sqlite3.Connection, path: Path, migrations: Sequence[Sequence[str]] = MIGRATIONS
) -> int:
    """Bring the schema up to date, backing the file up first.

    Each migration runs in its own transaction together with its `user_version` bump, so a
    failure leaves the database at the previous version, untouched.

    Args:
        conn: a connection from `connect()`.
        path: the database file (the backup goes beside it).
        migrations: migration `i` holds the statements taking schema `i` to `i + 1`.

    Returns:
        The schema version the database now has.

    Raises:
        StoreError: the database is newer than this code, or a step failed.
    """
    latest = len(migrations)
    with environment_errors(path):
        current = schema_version(conn)
        if current > latest:
            raise StoreError(
                f"{path} was written by a newer Scout Desk (schema {current}; this version reads "
                f"up to {latest}). Update Scout Desk, or move the file aside to start afresh."
            )
        if current == latest:
            return current
        has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        if current > 0 or has_tables:
            saved = _backup(conn, path, current)
            log.info("backed up %s (schema %d) to %s", path, current, saved)
        for version in range(current, latest):
            try:
                with transaction(conn):
                    if schema_version(conn) > version:
                        continue  # another process (CLI beside the GUI) migrated it meanwhile
                    for statement in migrations[version]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {version + 1:d}")
            except sqlite3.Error as exc:
                if as_store_error(exc, path) is not None:
                    raise
                raise StoreError(
                    f"Could not upgrade {path} from schema {version} to {version + 1} ({exc}); "
                    f"it was left at schema {version}."
                ) from exc
            log.info("migrated %s to schema %d", path, version + 1)
    return latest
