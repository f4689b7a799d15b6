"""Durable file writes: temp file in the target folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from app.core.atomic import write_atomically as core_write_atomically
from app.core.paths import make_private
from app.store.db import StoreError


def write_atomically(dest: Path, data: bytes) -> None:
    """`app.core.atomic.write_atomically`, with failures as a `StoreError` naming `dest`.

    Raises:
        StoreError: the folder is missing, read-only or full.
    """
    try:
        core_write_atomically(dest, data)
    except OSError as exc:
        raise StoreError(f"Cannot write {dest}: {exc.strerror or exc}.") from exc


def ensure_private_file(path: Path) -> None:
    """Create the database file 0600 when missing, else make it and its side files private.

    SQLite creates a database with the umask's mode (0644 by default) and gives its `-wal` and
    `-shm` files the database's mode, so creating the file 0600 first keeps all three private.

    Raises:
        StoreError: the file cannot be created.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for side in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            if side.exists():
                make_private(side)
        return
    except OSError as exc:
        raise StoreError(f"Cannot create {path}: {exc.strerror or exc}.") from exc
    os.close(fd)


def ensure_writable_folder(folder: Path) -> None:
    """Create a data folder (mode 0700) and prove it is writable, with a sentence if it is not.

    An existing folder that others can read is made private (0700).

    Args:
        folder: the folder.

    Raises:
        StoreError: it cannot be created, is not a folder, or is read-only.
    """
    hint = "Choose another folder with --data-dir or SCOUT_DESK_DATA_DIR."
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise StoreError(f"Cannot create the data folder {folder}: {reason}. {hint}") from exc
    if not folder.is_dir():
        raise StoreError(f"The data folder {folder} is not a folder. {hint}")
    make_private(folder)
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        raise StoreError(
            f"The data folder {folder} is read-only ({exc.strerror or exc}); Scout Desk keeps "
            f"its sessions there. {hint}"
        ) from exc
