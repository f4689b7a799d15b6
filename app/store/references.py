"""Blobs an attachment needs besides its own: the PDF behind a document's extracted text."""

from __future__ import annotations

from app.core.documents import DocumentFormatError, document_from_json
from app.core.messages import AttachmentKind
from app.store.blobs import BlobStore
from app.store.db import StoreError


def companion_shas(kind: str, sha: str | None, blobs: BlobStore) -> list[str]:
    """The blobs a stored attachment refers to from inside its own content.

    A document attachment's blob is JSON that names the stored PDF (for page images later); garbage
    collection and export must treat that PDF as used by the attachment too.

    Args:
        kind: the attachment's kind.
        sha: its blob.
        blobs: where blobs live.

    Returns:
        The other blobs it needs (empty for anything but a readable document).
    """
    if kind != AttachmentKind.DOCUMENT or sha is None or not blobs.has(sha):
        return []
    try:
        document = document_from_json(blobs.read(sha))
    except (DocumentFormatError, StoreError):
        return []
    return [document.original_sha256] if document.original_sha256 else []
