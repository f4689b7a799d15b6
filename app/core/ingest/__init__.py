"""Turn a dropped, pasted or opened file into an `Attachment`, judged by content, never by name.

Runs on a worker pool, never on the GUI thread. Bad input never raises: every outcome is an
attachment whose status and `detail` sentence say what became of the file.
"""

from __future__ import annotations

import logging
import os
import stat
import zipfile
from pathlib import Path
from typing import BinaryIO

from app.core.ingest.common import BlobSink, BlobStoreError, failed, quoted, skipped
from app.core.ingest.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ingest_image, too_large_file
from app.core.ingest.sniff import HEAD_BYTES, Family, Sniffed, sniff
from app.core.ingest.text import (
    MAX_TEXT_BYTES,
    binary_error,
    ingest_text,
    looks_binary,
    too_large_error,
)
from app.core.messages import Attachment, AttachmentKind

__all__ = ["MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "MAX_TEXT_BYTES", "BlobSink", "ingest_path"]

log = logging.getLogger(__name__)

_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
# Never block on a FIFO swapped in after the stat; on a regular file these flags change nothing.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def ingest_path(path: Path | str, blobs: BlobSink) -> list[Attachment]:
    """Sniff, check and store one dropped file (or report why it cannot be used).

    Args:
        path: the file or folder the user gave.
        blobs: where accepted content is stored (`app.store.blobs.BlobStore`).

    Returns:
        The resulting attachments: one per file (a folder gives one SKIPPED attachment for now).
        `name` is the base name, `source_path` the absolute path.
    """
    path = Path(path)
    name = path.name or str(path)
    source_path = str(path.absolute())
    try:
        return [_ingest_one(path, name, source_path, blobs)]
    except BlobStoreError as exc:
        return [failed(name, source_path, f"{quoted(name)} could not be saved: {exc}")]
    except OSError as exc:
        # A read error mid-file (a disk or network share that went away).
        reason = exc.strerror or str(exc)
        return [failed(name, source_path, f"{quoted(name)} could not be read: {reason}.")]
    except Exception:
        # A bug here must cost one attachment, never the app; the log keeps the traceback.
        log.exception("ingest failed for %s", source_path)
        sentence = f"{quoted(name)} could not be added because of an internal error (see the log)."
        return [failed(name, source_path, sentence)]


def _ingest_one(path: Path, name: str, source_path: str, blobs: BlobSink) -> Attachment:
    # stat first: opening a FIFO or a device could block forever or read without end.
    try:
        info = path.stat()
    except FileNotFoundError:
        return failed(name, source_path, f"{quoted(name)} does not exist (it may have moved).")
    except PermissionError:
        return failed(name, source_path, f"{quoted(name)} cannot be read: permission denied.")
    except OSError as exc:
        return failed(name, source_path, f"{quoted(name)} cannot be read: {exc.strerror or exc}.")
    if stat.S_ISDIR(info.st_mode):
        sentence = (
            f"{quoted(name)} is a folder; attaching folders comes in a later version — "
            "attach the files inside it instead."
        )
        return skipped(name, source_path, AttachmentKind.DOCUMENT, sentence, "inode/directory")
    if not stat.S_ISREG(info.st_mode):
        what = next((label for test, label in _SPECIAL_FILES if test(info.st_mode)), "not a file")
        return failed(name, source_path, f"{quoted(name)} is {what}, not a regular file.")
    if info.st_size == 0:
        return failed(name, source_path, f"{quoted(name)} is empty (0 bytes).")

    try:
        fd = os.open(path, _OPEN_FLAGS)
    except PermissionError:
        return failed(name, source_path, f"{quoted(name)} cannot be read: permission denied.")
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped since the stat
            return failed(name, source_path, f"{quoted(name)} is not a regular file.")
        head = handle.read(HEAD_BYTES)
        return _dispatch(handle, head, sniff(head), info.st_size, name, source_path, blobs)


def _dispatch(
    handle: BinaryIO,
    head: bytes,
    sniffed: Sniffed,
    file_size: int,
    name: str,
    source_path: str,
    blobs: BlobSink,
) -> Attachment:
    """Route a sniffed file to the step for its family, reading only as much as that step needs."""
    family = sniffed.family
    if family is Family.IMAGE:
        if file_size > MAX_IMAGE_BYTES:
            return too_large_file(name, source_path, sniffed, file_size)
        data = head + handle.read(MAX_IMAGE_BYTES + 1 - len(head))
        return ingest_image(data, sniffed, name, source_path, blobs)
    if family is Family.OTHER_IMAGE:
        sentence = (
            f"{quoted(name)} is {sniffed.label}; Scout Desk takes PNG, JPEG, WebP, GIF and BMP "
            "images — convert it to one of those."
        )
        return failed(name, source_path, sentence, AttachmentKind.IMAGE, sniffed.mime)
    if family is Family.VIDEO:
        sentence = f"{quoted(name)} is {sniffed.label}; video analysis comes in a later version."
        return skipped(
            name, source_path, AttachmentKind.VIDEO, sentence, sniffed.mime, size=file_size
        )
    if family is Family.AUDIO:
        sentence = f"{quoted(name)} is {sniffed.label}; Scout Desk does not work with audio."
        return failed(name, source_path, sentence, AttachmentKind.DOCUMENT, sniffed.mime)
    if family is Family.PDF:
        return _document_later(name, source_path, sniffed, file_size)
    if family is Family.ZIP:
        return _zip(handle, sniffed, file_size, name, source_path)
    if looks_binary(head):
        return binary_error(name, source_path)
    if file_size > MAX_TEXT_BYTES:
        return too_large_error(name, source_path, file_size)
    data = head + handle.read(MAX_TEXT_BYTES + 1 - len(head))
    return ingest_text(data, name, source_path, blobs)


def _document_later(name: str, source_path: str, sniffed: Sniffed, file_size: int) -> Attachment:
    sentence = f"{quoted(name)} is {sniffed.label}; reading documents comes in a later version."
    return skipped(
        name, source_path, AttachmentKind.DOCUMENT, sentence, sniffed.mime, size=file_size
    )


_DOCX = Sniffed(
    Family.ZIP,
    "docx",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "a Word document",
)


def _zip(
    handle: BinaryIO, sniffed: Sniffed, file_size: int, name: str, source_path: str
) -> Attachment:
    """A ZIP is a Word document when it holds word/document.xml; only its index is read."""
    try:
        with zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, EOFError):
        sentence = f"{quoted(name)} is a ZIP-based file but cannot be read: it looks damaged."
        return failed(name, source_path, sentence, AttachmentKind.DOCUMENT, sniffed.mime)
    if "word/document.xml" in names:
        return _document_later(name, source_path, _DOCX, file_size)
    sentence = (
        f"{quoted(name)} is {sniffed.label} (or a format built on one); Scout Desk does not open "
        "archives — attach the files inside it instead."
    )
    return failed(name, source_path, sentence, AttachmentKind.DOCUMENT, sniffed.mime)
