"""What every ingest step shares: the blob sink protocol, limits wording and error attachments."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Protocol, runtime_checkable

from app.core.documents import Document, document_to_json
from app.core.errors import ExpectedError
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus


@runtime_checkable
class BlobSink(Protocol):
    """Where ingest stores what it accepted; `app.store.blobs.BlobStore` is the real one."""

    def put_bytes(self, data: bytes) -> str:
        """Store `data` durably and return its SHA-256 hex digest."""

    def put_file(self, path: Path) -> str:
        """Store a copy of the file at `path` durably and return its SHA-256 hex digest."""


class BlobFolder(BlobSink, Protocol):
    """A sink whose blobs are files that can be read back (what video frame sampling needs)."""

    def path(self, sha: str) -> Path:
        """Return where the blob named `sha` lives (it may not exist)."""


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic"}
_VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
_TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".log", ".py", ".rst"}


def kind_hint(name: str) -> AttachmentKind:
    """Guess a kind from the file name, only for a file whose content could not be read.

    The chip of a missing "photo.jpg" should still look like an image; anything read is judged
    by its content instead.
    """
    suffix = PurePath(name).suffix.lower()
    if suffix in _IMAGE_SUFFIXES:
        return AttachmentKind.IMAGE
    if suffix in _VIDEO_SUFFIXES:
        return AttachmentKind.VIDEO
    if suffix in _TEXT_SUFFIXES:
        return AttachmentKind.TEXT
    return AttachmentKind.DOCUMENT


def quoted(name: str) -> str:
    """The file name as it appears in sentences for the user."""
    return f"“{name}”"


def human_size(size: int) -> str:
    """A byte count as a person reads it ("812 bytes", "3.4 MB")."""
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def failed(
    name: str,
    source_path: str,
    sentence: str,
    kind: AttachmentKind | None = None,
    mime: str = "application/octet-stream",
) -> Attachment:
    """An unusable attachment whose `detail` is `sentence` (which names the file).

    Args:
        name: the file's base name.
        source_path: its absolute path.
        sentence: what went wrong, in plain words.
        kind: what the content is, when known; otherwise guessed from the name.
        mime: the sniffed media type, when known.

    Returns:
        An attachment with status ERROR and no blob.
    """
    return Attachment(
        name=name,
        kind=kind if kind is not None else kind_hint(name),
        status=AttachmentStatus.ERROR,
        detail=sentence,
        mime=mime,
        source_path=source_path,
    )


def skipped(
    name: str, source_path: str, kind: AttachmentKind, sentence: str, mime: str, size: int = 0
) -> Attachment:
    """A recognised attachment this version deliberately leaves out, with `sentence` saying why."""
    return Attachment(
        name=name,
        kind=kind,
        status=AttachmentStatus.SKIPPED,
        detail=sentence,
        mime=mime,
        size=size,
        source_path=source_path,
    )


class BlobStoreError(ExpectedError):
    """The blob sink could not store accepted content (disk full, read-only folder)."""


def put_blob(blobs: BlobSink, data: bytes) -> str:
    """Store `data` in `blobs`, turning a failure of the sink into `BlobStoreError`.

    The sink belongs to the store layer: its failures are expected errors (a full disk, a
    read-only folder) whose sentence is meant for the user; anything else is a bug and rises.
    """
    try:
        return blobs.put_bytes(data)
    except ExpectedError as exc:
        raise BlobStoreError(exc.message) from exc
    except OSError as exc:
        raise BlobStoreError(f"The attachment could not be stored: {exc.strerror or exc}.") from exc


def put_blob_file(blobs: BlobSink, path: Path) -> str:
    """Store a copy of the file at `path` in `blobs` (streamed), like `put_blob`."""
    try:
        return blobs.put_file(path)
    except ExpectedError as exc:
        raise BlobStoreError(exc.message) from exc
    except OSError as exc:
        raise BlobStoreError(f"{path.name} could not be stored: {exc.strerror or exc}.") from exc


def document_attachment(
    document: Document, detail: str, mime: str, source_path: str, blobs: BlobSink
) -> Attachment:
    """Store `document` as a JSON blob and return the READY DOCUMENT attachment naming it.

    Args:
        document: the extracted document (its `name` becomes the attachment's name).
        detail: the summary shown on the chip ("12 pages", "312 files used, 41 skipped").
        mime: the media type of what the user dropped ("application/pdf", "inode/directory").
        source_path: its absolute path.
        blobs: where the document is stored.

    Returns:
        The attachment; its blob is `document_to_json(document)`.
    """
    stored = document_to_json(document)
    return Attachment(
        name=document.name,
        kind=AttachmentKind.DOCUMENT,
        status=AttachmentStatus.READY,
        detail=detail,
        sha256=put_blob(blobs, stored),
        mime=mime,
        size=len(stored),
        source_path=source_path,
    )
