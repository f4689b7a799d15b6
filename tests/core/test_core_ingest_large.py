"""Inputs at scale: a 10 MB text file read whole, a 200 MB / 20,000-file folder, lower limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.core.documents import EntryStatus, load_document
from app.core.ingest import ingest_path
from app.core.ingest.folder import FOLDER_MIME
from app.core.messages import AttachmentKind, AttachmentStatus
from app.core.settings import IngestLimits, Settings
from app.store.blobs import BlobStore

LINE = "The quick brown fox jumps over the lazy dog, line {n:07d}.\n"


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def _text(size: int) -> bytes:
    line_count = size // len(LINE.format(n=0)) + 1
    return "".join(LINE.format(n=n) for n in range(line_count)).encode("utf-8")


def test_a_10_mb_text_file_is_read_whole_and_stored_as_is(tmp_path: Path, blobs: BlobStore):
    data = _text(10_000_000)
    path = tmp_path / "big.log"
    path.write_bytes(data)

    (att,) = ingest_path(path, blobs)

    assert att.status is AttachmentStatus.READY, att.detail
    assert att.kind is AttachmentKind.TEXT
    assert att.size == len(data) > 10_000_000
    assert blobs.path(att.sha256).read_bytes() == data


def test_a_text_file_over_a_lowered_limit_names_the_setting(tmp_path: Path, blobs: BlobStore):
    path = tmp_path / "two.txt"
    path.write_bytes(_text(2_000_000))

    (att,) = ingest_path(path, blobs, limits=Settings(max_text_mb=1).ingest_limits())

    assert att.status is AttachmentStatus.ERROR
    assert att.detail == (
        "“two.txt” is 2.0 MB; Scout Desk reads text files up to 1.0 MB "
        "(the text file limit, set in Settings → Limits)."
    )


def test_folder_limits_from_settings_skip_later_files_and_say_where_to_change_them(
    tmp_path: Path, blobs: BlobStore
):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(150):
        (root / f"f{i:03d}.txt").write_bytes(b"x" * 1000)

    limits = IngestLimits(max_folder_files=100)
    (att,) = ingest_path(root, blobs, limits=limits)
    document = load_document(att, blobs.path)
    assert att.detail.startswith("100 files used, 50 skipped")
    reasons = {e.reason for e in document.entries if e.status is EntryStatus.SKIPPED}
    assert reasons == {"over the limit of 100 files (set in Settings → Limits)"}

    (att,) = ingest_path(root, blobs, limits=IngestLimits(max_folder_bytes=50_000))
    document = load_document(att, blobs.path)
    assert att.detail.startswith("50 files used, 100 skipped")
    reasons = {e.reason for e in document.entries if e.status is EntryStatus.SKIPPED}
    assert reasons == {"over the limit of 50.0 kB in all (set in Settings → Limits)"}


@pytest.mark.slow  # about 15 s on two cores: it writes and reads 200 MB
def test_a_200_mb_folder_of_20000_files_is_read_with_every_file_listed(
    tmp_path: Path, blobs: BlobStore
):
    root = tmp_path / "repo"
    small = _text(9_000)[:9_500].ljust(9_500, b"\n")
    large = _text(1_000_000)[:1_000_000]
    names: list[str] = []
    for d in range(100):
        folder = root / f"pkg{d:03d}"
        folder.mkdir(parents=True)
        for f in range(200 if d else 190):
            (folder / f"m{f:03d}.py").write_bytes(small)
            names.append(f"pkg{d:03d}/m{f:03d}.py")
    for i in range(10):  # a few large files, at the one-file limit
        (root / f"big{i}.txt").write_bytes(large)
        names.append(f"big{i}.txt")
    total = 19_990 * len(small) + 10 * len(large)
    assert len(names) == 20_000 and 199_000_000 < total <= 200_000_000

    start = time.perf_counter()
    (att,) = ingest_path(root, blobs)
    elapsed = time.perf_counter() - start
    print(f"\n200 MB / 20,000-file folder read in {elapsed:.1f} s")

    assert att.status is AttachmentStatus.READY, att.detail
    assert att.mime == FOLDER_MIME
    assert att.detail == "20,000 files used, 0 skipped"
    document = load_document(att, blobs.path)
    used = sorted(e.path for e in document.entries if e.status is EntryStatus.USED)
    assert used == sorted(names)
    assert sum(len(s.text) for s in document.sections) == total
