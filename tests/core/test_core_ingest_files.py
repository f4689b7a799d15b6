"""Ingest of text, binaries, special files, videos and documents: by content, never raising."""

from __future__ import annotations

import os
import tempfile
import wave
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.ingest import MAX_TEXT_BYTES, IngestLimits, ingest_path
from app.core.messages import AttachmentKind, AttachmentStatus
from app.core.video import info_from_detail
from app.store.blobs import BlobStore

TEXT = "Grüße aus Köln – “quoted” café\nline two\n"


def _only(attachments: list) -> object:
    assert len(attachments) == 1
    return attachments[0]


@pytest.mark.parametrize(
    ("encoded", "note"),
    [
        (TEXT.encode("utf-8"), ""),
        (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), ""),
        (TEXT.encode("utf-16"), ""),  # with its BOM, in this machine's byte order
        (b"\xff\xfe" + TEXT.encode("utf-16-le"), ""),
        (b"\xfe\xff" + TEXT.encode("utf-16-be"), ""),
        (TEXT.encode("cp1252"), "read as Windows-1252"),
    ],
    ids=["utf8", "utf8-bom", "utf16", "utf16-le", "utf16-be", "cp1252"],
)
def test_text_in_any_common_encoding_is_stored_as_utf8(
    files: Path, blobs: BlobStore, encoded: bytes, note: str
) -> None:
    path = files / "notes.txt"
    path.write_bytes(encoded)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY, att.detail
    assert (att.kind, att.mime) == (AttachmentKind.TEXT, "text/plain")
    assert blobs.read(att.sha256).decode("utf-8") == TEXT
    assert att.size == len(TEXT.encode("utf-8"))
    if note:
        assert att.detail.startswith("“notes.txt” is not UTF-8") and note in att.detail
    else:
        assert att.detail == ""


def test_bytes_undefined_in_cp1252_fall_back_to_latin1(files: Path, blobs: BlobStore) -> None:
    path = files / "old.txt"
    path.write_bytes(b"caf\xe9 \x81 ok")  # 0x81 has no cp1252 meaning

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY
    assert "Latin-1" in att.detail
    assert blobs.read(att.sha256).decode("utf-8") == "café \x81 ok"


def test_windows_line_endings_become_unix(files: Path, blobs: BlobStore) -> None:
    path = files / "crlf.txt"
    path.write_bytes(b"a\r\nb\rc\n")

    att = _only(ingest_path(path, blobs))

    assert blobs.read(att.sha256) == b"a\nb\nc\n"


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("README.md", "text/markdown"),
        ("table.CSV", "text/csv"),
        ("data.json", "application/json"),
        ("sheet.tsv", "text/tab-separated-values"),
        ("script.py", "text/x-python"),
        ("main.rs", "text/x-rust"),
        ("no_suffix", "text/plain"),
    ],
)
def test_the_name_refines_the_text_subtype(
    files: Path, blobs: BlobStore, name: str, mime: str
) -> None:
    path = files / name
    path.write_text('{"a": 1}\n', encoding="utf-8")

    att = _only(ingest_path(path, blobs))

    assert (att.status, att.kind, att.mime) == (AttachmentStatus.READY, AttachmentKind.TEXT, mime)


@pytest.mark.parametrize(
    "content",
    [
        b"\x7fELF\x02\x01\x01\x00" + bytes(64),
        b"PK-not-really\x00\x01\x02",
        b"MZ\x90\x00\x03\x00\x00\x00",
        b"abc" * 2000 + b"\x00",  # a NUL past the first kilobytes, still in the sniffed head
        b"abc" * 5000 + b"\x00",  # a NUL past the sniffed head: found once the text is decoded
        bytes(range(1, 32)) * 40,  # no NUL, but control characters, not text
    ],
    ids=["elf", "junk", "exe", "nul", "late-nul", "controls"],
)
def test_binaries_are_refused(files: Path, blobs: BlobStore, content: bytes) -> None:
    path = files / "program.md"
    path.write_bytes(content)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert att.detail.startswith("“program.md” looks like a binary file")


