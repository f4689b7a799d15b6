"""Content-addressed attachment blobs: stored once, named by SHA-256, written durably."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from app.core.atomic import fsync_dir
from app.store.db import StoreError

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_TMP_PREFIX = ".tmp-"
#: A blob written or re-put this recently is never garbage-collected: a composer may hold it
#: for a message not sent yet.
GC_GRACE_S = 3600.0


def _chunks_of(path: Path) -> Iterator[bytes]:
    """Yield a file's bytes a chunk at a time; a read failure names the source file."""
    try:
        with path.open("rb") as src:
            while chunk := src.read(_CHUNK):
                yield chunk
    except OSError as exc:
        raise StoreError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


class BlobStore:
    """Files under `root/ab/abcdef...`, one per distinct content (satisfies ingest's BlobSink)."""

    def __init__(self, root: Path) -> None:
        """Open (creating) the blob folder and clear temp files a crash left behind.

        Args:
            root: the `blobs/` folder inside the data folder.

        Raises:
            StoreError: the folder cannot be created.
        """
        self.root = Path(root)
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the attachment folder {self.root}: {exc}.") from exc
        self._remove_stale_temps()

    def path(self, sha: str) -> Path:
        """Return where the blob named `sha` lives (it may not exist).

        Args:
            sha: 64 lowercase hex digits.

        Returns:
            `root/<first two digits>/<sha>`.

        Raises:
            ValueError: `sha` is not a SHA-256 hex digest (it would otherwise escape the folder).
        """
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise ValueError(f"not a SHA-256 hex digest: {sha!r}")
        return self.root / sha[:2] / sha

    def has(self, sha: str) -> bool:
        """Return whether the blob is stored."""
        return self.path(sha).is_file()

    def read(self, sha: str) -> bytes:
        """Return a blob's bytes.

        Raises:
            StoreError: the blob is missing or unreadable (the sentence names its file).
        """
        path = self.path(sha)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise StoreError(f"Cannot read the attachment file {path}: {exc.strerror}.") from exc

    def put_bytes(self, data: bytes) -> str:
        """Store `data` durably (once per content) and return its SHA-256 hex digest.

        Raises:
            StoreError: the disk is full or the folder is read-only.
        """
        sha = hashlib.sha256(data).hexdigest()
        if self._touch_existing(sha):
            return sha
        folder = self._folder_for(sha)
        self._commit(self._write_temp(folder, [data])[0], sha)
        return sha

    def put_file(self, path: Path) -> str:
        """Copy a file into the store (streamed: videos need not fit in memory).

        Args:
            path: the file to copy.

        Returns:
            Its SHA-256 hex digest.

        Raises:
            StoreError: `path` cannot be read, or the store cannot be written.
        """
        # The digest is only known once copied, so the temp file lives in the root: same file
        # system as every `ab/` folder, so the final rename is still atomic.
        tmp, sha = self._write_temp(self.root, _chunks_of(Path(path)))
        if self._touch_existing(sha):
            with contextlib.suppress(OSError):
                tmp.unlink()
            return sha
        self._folder_for(sha)
        self._commit(tmp, sha)
        return sha

    def collect(self, shas: Iterable[str], still_used: Iterable[str]) -> int:
        """Delete blobs no message names any more, sparing any touched in the last hour.

        Args:
            shas: candidates (the blobs of rows just deleted).
            still_used: digests some remaining row still names.

        Returns:
            How many files were removed.
        """
        keep = set(still_used)
        removed = 0
        now = time.time()
        for sha in set(shas) - keep:
            if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
                continue  # a damaged row's digest names no file of ours
            path = self.path(sha)
            try:
                if now - path.stat().st_mtime < GC_GRACE_S:
                    continue
                path.unlink()
                removed += 1
            except OSError as exc:
                log.warning("could not remove unused blob %s: %s", path, exc)
        return removed

    def _touch_existing(self, sha: str) -> bool:
        """Return whether `sha` is stored already, refreshing its mtime for the GC grace."""
        path = self.path(sha)
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:
            return path.is_file()
        return True

    def _folder_for(self, sha: str) -> Path:
        folder = self.path(sha).parent
        if not folder.is_dir():
            try:
                folder.mkdir(mode=0o700, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"Cannot create {folder}: {exc.strerror or exc}.") from exc
            fsync_dir(self.root)
        return folder

    def _write_temp(self, folder: Path, chunks: Iterable[bytes]) -> tuple[Path, str]:
        """Write chunks to a fsynced temp file in `folder`; return it and the content's digest."""
        digest = hashlib.sha256()
        tmp: Path | None = None
        try:
            fd, name = tempfile.mkstemp(dir=folder, prefix=_TMP_PREFIX)
            tmp = Path(name)
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except BaseException as exc:  # also an unreadable source: never leave the temp behind
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            if isinstance(exc, OSError):
                raise StoreError(
                    f"Cannot write an attachment into {folder}: {exc.strerror or exc}."
                ) from exc
            raise
        return tmp, digest.hexdigest()

    def _commit(self, tmp: Path, sha: str) -> None:
        """Rename the temp file to its final name and sync the folder, so the name survives."""
        dest = self.path(sha)
        try:
            tmp.replace(dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"Cannot store the attachment {dest}: {exc.strerror}.") from exc
        fsync_dir(dest.parent)

    def _remove_stale_temps(self) -> None:
        """Drop temp files older than the grace period (a crash mid-write leaves them)."""
        cutoff = time.time() - GC_GRACE_S
        for tmp in [*self.root.glob(_TMP_PREFIX + "*"), *self.root.glob("??/" + _TMP_PREFIX + "*")]:
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
