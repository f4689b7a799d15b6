"""Writer leases: which process owns an unfinished answer, told apart from one that died.

Every open `SessionStore` holds an exclusive OS file lock on `leases/<lease id>.lock` for as long
as it is open, and stamps the answers it streams with that id. The kernel drops the lock when the
process ends, however it ends (SIGKILL and power loss included), so "can another process take
the lock?" is an exact test of "is the writer gone?" that needs no clocks, heartbeats or PIDs
(which are reused). An unfinished answer is finalised as interrupted only when its writer's lock
can be taken; an answer another live process is streaming is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import filelock

from app.store.db import StoreError

log = logging.getLogger(__name__)

LEASES_DIR = "leases"
_SUFFIX = ".lock"
_LEASE_ID = re.compile(r"[0-9a-f]{32}")
#: A lock file is created and locked in one call, so one unlocked for this long is an orphan.
_ORPHAN_AGE_S = 60.0


def _lock(folder: Path, lease_id: str) -> filelock.BaseFileLock:
    # thread_local=False: the lease belongs to the store, whichever thread closes it.
    # No soft-lock fallback: an existence-only lock would make every dead writer look alive
    # forever (harmless, but it would hide the problem); a real lock or a clear error.
    return filelock.FileLock(
        folder / f"{lease_id}{_SUFFIX}", thread_local=False, fallback_to_soft=False
    )


class WriterLease:
    """This process's claim on the answers it streams; held from open to close.

    Attributes:
        id: the lease id stamped on every answer this store begins.
    """

    def __init__(self, folder: Path) -> None:
        """Take a new lease in `folder` (created 0700 when missing).

        Raises:
            StoreError: the folder cannot be created, or its file system has no locks.
        """
        self._folder = folder
        self.id = uuid.uuid4().hex
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            self._lock = _lock(folder, self.id)
            self._lock.acquire(timeout=0)
        except (OSError, filelock.Timeout, NotImplementedError) as exc:
            raise StoreError(
                f"Cannot take a writer lock in {folder} ({exc}); Scout Desk needs a local file "
                "system with file locks for its data folder."
            ) from exc

    def release(self) -> None:
        """Give the lease up (idempotent); answers still unfinished become others' to finalise."""
        if not self._lock.is_locked:
            return
        # Unlink while still holding the lock: whoever opens the name afterwards makes a new
        # file, and either way finds this writer gone, which it now is.
        with contextlib.suppress(OSError):
            Path(self._lock.lock_file).unlink()
        self._lock.release()


@contextlib.contextmanager
def claim_if_gone(folder: Path, lease_id: str) -> Iterator[bool]:
    """Hold a writer's lock for the block when that writer is gone.

    Args:
        folder: the leases folder.
        lease_id: the writer named by an unfinished answer.

    Yields:
        True when the writer is gone (its lock is held by us until the block ends, so no one
        else finalises its answers at the same time); False when it is alive, or when the id
        is not one a store writes (left alone: never guess about someone else's data).
    """
    if not _LEASE_ID.fullmatch(lease_id):
        yield False
        return
    lock = _lock(folder, lease_id)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        yield False
        return
    except (OSError, NotImplementedError) as exc:
        log.warning("cannot test writer lease %s: %s", lease_id, exc)
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            Path(lock.lock_file).unlink()
        lock.release()


def sweep_orphans(folder: Path) -> int:
    """Delete the lock files of writers that died without finishing anything (housekeeping).

    Returns:
        How many were removed.
    """
    removed = 0
    now = time.time()
    with contextlib.suppress(OSError):
        for path in folder.glob(f"*{_SUFFIX}"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime < _ORPHAN_AGE_S:
                    continue  # may be a writer between creating and locking its file
                with claim_if_gone(folder, path.stem) as gone:
                    removed += gone
    return removed
