"""Word ingest: paragraphs, headings and tables; archives vetted before anything is inflated."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import docx
import pytest

from app.core.documents import DocumentSource, document_from_json
from app.core.ingest import ingest_path
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.store.blobs import BlobStore


def _only(attachments: list[Attachment]) -> Attachment:
    assert len(attachments) == 1
    return attachments[0]


def _docx_bytes(*paragraphs: str) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _rezip(original: bytes, replace: dict[str, bytes], extra: dict[str, bytes]) -> bytes:
    """The same DOCX with some parts replaced and others added."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(original)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            target.writestr(info.filename, replace.get(info.filename, source.read(info)))
        for name, data in extra.items():
            target.writestr(name, data)
    return out.getvalue()


def _declare_size(archive: bytes, member: str, size: int) -> bytes:
    """Rewrite the uncompressed size the central directory declares for `member`."""
    data = bytearray(archive)
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == member.encode():
            struct.pack_into("<I", data, at + 24, size)
            return bytes(data)
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{member} not in the archive")


def _ingest(files: Path, blobs: BlobStore, data: bytes, name: str = "report.docx") -> Attachment:
    path = files / name
    path.write_bytes(data)
    return _only(ingest_path(path, blobs))


def test_paragraphs_headings_lists_and_tables_are_read_in_order(
    files: Path, blobs: BlobStore
) -> None:
    document = docx.Document()
    document.add_heading("Annual report", level=0)
    document.add_heading("Sales", level=1)
    document.add_paragraph("Sales grew in every region.")
    document.add_paragraph("North did best", style="List Bullet")
    table = document.add_table(rows=3, cols=2)
    rows = [("Region", "Sales"), ("North", "12|3"), ("South", "7")]
    for row, cells in zip(table.rows, rows, strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.add_heading("Risks", level=2)
    document.add_paragraph("")  # empty paragraphs are dropped
    document.add_paragraph("Currency.")
    path = files / "annual.docx"
    document.save(str(path))

    att = _only(ingest_path(path, blobs))

    assert (att.kind, att.status) == (AttachmentKind.DOCUMENT, AttachmentStatus.READY)
    parsed = document_from_json(blobs.read(att.sha256))
    assert parsed.source is DocumentSource.DOCX
    (section,) = parsed.sections
    assert (section.file, section.page) == ("annual.docx", None)
    assert section.text.split("\n") == [
        "# Annual report",
        "# Sales",
        "Sales grew in every region.",
        "- North did best",
        "| Region | Sales |",
        "|---|---|",
        "| North | 12\\|3 |",
        "| South | 7 |",
        "",
        "## Risks",
        "Currency.",
    ]
    assert att.detail == f"{len(section.text.split())} words"


def test_a_document_without_text_is_refused(files: Path, blobs: BlobStore) -> None:
    att = _ingest(files, blobs, _docx_bytes("", "   "), "blank.docx")

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == "“blank.docx” has no text in it."


def test_a_zip_bomb_is_refused_by_its_ratio_before_inflating(files: Path, blobs: BlobStore) -> None:
    original = _docx_bytes("Hello")
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        xml = archive.read("word/document.xml")
    padded = xml.replace(b"<w:body>", b"<w:body>" + b" " * 40_000_000, 1)
    bomb = _rezip(original, {"word/document.xml": padded}, {})
    assert len(bomb) < 200_000

    att = _ingest(files, blobs, bomb, "bomb.docx")

    assert att.status is AttachmentStatus.ERROR
    assert att.detail.startswith("“bomb.docx” was not opened: one part would inflate ")
    assert att.detail.endswith(" times (a ZIP bomb?).")


def test_a_huge_declared_size_is_refused(files: Path, blobs: BlobStore) -> None:
    declared = _declare_size(_docx_bytes("Hello"), "word/document.xml", 3_000_000_000)

    att = _ingest(files, blobs, declared, "huge.docx")

    assert att.detail == "“huge.docx” was not opened: one part would inflate to 3000.0 MB."


def test_a_part_larger_than_declared_is_never_inflated_past_it(
    files: Path, blobs: BlobStore
) -> None:
    # zipfile stops at the declared size, so a lie shows as damage, not as memory use.
    original = _docx_bytes("Hello " * 1000)
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        real_size = archive.getinfo("word/document.xml").file_size
    lying = _declare_size(original, "word/document.xml", real_size // 2)

    att = _ingest(files, blobs, lying, "lying.docx")

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == "“lying.docx” is a Word document but looks damaged."


def test_too_many_entries_are_refused_from_the_end_record(files: Path, blobs: BlobStore) -> None:
    extra = {f"extra/item{i}.xml": b"<a/>" for i in range(2_100)}

    att = _ingest(files, blobs, _rezip(_docx_bytes("Hi"), {}, extra), "crowded.docx")

    assert att.detail.startswith("“crowded.docx” was not opened: it holds 2,1")
    assert att.detail.endswith(" files (a Word document has a few dozen).")


def test_a_plain_zip_of_many_entries_is_refused_unparsed(files: Path, blobs: BlobStore) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(12_000):
            archive.writestr(f"f{i}", b"")

    att = _ingest(files, blobs, buffer.getvalue(), "many.zip")

    assert att.detail == "“many.zip” is a ZIP archive of 12,000 files; it was not opened."


@pytest.mark.parametrize("entry", ["../../escape.xml", "/etc/evil.xml", "a/b/c/d/e/f/g/h/i.xml"])
def test_unsafe_or_deeply_nested_paths_are_refused(
    files: Path, blobs: BlobStore, entry: str
) -> None:
    data = _rezip(_docx_bytes("Hi"), {}, {entry: b"<a/>"})

    att = _ingest(files, blobs, data, "paths.docx")

    assert att.status is AttachmentStatus.ERROR
    assert att.detail.startswith("“paths.docx” was not opened: it holds a file ")


def test_deeply_nested_xml_is_refused_as_damaged(files: Path, blobs: BlobStore) -> None:
    original = _docx_bytes("Hi")
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        xml = archive.read("word/document.xml")
    deep = b"<w:p>" * 50_000 + b"</w:p>" * 50_000
    nested = xml.replace(b"<w:body>", b"<w:body>" + deep, 1)

    att = _ingest(files, blobs, _rezip(original, {"word/document.xml": nested}, {}), "deep.docx")

    assert att.detail == "“deep.docx” is a Word document but looks damaged."


def test_an_encrypted_or_old_office_file_is_explained(files: Path, blobs: BlobStore) -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4000)

    att = _ingest(files, blobs, ole, "locked.docx")

    assert att.status is AttachmentStatus.ERROR
    assert att.detail.startswith("“locked.docx” is an old-format or password-protected Office")
