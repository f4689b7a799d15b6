"""Word (DOCX) ingest: vet the ZIP archive from its index, then read paragraphs and tables."""

from __future__ import annotations

import logging
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from app.core.documents import Document, DocumentSource, Section
from app.core.ingest.common import BlobSink, document_attachment, failed, human_size, quoted
from app.core.messages import Attachment, AttachmentKind

log = logging.getLogger(__name__)

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True)
class DocxLimits:
    """What a Word file's archive may hold before anything in it is inflated.

    Attributes:
        max_file_bytes: larger files are refused unread.
        max_entries: files in the archive (a real DOCX has a few dozen).
        max_total_bytes: declared uncompressed size of all entries together.
        max_entry_bytes: declared uncompressed size of one entry.
        max_ratio: uncompressed / compressed size of an entry over `ratio_floor_bytes`.
        ratio_floor_bytes: entries smaller than this are not ratio-checked (tiny XML compresses
            very well and can do no harm).
        max_depth: folders in an entry's path.
        max_text_bytes: UTF-8 text kept; the rest is cut with a note.
    """

    max_file_bytes: int = 100_000_000
    max_entries: int = 2_000
    max_total_bytes: int = 300_000_000
    max_entry_bytes: int = 100_000_000
    max_ratio: int = 200
    ratio_floor_bytes: int = 1_000_000
    max_depth: int = 8
    max_text_bytes: int = 8_000_000


_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_EOCD_SEARCH = 22 + 65_535  # the record plus the longest comment


def declared_entry_count(handle: BinaryIO, file_size: int) -> int | None:
    """Entries the archive's end record declares, read without parsing its directory.

    `zipfile` builds an object per entry when it opens an archive, so a million-entry
    directory must be refused before that.

    Args:
        handle: the open file (its position is changed).
        file_size: its size.

    Returns:
        The count, or None when the end record cannot be found (zipfile then reports damage).
    """
    start = max(0, file_size - _EOCD_SEARCH)
    handle.seek(start)
    tail = handle.read(file_size - start)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) < at + 22:
        return None
    (entries,) = struct.unpack_from("<H", tail, at + 10)
    if entries != 0xFFFF:
        return int(entries)
    locator = at - 20
    if locator < 0 or tail[locator : locator + 4] != _ZIP64_LOCATOR:
        return int(entries)
    (record_offset,) = struct.unpack_from("<Q", tail, locator + 8)
    handle.seek(record_offset)
    record = handle.read(56)
    if len(record) < 56 or not record.startswith(b"PK\x06\x06"):
        return None
    return int(struct.unpack_from("<Q", record, 32)[0])


def archive_problem(archive: zipfile.ZipFile, limits: DocxLimits) -> str | None:
    """Why this archive must not be inflated, judged from its directory alone; None if fine.

    Python's zipfile never inflates an entry past its declared size, so checking declared
    sizes and ratios here bounds what python-docx can later read.
    """
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        return f"it holds {len(infos):,} files (a Word document has a few dozen)"
    total = 0
    for info in infos:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or ":" in info.filename:
            return f"it holds a file with an unsafe path ({info.filename[:80]!r})"
        if len(path.parts) > limits.max_depth:
            return f"it holds a file nested {len(path.parts)} folders deep"
        if info.flag_bits & 0x1:
            return "its contents are encrypted"
        if info.file_size > limits.max_entry_bytes:
            return f"one part would inflate to {human_size(info.file_size)}"
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(
            1, info.compress_size
        ):
            ratio = info.file_size // max(1, info.compress_size)
            return f"one part would inflate {ratio:,} times (a ZIP bomb?)"
        total += info.file_size
    if total > limits.max_total_bytes:
        return f"its contents would inflate to {human_size(total)}"
    return None


def ingest_docx(
    handle: BinaryIO,
    name: str,
    source_path: str,
    blobs: BlobSink,
    *,
    file_size: int,
    limits: DocxLimits = DocxLimits(),
) -> Attachment:
    """Read a Word document's paragraphs, headings and tables into a one-section document.

    Args:
        handle: the open file (a ZIP that holds word/document.xml).
        name: its base name.
        source_path: its absolute path.
        blobs: where the document is stored.
        file_size: its size in bytes.
        limits: archive and text limits.

    Returns:
        A READY DOCUMENT attachment, or an ERROR one saying why not.
    """
    if file_size > limits.max_file_bytes:
        sentence = (
            f"{quoted(name)} is {human_size(file_size)}; Scout Desk reads Word documents up to "
            f"{human_size(limits.max_file_bytes)}."
        )
        return _failed(name, source_path, sentence)
    count = declared_entry_count(handle, file_size)
    if count is not None and count > limits.max_entries:
        too_many = f"it holds {count:,} files (a Word document has a few dozen)"
        return _failed(name, source_path, f"{quoted(name)} was not opened: {too_many}.")
    handle.seek(0)
    try:
        with zipfile.ZipFile(handle) as archive:
            problem = archive_problem(archive, limits)
    except (zipfile.BadZipFile, ValueError, EOFError, struct.error):
        return _failed(name, source_path, f"{quoted(name)} is a Word document but looks damaged.")
    if problem is not None:
        return _failed(name, source_path, f"{quoted(name)} was not opened: {problem}.")
    handle.seek(0)
    try:
        import docx

        text = "\n".join(_blocks(docx.Document(handle)))
    except Exception as exc:  # python-docx and lxml raise many types on hostile XML
        log.info("python-docx cannot read %s: %r", source_path, exc)
        return _failed(name, source_path, f"{quoted(name)} is a Word document but looks damaged.")
    return _document(text, name, source_path, blobs, limits)


def _document(
    text: str, name: str, source_path: str, blobs: BlobSink, limits: DocxLimits
) -> Attachment:
    notes: list[str] = []
    encoded = text.encode("utf-8")
    if len(encoded) > limits.max_text_bytes:
        text = encoded[: limits.max_text_bytes].decode("utf-8", errors="ignore")
        notes.append(f"the text was cut at {human_size(limits.max_text_bytes)}")
    if not text.strip():
        return _failed(name, source_path, f"{quoted(name)} has no text in it.")
    document = Document(name, DocumentSource.DOCX, (Section(name, text),), notes=tuple(notes))
    words = len(text.split())
    detail = "; ".join([f"{words:,} word{'' if words == 1 else 's'}", *notes])
    return document_attachment(document, detail, DOCX_MIME, source_path, blobs)


def _blocks(document: Any) -> Iterator[str]:
    """Markdown-ish text of the body in reading order: headings, list items, paragraphs, tables."""
    for block in document.iter_inner_content():
        if hasattr(block, "rows"):
            yield from _table_rows(block)
            yield ""
            continue
        text = block.text.strip()
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        yield _styled(text, style)


def _styled(text: str, style: str) -> str:
    if style == "Title":
        return f"# {text}"
    if style.startswith("Heading "):
        level = style.removeprefix("Heading ").strip()
        return f"{'#' * min(6, int(level) if level.isdigit() else 1)} {text}"
    if style.startswith("List"):
        return f"- {text}"
    return text


def _table_rows(table: Any) -> Iterator[str]:
    for index, row in enumerate(table.rows):
        cells = [" ".join(cell.text.split()).replace("|", "\\|") for cell in row.cells]
        yield "| " + " | ".join(cells) + " |"
        if index == 0:
            yield "|" + "---|" * len(cells)


def _failed(name: str, source_path: str, sentence: str) -> Attachment:
    return failed(name, source_path, sentence, AttachmentKind.DOCUMENT, DOCX_MIME)
