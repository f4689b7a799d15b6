"""PDF ingest through PDFium in a child process: pages, passwords, limits, bombs, page images."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

from app.core.documents import DocumentSource, document_from_json
from app.core.ingest import ingest_path, needs_password, render_pdf_pages
from app.core.ingest.pdf import PdfLimits, ingest_pdf
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.store.blobs import BlobStore
from tests.helpers.pdf_samples import DATA, encrypted_pdf, many_pages_pdf, text_pdf

PAGES = ["Quarterly report\nRevenue rose 12 percent.", "Costs (table)\nRent 4,000", "Outlook"]


def _only(attachments: list[Attachment]) -> Attachment:
    assert len(attachments) == 1
    return attachments[0]


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def test_text_is_read_page_by_page(files: Path, blobs: BlobStore) -> None:
    path = _write(files, "report.pdf", text_pdf(PAGES))

    att = _only(ingest_path(path, blobs))

    assert (att.kind, att.status, att.mime) == (
        AttachmentKind.DOCUMENT,
        AttachmentStatus.READY,
        "application/pdf",
    )
    assert att.detail == "3 pages"
    document = document_from_json(blobs.read(att.sha256))
    assert document.source is DocumentSource.PDF
    assert document.page_count == 3
    assert [(s.file, s.page) for s in document.sections] == [("report.pdf", n) for n in (1, 2, 3)]
    assert [s.text for s in document.sections] == PAGES
    assert att.size == len(blobs.read(att.sha256))
    # The PDF itself is kept, for page images later.
    assert blobs.read(document.original_sha256) == path.read_bytes()


def test_pages_without_text_are_pointed_out(files: Path, blobs: BlobStore) -> None:
    mixed = _only(ingest_path(_write(files, "mixed.pdf", text_pdf(["words", "", ""])), blobs))
    scan = _only(ingest_path(_write(files, "scan.pdf", text_pdf(["", ""])), blobs))

    assert mixed.detail == "3 pages, 2 without text (scans or figures: show them as images)"
    assert scan.status is AttachmentStatus.READY
    assert scan.detail == "2 pages, no text found (a scan?): show its pages as images instead"


def test_an_encrypted_pdf_asks_for_its_password(files: Path, blobs: BlobStore) -> None:
    path = _write(files, "secret.pdf", encrypted_pdf(["Launch codes: 0000"], "hunter2"))

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == "“secret.pdf” is password-protected; enter its password to read it."
    assert needs_password(att)
    assert att.sha256 is None and blobs.root.exists()


def test_a_wrong_password_is_told_apart(files: Path, blobs: BlobStore) -> None:
    path = _write(files, "secret.pdf", encrypted_pdf(["x"], "hunter2"))

    att = _only(ingest_path(path, blobs, password="hunter3"))

    assert needs_password(att)
    assert att.detail == ("“secret.pdf” is password-protected and the password given is not right.")


def test_the_right_password_reads_it_and_keeps_a_decrypted_copy(
    files: Path, blobs: BlobStore
) -> None:
    path = _write(files, "secret.pdf", encrypted_pdf(["Launch codes: 0000", "Page two"], "pw"))

    att = _only(ingest_path(path, blobs, password="pw"))

    assert att.status is AttachmentStatus.READY, att.detail
    assert not needs_password(att)
    document = document_from_json(blobs.read(att.sha256))
    assert [s.text for s in document.sections] == ["Launch codes: 0000", "Page two"]
    # Page images later need no password: the stored copy opens without one.
    copy = pdfium.PdfDocument(str(blobs.path(document.original_sha256)))
    assert len(copy) == 2
    copy.close()


def test_pages_past_the_limit_are_left_out_with_a_note(files: Path, blobs: BlobStore) -> None:
    path = _write(files, "long.pdf", many_pages_pdf(2_003, "same words"))

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY
    assert att.detail == "2,003 pages; only the first 2,000 of 2,003 pages were read"
    document = document_from_json(blobs.read(att.sha256))
    assert len(document.sections) == 2_000
    assert document.page_count == 2_003


def test_text_past_the_limit_is_cut_with_a_note(files: Path, blobs: BlobStore) -> None:
    path = _write(files, "wordy.pdf", text_pdf(["a" * 60, "b" * 60, "c" * 60]))

    att = ingest_pdf(
        path,
        "wordy.pdf",
        str(path),
        blobs,
        file_size=path.stat().st_size,
        limits=PdfLimits(max_text_bytes=100),
    )

    assert att.detail == "3 pages; the text was cut at 100 bytes, after page 2"
    document = document_from_json(blobs.read(att.sha256))
    assert [len(s.text) for s in document.sections] == [60, 40]


def test_an_oversized_pdf_is_refused_unopened(files: Path, blobs: BlobStore) -> None:
    path = _write(files, "big.pdf", text_pdf(["x"]))

    att = ingest_pdf(path, "big.pdf", str(path), blobs, file_size=400_000_000, limits=PdfLimits())

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == "“big.pdf” is 400.0 MB; Scout Desk reads PDF files up to 300.0 MB."


def test_a_flate_bomb_fails_fast_in_the_child(files: Path, blobs: BlobStore) -> None:
    # 2 KB on disk, 1 GiB of spaces once its doubly flate-encoded content stream is inflated.
    path = _write(files, "bomb.pdf", (DATA / "flate_bomb.pdf").read_bytes())

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert att.detail.startswith("“bomb.pdf” could not be read: the PDF reader stopped on it")
    assert "(a decompression bomb)" in att.detail


def test_a_pdf_that_takes_too_long_is_stopped(files: Path, blobs: BlobStore) -> None:
    path = _write(files, "slow.pdf", text_pdf(["x"]))

    # No real PDF is slow on purpose; a deadline shorter than starting Python stands in.
    att = ingest_pdf(
        path,
        "slow.pdf",
        str(path),
        blobs,
        file_size=path.stat().st_size,
        limits=PdfLimits(text_timeout_s=0.001),
    )

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == (
        "“slow.pdf” took longer than 0.001 seconds to read and was stopped; it may be damaged "
        "or unusually complex."
    )


def test_pages_render_as_image_attachments(files: Path, blobs: BlobStore) -> None:
    path = _write(files, "report.pdf", text_pdf(PAGES))

    images = render_pdf_pages(path, [2, 1, 9], blobs, scale=1.0)

    assert [(a.name, a.kind, a.status) for a in images] == [
        ("report.pdf, page 2", AttachmentKind.IMAGE, AttachmentStatus.READY),
        ("report.pdf, page 1", AttachmentKind.IMAGE, AttachmentStatus.READY),
        ("report.pdf, page 9", AttachmentKind.IMAGE, AttachmentStatus.ERROR),
    ]
    assert (images[0].width, images[0].height) == (612, 792)  # US Letter at 72 dpi
    assert images[2].detail == "“report.pdf” has no page 9 (it has 3)."
    with Image.open(blobs.path(images[0].sha256)) as page:
        # Black text on white: the page is mostly white, with some dark pixels.
        low, high = page.convert("L").getextrema()
        assert (low < 100, high) == (True, 255)


def test_page_images_are_held_to_a_size_and_come_from_the_stored_copy(
    files: Path, blobs: BlobStore
) -> None:
    path = _write(files, "secret.pdf", encrypted_pdf(["p1"], "pw"))
    att = _only(ingest_path(path, blobs, password="pw"))
    document = document_from_json(blobs.read(att.sha256))

    (image,) = render_pdf_pages(
        blobs.path(document.original_sha256),
        [1],
        blobs,
        scale=50.0,
        name="secret.pdf",
        source_path=att.source_path,
    )

    assert image.status is AttachmentStatus.READY, image.detail
    assert (image.name, image.source_path) == ("secret.pdf, page 1", str(path.absolute()))
    assert max(image.width, image.height) == 2048


def test_pages_render_from_bytes_and_encrypted_needs_the_password(blobs: BlobStore) -> None:
    locked = encrypted_pdf(["p1"], "pw")

    refused = render_pdf_pages(locked, [1], blobs, name="locked.pdf")
    (opened,) = render_pdf_pages(locked, [1], blobs, 0.5, name="locked.pdf", password="pw")

    assert [(a.status, needs_password(a)) for a in refused] == [(AttachmentStatus.ERROR, True)]
    assert (opened.status, opened.width, opened.height) == (AttachmentStatus.READY, 306, 396)


def test_rendering_a_damaged_pdf_explains_per_page(blobs: BlobStore) -> None:
    (att,) = render_pdf_pages(b"%PDF-1.4\nnot really", [3], blobs, name="junk.pdf")

    assert att.status is AttachmentStatus.ERROR
    assert att.name == "junk.pdf, page 3"
    assert att.detail == "“junk.pdf” is a PDF document but cannot be read: it looks damaged."
