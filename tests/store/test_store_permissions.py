"""Private by default: the data folder 0700 and everything in it 0600, also for old data."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app.core import paths
from app.core.drafts import save_draft
from app.core.settings import Settings, save_settings
from app.store.sessions import DB_NAME, SessionStore

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _permissive_umask():
    """The umask most desktops have (0022): privacy must come from our code, not the umask."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_store_is_private(tmp_path: Path) -> None:
    data_dir = paths.data_dir(tmp_path / "data")
    with SessionStore.open(data_dir) as store:
        session = store.create_session()
        store.add_user_message(session.id, "hello")
        sha = store.blobs.put_bytes(b"an attachment")
        database = data_dir / DB_NAME
        # While open, SQLite's write-ahead log and shared-memory files hold chat text too.
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            assert _mode(path) == 0o600, path
        assert _mode(store.blobs.path(sha)) == 0o600
    save_settings(paths.settings_file(data_dir), Settings())
    save_draft(data_dir, "a draft")
    assert _mode(paths.settings_file(data_dir)) == 0o600
    for folder in (data_dir, data_dir / "blobs", data_dir / "leases"):
        assert _mode(folder) == 0o700, folder
    for path in data_dir.rglob("*"):
        assert _mode(path) & 0o077 == 0, f"{path} is readable by others"


def test_loose_data_from_an_older_version_is_made_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with SessionStore.open(data_dir) as store:
        store.create_session()
    data_dir.chmod(0o755)
    (data_dir / DB_NAME).chmod(0o644)

    with SessionStore.open(data_dir):
        assert _mode(data_dir) == 0o700
        assert _mode(data_dir / DB_NAME) == 0o600
