"""Durable file writes: temp file in the target folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


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
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(dest: Path, data: bytes, *, private: bool = False) -> None:
    """Write `data` to `dest` so a reader (or a crash) sees the old file or the new one, never half.

    Args:
        dest: the file to create or replace.
        data: its new content.
        private: make it 0600 (the data folder's own files); otherwise permissions follow the
            user's umask, as an export the user saves somewhere expects.

    Raises:
        OSError: the folder is missing, read-only or full (`dest` is left as it was).
    """
    # Not mkstemp: its 0600 would make every export private regardless of the user's umask.
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.tmp")
    created = False
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o600 if private else 0o666)
        created = True
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(dest)
        created = False
        fsync_dir(dest.parent)
    finally:
        if created:
            with contextlib.suppress(OSError):
                tmp.unlink()