def test_text_over_the_cap_is_refused_with_sizes(files: Path, blobs: BlobStore) -> None:
    path = files / "big.log"
    path.write_bytes(b"a" * (4_000_000 + 1))

    att = _only(ingest_path(path, blobs, limits=IngestLimits(max_text_bytes=4_000_000)))

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == (
        "“big.log” is 4.0 MB; Scout Desk reads text files up to 4.0 MB "
        "(the text file limit, set in Settings → Limits)."
    )


def test_text_exactly_at_the_cap_is_accepted(files: Path, blobs: BlobStore) -> None:
    path = files / "edge.txt"
    path.write_bytes(b"b" * 4_000_000)

    att = _only(ingest_path(path, blobs, limits=IngestLimits(max_text_bytes=4_000_000)))

    assert att.status is AttachmentStatus.READY
    assert att.size == 4_000_000


def test_the_default_text_cap_is_64_mb() -> None:
    assert MAX_TEXT_BYTES == 64_000_000 == IngestLimits().max_text_bytes


def test_whitespace_only_file_has_no_text(files: Path, blobs: BlobStore) -> None:
    path = files / "blank.txt"
    path.write_bytes(b" \n\t\r\n")

    att = _only(ingest_path(path, blobs))

    assert (att.status, att.detail) == (AttachmentStatus.ERROR, "“blank.txt” has no text in it.")


def test_empty_file(files: Path, blobs: BlobStore) -> None:
    path = files / "empty.png"
    path.touch()

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert att.kind is AttachmentKind.IMAGE  # guessed from the name: nothing to sniff
    assert att.detail == "“empty.png” is empty (0 bytes)."


def test_missing_file(files: Path, blobs: BlobStore) -> None:
    att = _only(ingest_path(str(files / "gone.txt"), blobs))  # a str path works too

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == "“gone.txt” does not exist (it may have moved)."
    assert att.source_path == str(files / "gone.txt")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(files: Path, blobs: BlobStore) -> None:
    path = files / "secret.txt"
    path.write_text("x")
    path.chmod(0)
    try:
        att = _only(ingest_path(path, blobs))
    finally:
        path.chmod(0o600)

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == "“secret.txt” cannot be read: permission denied."


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.timeout(20)
def test_named_pipe_is_never_opened(files: Path, blobs: BlobStore) -> None:
    path = files / "pipe.txt"
    os.mkfifo(path)  # opening it for reading would block until a writer came

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == "“pipe.txt” is a named pipe, not a regular file."


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.timeout(20)
def test_device_is_never_read(blobs: BlobStore) -> None:
    att = _only(ingest_path(Path("/dev/zero"), blobs))  # reading it would never end

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == "“zero” is a character device, not a regular file."


def test_a_folder_becomes_one_document(files: Path, blobs: BlobStore) -> None:
    folder = files / "project"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")

    att = _only(ingest_path(folder, blobs))

    assert (att.kind, att.status, att.mime) == (
        AttachmentKind.DOCUMENT,
        AttachmentStatus.READY,
        "inode/directory",
    )
    assert att.detail == "1 file used, 0 skipped"


def _real_video(path: Path, fourcc: str) -> None:
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (32, 24))
    if not writer.isOpened():
        pytest.skip(f"OpenCV cannot write {fourcc}")
    for i in range(5):
        writer.write(np.full((24, 32, 3), i * 40, dtype=np.uint8))
    writer.release()


@pytest.mark.parametrize(
    ("name", "fourcc", "mime"),
    [("clip.mp4", "mp4v", "video/mp4"), ("clip.avi", "MJPG", "video/x-msvideo")],
)
def test_real_videos_are_ready_with_their_probed_facts(
    files: Path, blobs: BlobStore, name: str, fourcc: str, mime: str
) -> None:
    path = files / name
    _real_video(path, fourcc)

    att = _only(ingest_path(path, blobs))

    assert (att.kind, att.status, att.mime) == (
        AttachmentKind.VIDEO,
        AttachmentStatus.READY,
        mime,
    )
    assert att.sha256 is not None and blobs.path(att.sha256).read_bytes() == path.read_bytes()
    info = info_from_detail(att.detail)
    assert info is not None and info.frame_count > 0 and info.duration_s > 0


