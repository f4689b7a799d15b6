"""PDF ingest: text per page and page images, read by PDFium in a sandboxed child process."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.documents import Document, DocumentSource, Section, page_image_name
from app.core.ingest.common import (
    BlobSink,
    document_attachment,
    failed,
    human_size,
    put_blob_file,
    quoted,
)
from app.core.ingest.images import ingest_image
from app.core.ingest.sandbox import DEFAULT_MEMORY_BYTES, Failure, WorkerOutcome, run_worker
from app.core.ingest.sniff import Family, Sniffed
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus

log = logging.getLogger(__name__)

PDF_MIME = "application/pdf"
_WORKER = Path(__file__).with_name("pdf_worker.py")
_PNG = Sniffed(Family.IMAGE, "png", "image/png", "a PNG image")
# `needs_password` recognises these words; the UI asks for the password and calls again.
_PASSWORD_WORDS = "is password-protected"


@dataclass(frozen=True)
class PdfLimits:
    """How much of a PDF is read, and how long and how much memory reading may take.

    Attributes:
        max_file_bytes: larger files are refused without being opened.
        max_pages: pages read; later pages are left out with a note.
        max_text_bytes: UTF-8 text kept in all; the rest is cut with a note.
        text_timeout_s: wall-clock limit for reading the text.
        render_timeout_s: wall-clock limit for one `render_pdf_pages` call.
        memory_bytes: address space the PDFium child may use.
        max_render_pages: pages one `render_pdf_pages` call renders.
        max_render_side: longest side of a page image, in pixels.
    """

    max_file_bytes: int = 300_000_000
    max_pages: int = 2_000
    max_text_bytes: int = 8_000_000
    text_timeout_s: float = 120.0
    render_timeout_s: float = 60.0
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    max_render_pages: int = 20
    max_render_side: int = 2048


#: Page images at 144 dpi: small print stays legible once the vision encoder tiles the page.
DEFAULT_RENDER_SCALE = 2.0


def needs_password(attachment: Attachment) -> bool:
    """Whether ingest refused this PDF for want of (the right) password.

    The UI asks the user and calls `ingest_path(path, blobs, password=...)` again.
    """
    return (
        attachment.status is AttachmentStatus.ERROR
        and attachment.mime == PDF_MIME
        and _PASSWORD_WORDS in attachment.detail
    )


def ingest_pdf(
    path: Path,
    name: str,
    source_path: str,
    blobs: BlobSink,
    *,
    file_size: int,
    password: str | None = None,
    limits: PdfLimits = PdfLimits(),
) -> Attachment:
    """Read a PDF's text page by page and store it as a document (plus the PDF, for page images).

    Args:
        path: the PDF file.
        name: its base name (used in page headers and citations).
        source_path: its absolute path.
        blobs: where the document and the PDF are stored.
        file_size: its size in bytes (already known from the caller's stat).
        password: the password of an encrypted PDF, once the user gave it.
        limits: pages, text, time and memory allowed.

    Returns:
        A READY DOCUMENT attachment whose blob is a `Document` (one section per page), or an
        ERROR one saying why not (`needs_password` tells the password case apart).
    """
    if file_size > limits.max_file_bytes:
        sentence = (
            f"{quoted(name)} is {human_size(file_size)}; Scout Desk reads PDF files up to "
            f"{human_size(limits.max_file_bytes)}."
        )
        return _failed(name, source_path, sentence)
    request = {
        "action": "text",
        "path": str(path),
        "password": password,
        "max_pages": limits.max_pages,
        "max_text_bytes": limits.max_text_bytes,
        "decrypted_copy": True,
    }
    with run_worker(
        _WORKER, request, timeout_s=limits.text_timeout_s, memory_bytes=limits.memory_bytes
    ) as outcome:
        problem = _problem(outcome, name, password, limits.text_timeout_s, limits.memory_bytes)
        if problem is not None:
            return _failed(name, source_path, problem)
        result = outcome.result or {}
        pages = [str(text) for text in result.get("pages", [])]
        page_count = int(result.get("page_count", len(pages)))
        decrypted = str(result.get("decrypted_file") or "")
        original = put_blob_file(blobs, outcome.workdir / decrypted if decrypted else path)
    notes = _notes(page_count, pages, limits, bool(result.get("text_truncated")))
    document = Document(
        name=name,
        source=DocumentSource.PDF,
        sections=tuple(Section(name, text, page=i) for i, text in enumerate(pages, 1)),
        page_count=page_count,
        original_sha256=original,
        notes=tuple(notes),
    )
    detail = "; ".join([_page_summary(page_count, pages), *notes])
    return document_attachment(document, detail, PDF_MIME, source_path, blobs)


def _page_summary(page_count: int, pages: Sequence[str]) -> str:
    summary = f"{page_count:,} page{'' if page_count == 1 else 's'}"
    empty = sum(1 for text in pages if not text.strip())
    if pages and empty == len(pages):
        return f"{summary}, no text found (a scan?): show its pages as images instead"
    if empty:
        return f"{summary}, {empty:,} without text (scans or figures: show them as images)"
    return summary


def _notes(page_count: int, pages: Sequence[str], limits: PdfLimits, cut: bool) -> list[str]:
    notes = []
    if page_count > limits.max_pages:
        notes.append(f"only the first {limits.max_pages:,} of {page_count:,} pages were read")
    if cut:
        notes.append(
            f"the text was cut at {human_size(limits.max_text_bytes)}, after page {len(pages):,}"
        )
    return notes


def render_pdf_pages(
    source: Path | str | bytes,
    pages: Sequence[int],
    blobs: BlobSink,
    scale: float = DEFAULT_RENDER_SCALE,
    *,
    name: str | None = None,
    password: str | None = None,
    source_path: str | None = None,
    limits: PdfLimits = PdfLimits(),
) -> list[Attachment]:
    """Render PDF pages as upright RGB image attachments, for tables, figures and scans.

    Args:
        source: the PDF file, or its bytes (a stored `Document.original_sha256` blob's path is
            the usual source: it needs no password).
        pages: 1-based page numbers, in the order wanted (at most `limits.max_render_pages`).
        blobs: where the images are stored.
        scale: 1.0 is 72 dpi; each page is also held to `limits.max_render_side` pixels.
        name: the PDF's name for the images' names ("report.pdf, page 3"); defaults to the
            file name.
        password: needed only for an encrypted original.
        source_path: the path the images report (`ask --json`); defaults to `source`'s, which
            for a stored copy is a blob path, so pass the original attachment's.
        limits: time, memory and size limits.

    Returns:
        One IMAGE attachment per page, named by `page_image_name`; a page that does not exist
        or could not be rendered gives an ERROR attachment saying so.
    """
    if isinstance(source, bytes):
        with tempfile.NamedTemporaryFile(prefix="scout-pdf-", suffix=".pdf") as copy:
            copy.write(source)
            copy.flush()
            return render_pdf_pages(
                Path(copy.name), pages, blobs, scale, name=name or "document.pdf",
                password=password, source_path=source_path or "", limits=limits,
            )  # fmt: skip
    path = Path(source)
    name = name or path.name
    source_path = str(path.absolute()) if source_path is None else source_path
    wanted = list(dict.fromkeys(int(p) for p in pages))[: limits.max_render_pages]
    request = {
        "action": "render",
        "path": str(path),
        "password": password,
        "pages": wanted,
        "scale": max(0.1, float(scale)),
        "max_side": limits.max_render_side,
    }
    timeout = limits.render_timeout_s
    with run_worker(_WORKER, request, timeout_s=timeout, memory_bytes=limits.memory_bytes) as out:
        problem = _problem(out, name, password, timeout, limits.memory_bytes)
        if problem is not None:
            return [_failed_page(name, p, source_path, problem) for p in wanted]
        return _page_images(out, name, source_path, blobs)


def _page_images(
    outcome: WorkerOutcome, name: str, source_path: str, blobs: BlobSink
) -> list[Attachment]:
    result = outcome.result or {}
    attachments = []
    for item in result.get("rendered", []):
        page_name = page_image_name(name, int(item["page"]))
        data = (outcome.workdir / Path(str(item["file"])).name).read_bytes()
        attachments.append(ingest_image(data, _PNG, page_name, source_path, blobs))
    page_count = int(result.get("page_count", 0))
    for page in result.get("missing", []):
        sentence = f"{quoted(name)} has no page {page} (it has {page_count:,})."
        attachments.append(_failed_page(name, int(page), source_path, sentence))
    return attachments


def _problem(
    outcome: WorkerOutcome, name: str, password: str | None, timeout_s: float, memory: int
) -> str | None:
    """The sentence for a failed worker run, or None when it answered with success."""
    if outcome.failure is Failure.TIMEOUT:
        return (
            f"{quoted(name)} took longer than {timeout_s:g} seconds to read and was stopped; "
            "it may be damaged or unusually complex."
        )
    if outcome.failure is not None:
        log.warning("PDF worker failed on %s (%s, exit %s): %s", name, outcome.failure,
                    outcome.returncode, outcome.log_tail)  # fmt: skip
        return (
            f"{quoted(name)} could not be read: the PDF reader stopped on it, which happens "
            f"when a file is damaged or needs more than {human_size(memory)} of memory "
            "(a decompression bomb)."
        )
    result: dict[str, Any] = outcome.result or {}
    if result.get("ok"):
        return None
    error = result.get("error")
    if error == "password":
        if password:
            return f"{quoted(name)} {_PASSWORD_WORDS} and the password given is not right."
        return f"{quoted(name)} {_PASSWORD_WORDS}; enter its password to read it."
    if error == "memory":
        return f"{quoted(name)} needs more than {human_size(memory)} of memory to read."
    if error == "security":
        return f"{quoted(name)} is encrypted in a way Scout Desk cannot open."
    log.info("PDFium refused %s: %s", name, result.get("message"))
    return f"{quoted(name)} is a PDF document but cannot be read: it looks damaged."


def _failed(name: str, source_path: str, sentence: str) -> Attachment:
    return failed(name, source_path, sentence, AttachmentKind.DOCUMENT, PDF_MIME)


def _failed_page(pdf_name: str, page: int, source_path: str, sentence: str) -> Attachment:
    # The mime stays the PDF's, so `needs_password` works for page images too.
    page_name = page_image_name(pdf_name, page)
    return failed(page_name, source_path, sentence, AttachmentKind.IMAGE, PDF_MIME)
