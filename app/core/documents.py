"""The document model: a PDF, Word file or folder as sections of text with citable places."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from app.core.errors import ExpectedError
from app.core.messages import Attachment, AttachmentKind

log = logging.getLogger(__name__)

#: Marks a blob as a document of this format; bumped when the shape changes incompatibly.
FORMAT = "scout-desk-document"
VERSION = 1


class DocumentSource(StrEnum):
    """What a document was read from."""

    PDF = "pdf"
    DOCX = "docx"
    FOLDER = "folder"


class EntryStatus(StrEnum):
    """What became of one file of a folder (or one page of a PDF that was not read)."""

    USED = "used"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Section:
    """One citable piece of a document: a PDF page, a Word file, a file of a folder.

    Attributes:
        file: the name or relative path the model sees and cites ("report.pdf", "src/app/main.py").
        text: the extracted text ("" for a page without a text layer).
        page: 1-based page number (PDFs only).
        first_line: the line number of `text`'s first line in its file (a file split in pieces).
    """

    file: str
    text: str
    page: int | None = None
    first_line: int = 1


@dataclass(frozen=True)
class ManifestEntry:
    """One line of a folder's report: which file, used or skipped, why, how big."""

    path: str
    status: EntryStatus
    reason: str = ""
    bytes: int = 0


@dataclass(frozen=True)
class Document:
    """What a DOCUMENT attachment's blob holds (as JSON, see `document_to_json`).

    Attributes:
        name: the file or folder name the user dropped.
        source: what it was read from.
        sections: the text, in reading order.
        entries: the per-file report of a folder (used and skipped files, with reasons).
        page_count: pages in the PDF, including any beyond those read.
        original_sha256: the stored PDF itself (decrypted), for rendering page images later.
        notes: sentences about limits that were hit ("only the first 2,000 pages were read").
    """

    name: str
    source: DocumentSource
    sections: tuple[Section, ...]
    entries: tuple[ManifestEntry, ...] = ()
    page_count: int = 0
    original_sha256: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def used_files(self) -> int:
        """Files of a folder that went into the text."""
        return sum(1 for e in self.entries if e.status is EntryStatus.USED)

    @property
    def skipped_files(self) -> int:
        """Files of a folder that were left out (each entry says why)."""
        return sum(1 for e in self.entries if e.status is EntryStatus.SKIPPED)

    def text_sections(self) -> tuple[Section, ...]:
        """The sections that hold any text (empty pages of a scan are left out)."""
        return tuple(s for s in self.sections if s.text.strip())


class DocumentFormatError(ExpectedError, ValueError):
    """A blob is not a document this version can read."""


def document_to_json(document: Document) -> bytes:
    """Serialise a document for the blob store (UTF-8 JSON, stable key order).

    Args:
        document: what to store.

    Returns:
        The blob's bytes.
    """
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "name": document.name,
        "source": document.source.value,
        "page_count": document.page_count,
        "original_sha256": document.original_sha256,
        "notes": list(document.notes),
        "sections": [
            {"file": s.file, "page": s.page, "first_line": s.first_line, "text": s.text}
            for s in document.sections
        ],
        "entries": [
            {"path": e.path, "status": e.status.value, "reason": e.reason, "bytes": e.bytes}
            for e in document.entries
        ],
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def document_from_json(data: bytes) -> Document:
    """Read a document blob back.

    Args:
        data: the blob's bytes.

    Returns:
        The document.

    Raises:
        DocumentFormatError: the bytes are not a document blob of this version.
    """
    try:
        obj = json.loads(data.decode("utf-8"))
        if obj.get("format") != FORMAT or obj.get("version") != VERSION:
            raise DocumentFormatError("not a Scout Desk document blob of this version")
        sections = tuple(
            Section(str(s["file"]), str(s["text"]), _opt_int(s.get("page")), int(s["first_line"]))
            for s in obj["sections"]
        )
        entries = tuple(
            ManifestEntry(
                str(e["path"]), EntryStatus(e["status"]), str(e["reason"]), int(e["bytes"])
            )
            for e in obj["entries"]
        )
        original = obj.get("original_sha256")
        return Document(
            name=str(obj["name"]),
            source=DocumentSource(obj["source"]),
            sections=sections,
            entries=entries,
            page_count=int(obj["page_count"]),
            original_sha256=str(original) if original else None,
            notes=tuple(str(n) for n in obj["notes"]),
        )
    except DocumentFormatError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError) as exc:
        raise DocumentFormatError(f"damaged document blob: {exc}") from exc
    except ValueError as exc:  # a bad enum value or number
        raise DocumentFormatError(f"damaged document blob: {exc}") from exc


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"expected a number, found {type(value).__name__}")


