"""Choices about an attached document: which of its files or pages go in."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from app.core.documents import Document, DocumentSource, EntryStatus, ManifestEntry
from app.core.messages import Attachment

#: The reason a file or page the user unticked is listed with.
LEFT_OUT = "left out by you"
#: Page images Scout takes in one conversation (older ones are dropped beyond this).
MAX_PAGE_IMAGES = 5


def selectable_keys(document: Document) -> list[str]:
    """The keys a report can tick: "page 12" for PDF pages, paths for a folder's used files."""
    if document.source is DocumentSource.PDF:
        return [page_key(s.page) for s in document.sections if s.page is not None]
    return list(dict.fromkeys(s.file for s in document.sections))


def page_key(page: int) -> str:
    """The key of a PDF page in a report's selection."""
    return f"page {page}"


def trim_document(document: Document, keep: Collection[str]) -> Document:
    """The document with only the ticked files or pages (the others listed as left out).

    Args:
        document: the document as ingest read it.
        keep: keys from `selectable_keys` to keep.

    Returns:
        A new document; dropped files become SKIPPED entries, dropped pages too.
    """
    keep = set(keep)
    if document.source is DocumentSource.PDF:
        sections = tuple(s for s in document.sections if page_key(s.page or 0) in keep)
        dropped = [s.page for s in document.sections if page_key(s.page or 0) not in keep]
        entries = tuple(
            ManifestEntry(page_key(p), EntryStatus.SKIPPED, LEFT_OUT) for p in dropped if p
        )
        return replace(document, sections=sections, entries=document.entries + entries)
    sections = tuple(s for s in document.sections if s.file in keep)
    entries = tuple(
        replace(e, status=EntryStatus.SKIPPED, reason=LEFT_OUT)
        if e.status is EntryStatus.USED and e.path not in keep
        else e
        for e in document.entries
    )
    return replace(document, sections=sections, entries=entries)


def trimmed_detail(original: Attachment, document: Document) -> str:
    """The chip summary of a trimmed document ("12 of 312 pages", "300 files used, 53 skipped").

    Args:
        original: the attachment as ingest made it (its notes are kept).
        document: the trimmed document.

    Returns:
        The summary, then the original's notes.
    """
    notes = [n.strip() for n in original.detail.split(";")[1:] if n.strip()]
    if document.source is DocumentSource.PDF:
        kept = len(document.sections)
        total = document.page_count or kept
        summary = f"{kept:,} of {total:,} page{'' if total == 1 else 's'}"
    elif document.source is DocumentSource.FOLDER:
        used = document.used_files
        summary = (
            f"{used:,} file{'' if used == 1 else 's'} used, {document.skipped_files:,} skipped"
        )
    else:
        summary = original.detail.split(";")[0]
    return "; ".join([summary, *notes])


def default_page_images(document: Document, limit: int = MAX_PAGE_IMAGES) -> list[int]:
    """Pages to offer as images first: those without text (scans, figures), then the first ones.

    Args:
        document: a PDF document.
        limit: how many.

    Returns:
        Up to `limit` page numbers, ascending.
    """
    pages = [s.page for s in document.sections if s.page is not None]
    blank = [s.page for s in document.sections if s.page is not None and not s.text.strip()]
    chosen = blank[:limit]
    for page in pages:
        if len(chosen) >= limit:
            break
        if page not in chosen:
            chosen.append(page)
    return sorted(chosen)
