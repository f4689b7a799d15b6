"""Durable file writes: temp file in the target folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from app.store.db import StoreError


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename is only durable once its directory is synced).

    Args:
        folder: the directory to sync; platforms that cannot open directories skip it.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; NTFS journals renames itself.
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(dest: Path, data: bytes) -> None:
    """Write `data` to `dest` so a reader sees the old file or the new one, never a torn one.

    Args:
        dest: the file to create or replace (permissions follow the user's umask).
        data: its new content.

    Raises:
        StoreError: the folder is missing, read-only or full (the sentence names `dest`).
    """
    # Not mkstemp: its 0600 would make every export private regardless of the user's umask.
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.tmp")
    created = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        created = True
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(dest)
        created = False
        fsync_dir(dest.parent)
    except OSError as exc:
        raise StoreError(f"Cannot write {dest}: {exc.strerror or exc}.") from exc
    finally:
        if created:
            with contextlib.suppress(OSError):
                tmp.unlink()


def ensure_writable_folder(folder: Path) -> None:
    """Create a data folder (mode 0700) and prove it is writable, with a sentence if it is not.

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
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        raise StoreError(
            f"The data folder {folder} is read-only ({exc.strerror or exc}); Scout Desk keeps "
            f"its sessions there. {hint}"
        ) from exc
