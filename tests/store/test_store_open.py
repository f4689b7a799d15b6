"""Opening a store: bad folders and damaged or newer databases are refused, never replaced."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from app.core.messages import StopReason
from app.store.db import StoreError
from app.store.schema import MIGRATIONS
from app.store.sessions import DB_NAME, INTERRUPTED, SessionStore


def test_open_creates_a_private_data_folder(data_dir: Path) -> None:
    store = SessionStore.open(data_dir)
    store.close()
    assert (data_dir / DB_NAME).is_file()
    assert (data_dir / "blobs").is_dir()
    assert data_dir.stat().st_mode & 0o777 == 0o700


def test_a_data_folder_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="Cannot create the data folder") as caught:
        SessionStore.open(blocker / "data")
    assert str(blocker / "data") in caught.value.message


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root ignores folder permissions, so chmod cannot make a folder read-only here",
)
def test_a_read_only_data_folder_is_refused(data_dir: Path) -> None:
    SessionStore.open(data_dir).close()
    data_dir.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="read-only") as caught:
            SessionStore.open(data_dir)
        assert str(data_dir) in caught.value.message
    finally:
        data_dir.chmod(0o700)


def _immutable(folder: Path, on: bool) -> bool:
    """Make a folder unwritable even for root (ext4/xfs immutable flag); False where unsupported."""
    if shutil.which("chattr") is None:
        return False
    flag = "+i" if on else "-i"
    return subprocess.run(["chattr", flag, str(folder)], capture_output=True).returncode == 0


def test_an_unwritable_data_folder_is_refused_even_for_root(data_dir: Path) -> None:
    # chmod does not stop root (CI runs as root), the immutable flag does: a real unwritable folder.
    store = SessionStore.open(data_dir)
    store.create_session("kept")
    store.close()
    if not _immutable(data_dir, True):
        pytest.skip("this filesystem has no immutable flag (chattr +i)")
    try:
        with pytest.raises(StoreError, match="read-only") as caught:
            SessionStore.open(data_dir)
        assert str(data_dir) in caught.value.message
    finally:
        _immutable(data_dir, False)
    reopened = SessionStore.open(data_dir)  # nothing was lost or replaced meanwhile
    assert [s.title for s in reopened.list_sessions()] == ["kept"]
    reopened.close()


def test_a_database_path_that_is_a_folder_is_refused(data_dir: Path) -> None:
    (data_dir / DB_NAME).mkdir(parents=True)
    with pytest.raises(StoreError, match="not a regular file"):
        SessionStore.open(data_dir)


def test_a_corrupt_database_is_refused_named_and_left_as_it_was(data_dir: Path) -> None:
    data_dir.mkdir()
    garbage = os.urandom(64) + b"SQLite format 2\x00" * 512
    (data_dir / DB_NAME).write_bytes(garbage)
    with pytest.raises(StoreError) as caught:
        SessionStore.open(data_dir)
    assert str(data_dir / DB_NAME) in caught.value.message
    # Never silently started afresh: the file is exactly what it was, and no empty twin exists.
    assert (data_dir / DB_NAME).read_bytes() == garbage
    assert sorted(p.name for p in data_dir.iterdir()) == [DB_NAME]


def test_a_database_with_damaged_pages_fails_the_integrity_check(data_dir: Path) -> None:
    store = SessionStore.open(data_dir)
    session = store.create_session()
    for i in range(200):
        store.add_user_message(session.id, f"message number {i} " + "padding " * 40)
    store.close()
    path = data_dir / DB_NAME
    raw = bytearray(path.read_bytes())
    page = 4096
    assert len(raw) > 8 * page
    # Scribble over the middle of the file, leaving the header page intact.
    raw[3 * page : 6 * page] = os.urandom(3 * page)
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError) as caught:
        SessionStore.open(data_dir)
    assert str(path) in caught.value.message
    assert path.read_bytes() == bytes(raw)


def test_a_database_from_a_newer_version_is_refused(data_dir: Path) -> None:
    SessionStore.open(data_dir).close()
    conn = sqlite3.connect(data_dir / DB_NAME)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(
        StoreError,
        match=rf"newer Scout Desk \(schema 7; this version reads up to {len(MIGRATIONS)}\)",
    ):
        SessionStore.open(data_dir)


def test_answers_a_crash_left_streaming_are_finalised_as_cancelled(data_dir: Path) -> None:
    store = SessionStore.open(data_dir)
    session = store.create_session()
    question = store.add_user_message(session.id, "what is in the picture?")
    answer = store.begin_assistant_message(session.id)
    store.checkpoint_message(answer.id, "A red square and")
    store.close()  # as good as a crash: finish_message never ran

    reopened = SessionStore.open(data_dir)
    try:
        user, assistant = reopened.messages(session.id)
        assert user.id == question.id and user.stop_reason is None
        assert assistant.id == answer.id
        assert assistant.text == "A red square and"
        assert assistant.stop_reason is StopReason.CANCELLED
        assert assistant.error == INTERRUPTED
    finally:
        reopened.close()


def _open_after(start: threading.Barrier, folder: Path, errors: list[BaseException]) -> None:
    try:
        start.wait()
        SessionStore.open(folder).close()
    except BaseException as exc:  # reported by the test's assertion
        errors.append(exc)


def test_two_programs_creating_the_same_store_at_once_both_succeed(tmp_path: Path) -> None:
    """The GUI and the CLI may both start on a fresh data folder: one migrates, one waits."""
    # Four openers, twenty fresh folders: enough to hit the journal-mode switch and the
    # pre-migration backup racing each other (both failed this test before they waited).
    for attempt in range(20):
        start = threading.Barrier(4)
        errors: list[BaseException] = []
        args = (start, tmp_path / f"race-{attempt}", errors)
        threads = [threading.Thread(target=_open_after, args=args) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
