"""Find the place a citation names among a conversation's attachments (no Qt; runs on a pool)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.documents import DocumentSource, load_document
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, Message, Role

_USABLE = (AttachmentStatus.READY, AttachmentStatus.USED)


@dataclass(frozen=True)
class CitedSource:
    """What to open for a citation.

    Attributes:
        title: the window title ("src/app/main.py", "report.pdf, page 12").
        text: the text to show (a file, or a PDF page's text when no image can be made).
        first_line: the line number of `text`'s first line.
        line: the cited line, if any.
        pdf_path: the stored PDF to render a page from (PDF citations only).
        pdf_name: the PDF's name, for the page image's name.
        page: the cited page (1 when a PDF is cited without one).
        source_path: where the PDF came from, for the page image attachment.
    """

    title: str
    text: str = ""
    first_line: int = 1
    line: int | None = None
    pdf_path: Path | None = None
    pdf_name: str = ""
    page: int | None = None
    source_path: str = ""


def conversation_sources(messages: Sequence[Message], upto: str | None = None) -> list[Attachment]:
    """The documents and text files attached in a conversation, newest first.

    Args:
        messages: the visible messages, oldest first.
        upto: stop at this message (an answer cites what was attached before it).

    Returns:
        The attachments.
    """
    found: list[Attachment] = []
    for message in messages:
        if message.id == upto:
            break
        if message.role is not Role.USER:
            continue
        found.extend(
            a
            for a in message.attachments
            if a.kind in (AttachmentKind.DOCUMENT, AttachmentKind.TEXT)
            and a.status in _USABLE
            and a.sha256
        )
    return found[::-1]


def source_files(attachment: Attachment, blob_path: Callable[[str], Path]) -> frozenset[str]:
    """The file names an attachment's citations may use (a folder's paths, a PDF's name)."""
    if attachment.kind is AttachmentKind.TEXT:
        return frozenset({attachment.name})
    document = load_document(attachment, blob_path)
    if document is None:
        return frozenset()
    return frozenset({document.name, *(s.file for s in document.sections)})


def find_source(
    file: str,
    page: int | None,
    line: int | None,
    sources: Sequence[Attachment],
    blob_path: Callable[[str], Path],
) -> CitedSource | None:
    """Find what a citation names among the conversation's attachments.

    Args:
        file: the cited file, as `find_citations` resolved it.
        page: the cited page.
        line: the cited line.
        sources: `conversation_sources`, newest first.
        blob_path: maps a blob's SHA-256 to its file.

    Returns:
        The source, or None when no attachment holds that file.
    """
    for attachment in sources:
        if attachment.kind is AttachmentKind.TEXT:
            if attachment.name != file or not attachment.sha256:
                continue
            try:
                text = blob_path(attachment.sha256).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            return CitedSource(file, text, 1, line)
        document = load_document(attachment, blob_path)
        if document is None:
            continue
        if document.source is DocumentSource.PDF:
            if file != document.name:
                continue
            wanted = page or 1
            text = next((s.text for s in document.sections if s.page == wanted), "")
            pdf = blob_path(document.original_sha256) if document.original_sha256 else None
            title = f"{document.name}, page {wanted}"
            return CitedSource(
                title, text, pdf_path=pdf, pdf_name=document.name, page=wanted,
                source_path=attachment.source_path,
            )  # fmt: skip
        pieces = [s for s in document.sections if s.file == file]
        if not pieces and file == document.name:
            pieces = list(document.sections)  # a Word file cited by its name
        if pieces:
            text = "".join(p.text if p.text.endswith("\n") else p.text + "\n" for p in pieces)
            return CitedSource(file, text, pieces[0].first_line, line)
    return None
