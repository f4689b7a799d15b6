"""Turn a dropped, pasted or opened file into an `Attachment`, judged by content, never by name.

Runs on a worker pool, never on the GUI thread. Bad input never raises: every outcome is an
attachment whose status and `detail` sentence say what became of the file.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

from app.core.ingest.common import BlobSink, BlobStoreError, failed, quoted
from app.core.ingest.docx import DOCX_MIME, declared_entry_count, ingest_docx
from app.core.ingest.folder import FOLDER_MIME, FolderLimits, ingest_folder
from app.core.ingest.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ingest_image, too_large_file
from app.core.ingest.pdf import PDF_MIME, ingest_pdf, needs_password, render_pdf_pages
from app.core.ingest.sniff import HEAD_BYTES, Family, Sniffed, is_playlist, sniff
from app.core.ingest.text import (
    MAX_TEXT_BYTES,
    binary_error,
    ingest_text,
    looks_binary,
    too_large_error,
)
from app.core.messages import Attachment, AttachmentKind
from app.core.settings import IngestLimits

__all__ = [
    "DOCX_MIME",
    "FOLDER_MIME",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_TEXT_BYTES",
    "PDF_MIME",
    "BlobSink",
    "IngestLimits",
    "ingest_path",
    "needs_password",
    "render_pdf_pages",
]

log = logging.getLogger(__name__)

_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
# Never block on a FIFO swapped in after the stat; on a regular file these flags change nothing.
#: More entries than this and a ZIP's index is not even parsed.
_MAX_INDEX_ENTRIES = 10_000
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def ingest_path(
    path: Path | str,
    blobs: BlobSink,
    password: str | None = None,
    limits: IngestLimits | None = None,
) -> list[Attachment]:
    """Sniff, check and store one dropped file or folder (or report why it cannot be used).

    Args:
        path: the file or folder the user gave.
        blobs: where accepted content is stored (`app.store.blobs.BlobStore`).
        password: for an encrypted PDF, once the user gave it (see `needs_password`).
        limits: the text file and folder limits set in Settings (`Settings.ingest_limits`);
            None means the defaults.

    Returns:
        One attachment. PDFs, Word files and folders become DOCUMENT attachments whose blob is
        an `app.core.documents.Document` (JSON); a folder is one attachment for all its files.
        `name` is the base name, `source_path` the absolute path.
    """
    path = Path(path)
    name = path.name or str(path)
    source_path = str(path.absolute())
    try:
        return [_ingest_one(path, name, source_path, blobs, password, limits or IngestLimits())]
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


def _ingest_one(
    path: Path,
    name: str,
    source_path: str,
    blobs: BlobSink,
    password: str | None,
    limits: IngestLimits,
) -> Attachment:
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
        return ingest_folder(path, name, source_path, blobs, FolderLimits.from_settings(limits))
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
        sniffed = sniff(head)
        if sniffed.family is Family.PDF:
            # PDFium reads the file by its path, in a child process (see `ingest.pdf`).
            return ingest_pdf(
                path, name, source_path, blobs, file_size=info.st_size, password=password
            )
        if sniffed.family is Family.VIDEO:
            # FFmpeg reads the file by its path, in a child process (see `app.core.video`);
            # imported here because `app.core.video` itself builds on this package.
            from app.core.video.attachments import ingest_video

            return ingest_video(path, name, source_path, sniffed, info.st_size, blobs)
        if is_playlist(head):
            return _playlist(name, source_path)
        return _dispatch(
            handle, head, sniffed, info.st_size, name, source_path, blobs, limits.max_text_bytes
        )


def _playlist(name: str, source_path: str) -> Attachment:
    """A playlist names media elsewhere (often on the network); it is never given to FFmpeg."""
    sentence = (
        f"{quoted(name)} is a playlist (a list of links to media), not a video; open the video "
        "file itself."
    )
    return failed(name, source_path, sentence, AttachmentKind.VIDEO, "audio/x-mpegurl")


def _dispatch(
    handle: BinaryIO,
    head: bytes,
    sniffed: Sniffed,
    file_size: int,
    name: str,
    source_path: str,
    blobs: BlobSink,
    max_text_bytes: int = MAX_TEXT_BYTES,
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
    if family is Family.AUDIO:
        sentence = f"{quoted(name)} is {sniffed.label}; Scout Desk does not work with audio."
        return failed(name, source_path, sentence, AttachmentKind.DOCUMENT, sniffed.mime)
    if family is Family.ZIP:
        return _zip(handle, sniffed, file_size, name, source_path, blobs)
    if head.startswith(_OLE_MAGIC):
        sentence = (
            f"{quoted(name)} is an old-format or password-protected Office file; save it as a "
            "Word document (.docx) without a password, or as PDF."
        )
        return failed(
            name, source_path, sentence, AttachmentKind.DOCUMENT, "application/x-ole-storage"
        )
    if looks_binary(head):
        return binary_error(name, source_path)
    if file_size > max_text_bytes:
        return too_large_error(name, source_path, file_size, max_text_bytes)
    # Read the file again from its start in one piece: `head + rest` would copy it whole.
    handle.seek(0)
    data = handle.read(max_text_bytes + 1)
    if len(data) > max_text_bytes:  # it grew since the stat
        return too_large_error(name, source_path, len(data), max_text_bytes)
    return ingest_text(data, name, source_path, blobs)


# Compound File Binary: .doc/.xls/.ppt, and encrypted .docx files (which are not ZIPs).
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _zip(
    handle: BinaryIO,
    sniffed: Sniffed,
    file_size: int,
    name: str,
    source_path: str,
    blobs: BlobSink,
) -> Attachment:
    """A ZIP is a Word document when it holds word/document.xml; only its index is read here."""
    count = declared_entry_count(handle, file_size)
    if count is not None and count > _MAX_INDEX_ENTRIES:
        # Opening would build an object per entry; a real DOCX has a few dozen.
        sentence = f"{quoted(name)} is {sniffed.label} of {count:,} files; it was not opened."
        return failed(name, source_path, sentence, AttachmentKind.DOCUMENT, sniffed.mime)
    handle.seek(0)
    try:
        with zipfile.ZipFile(handle) as archive:
            is_docx = "word/document.xml" in set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, EOFError, struct.error):
        sentence = f"{quoted(name)} is a ZIP-based file but cannot be read: it looks damaged."
        return failed(name, source_path, sentence, AttachmentKind.DOCUMENT, sniffed.mime)
    if is_docx:
        handle.seek(0)
        return ingest_docx(handle, name, source_path, blobs, file_size=file_size)
    sentence = (
        f"{quoted(name)} is {sniffed.label} (or a format built on one); Scout Desk does not open "
        "archives — attach the files inside it instead."
    )
    return failed(name, source_path, sentence, AttachmentKind.DOCUMENT, sniffed.mime)