def load_document(attachment: Attachment, blob_path: Callable[[str], Path]) -> Document | None:
    """The document behind a DOCUMENT attachment, or None (logged) when it cannot be read.

    Args:
        attachment: a READY or USED attachment of kind DOCUMENT.
        blob_path: maps a blob's SHA-256 to its file (`BlobStore.path`).

    Returns:
        The document, or None for another kind, a missing blob or a damaged one.
    """
    if attachment.kind is not AttachmentKind.DOCUMENT or attachment.sha256 is None:
        return None
    try:
        return document_from_json(blob_path(attachment.sha256).read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("document %s unreadable: %s", attachment.name, exc)
        return None


def section_header(section: Section, *, continued: bool = False) -> str:
    """The line that opens a section in the prompt, naming the place the model should cite.

    Args:
        section: the section.
        continued: whether this is a later piece of a section split for map-reduce.

    Returns:
        "--- file: report.pdf, page 12 ---" or "--- file: src/app/main.py ---" (no newline).
    """
    place = section.file if section.page is None else f"{section.file}, page {section.page}"
    if section.first_line > 1 and section.page is None:
        place += f", from line {section.first_line}"
    return f"--- file: {place}{' (continued)' if continued else ''} ---"


def format_section(section: Section, *, number_lines: bool = False) -> str:
    """A section as it enters a prompt: its header line, then its text.

    Args:
        section: the section.
        number_lines: prefix each line with its number ("40: ..."), so the model can cite
            "[src/app/main.py:40]" (costs a few tokens a line).

    Returns:
        The block, without a trailing newline.
    """
    text = section.text.rstrip("\n")
    if number_lines and section.page is None:
        lines = text.split("\n")
        text = "\n".join(f"{n}: {line}" for n, line in enumerate(lines, section.first_line))
    return f"{section_header(section)}\n{text}"


def format_document(document: Document, *, number_lines: bool = False) -> str:
    """A whole document as it is inlined into a message, closed by an end marker.

    Args:
        document: the document.
        number_lines: see `format_section`.

    Returns:
        The block, starting with a blank line so it can follow the message text directly.
    """
    blocks = [format_section(s, number_lines=number_lines) for s in document.text_sections()]
    if document.source is DocumentSource.FOLDER:
        opening = f"--- folder: {document.name} ({_count(document.used_files, 'file')}) ---"
        closing = f"--- end of folder {document.name} ---"
        blocks = [opening, *blocks]
    else:
        closing = f"--- end of {document.name} ---"
        if not blocks:
            blocks = [f"--- file: {document.name} ---\n(no text could be extracted)"]
    return "\n\n" + "\n".join([*blocks, closing])


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


_PAGE_IMAGE = re.compile(r"^(?P<file>.+), page (?P<page>[1-9][0-9]{0,5})$")


def page_image_name(pdf_name: str, page: int) -> str:
    """The name of an image attachment rendered from a PDF page ("report.pdf, page 12")."""
    return f"{pdf_name}, page {page}"


def parse_page_image_name(name: str) -> tuple[str, int] | None:
    """(PDF name, page) for a name made by `page_image_name`, else None."""
    match = _PAGE_IMAGE.match(name)
    return (match["file"], int(match["page"])) if match else None