@pytest.mark.parametrize(
    ("content", "mime"),
    [
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "video/quicktime"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x10mdat", "video/quicktime"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska"),
    ],
    ids=["mov", "old-mov", "webm", "mkv"],
)
def test_video_containers_without_a_real_video_are_refused_by_name(
    files: Path, blobs: BlobStore, content: bytes, mime: str
) -> None:
    path = files / "movie.bin"
    path.write_bytes(content + bytes(200))

    att = _only(ingest_path(path, blobs))

    # Recognised as the container its header claims, then refused because nothing decodes.
    assert (att.kind, att.status, att.mime) == (
        AttachmentKind.VIDEO,
        AttachmentStatus.ERROR,
        mime,
    )
    assert "movie.bin" in att.detail


def test_a_pdf_without_pages_is_refused_as_damaged(files: Path, blobs: BlobStore) -> None:
    path = files / "paper.dat"  # judged by content: the name is no hint
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n")

    att = _only(ingest_path(path, blobs))

    assert (att.kind, att.status, att.mime) == (
        AttachmentKind.DOCUMENT,
        AttachmentStatus.ERROR,
        "application/pdf",
    )
    assert att.detail == "“paper.dat” is a PDF document but cannot be read: it looks damaged."


def test_docx_is_recognised_by_its_contents(files: Path, blobs: BlobStore) -> None:
    docx = pytest.importorskip("docx")
    path = files / "report.zip"  # the name is no hint
    document = docx.Document()
    document.add_paragraph("Hello")
    document.save(str(path))

    att = _only(ingest_path(path, blobs))

    assert (att.kind, att.status) == (AttachmentKind.DOCUMENT, AttachmentStatus.READY)
    assert att.mime.endswith("wordprocessingml.document")
    assert att.detail == "1 word"


def test_other_zip_is_refused(files: Path, blobs: BlobStore) -> None:
    path = files / "bundle.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hi")

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert "“bundle.docx” is a ZIP archive" in att.detail


def test_damaged_zip_is_refused(files: Path, blobs: BlobStore) -> None:
    path = files / "broken.docx"
    path.write_bytes(b"PK\x03\x04" + bytes(300))

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert "“broken.docx” is a ZIP-based file but cannot be read" in att.detail


def test_audio_is_refused(files: Path, blobs: BlobStore) -> None:
    path = files / "voice.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(1600))

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == "“voice.wav” is a WAV audio file; Scout Desk does not work with audio."


def test_symlink_to_a_file_is_followed(files: Path, blobs: BlobStore) -> None:
    target = files / "real.txt"
    target.write_text("linked text")
    link = files / "link.txt"
    try:
        link.symlink_to(target)
    except OSError:
        pytest.skip("cannot create symlinks here")

    att = _only(ingest_path(link, blobs))

    assert att.status is AttachmentStatus.READY
    assert att.name == "link.txt"
    assert blobs.read(att.sha256) == b"linked text"


_MAGICS = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"BM",
    b"PK\x03\x04",
    b"%PDF-",
    b"\x00\x00\x00\x18ftyp",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    magic=st.sampled_from(_MAGICS),
    body=st.binary(max_size=600),
    name=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"),
        min_size=1,
        max_size=20,
    ).filter(lambda n: n not in (".", "..")),
)
def test_ingest_never_raises_and_always_explains(magic: bytes, body: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = BlobStore(Path(tmp) / "blobs")
        path = Path(tmp) / name
        try:
            path.write_bytes(magic + body)
        except OSError:
            return  # a name this file system will not take
        att = _only(ingest_path(path, store))
        assert att.name == name
        if att.status is AttachmentStatus.READY:
            assert att.sha256 is not None and store.has(att.sha256)
        else:
            assert att.detail.startswith(f"“{name}”")
            assert att.sha256 is None
