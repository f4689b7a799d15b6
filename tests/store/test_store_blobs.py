"""Attachment blobs: content-addressed layout, dedupe, streaming copies, no leftovers."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from app.store.blobs import GC_GRACE_S, BlobStore
from app.store.db import StoreError


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_bytes_stores_once_under_its_digest(tmp_path: Path, png_bytes: bytes) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    sha = blobs.put_bytes(png_bytes)
    assert sha == hashlib.sha256(png_bytes).hexdigest()
    assert blobs.path(sha) == tmp_path / "blobs" / sha[:2] / sha
    assert blobs.read(sha) == png_bytes
    assert blobs.put_bytes(png_bytes) == sha
    assert _files(tmp_path / "blobs") == [blobs.path(sha)]  # deduplicated, no temp files left


def test_put_file_streams_a_large_file_and_dedupes_with_put_bytes(tmp_path: Path) -> None:
    source = tmp_path / "video.bin"
    data = os.urandom(3 * (1 << 20) + 17)  # spans several copy chunks
    source.write_bytes(data)
    blobs = BlobStore(tmp_path / "blobs")
    sha = blobs.put_file(source)
    assert sha == hashlib.sha256(data).hexdigest()
    assert blobs.read(sha) == data
    assert blobs.put_bytes(data) == sha
    assert blobs.put_file(source) == sha
    assert _files(tmp_path / "blobs") == [blobs.path(sha)]


def test_an_unreadable_source_names_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    missing = tmp_path / "gone.png"
    with pytest.raises(StoreError, match=r"gone\.png"):
        blobs.put_file(missing)
    with pytest.raises(StoreError, match="Cannot read"):
        blobs.put_file(tmp_path)  # a folder, not a file
    assert _files(tmp_path / "blobs") == []


def test_reading_a_missing_blob_is_a_store_error_naming_it(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    sha = "ab" * 32
    with pytest.raises(StoreError) as caught:
        blobs.read(sha)
    assert sha in caught.value.message
    assert not blobs.has(sha)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "AB" * 32, "ab" * 31, "", "zz" * 32])
def test_names_that_are_not_digests_never_become_paths(tmp_path: Path, bad: str) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="SHA-256"):
        blobs.path(bad)


def test_stale_temp_files_from_a_crash_are_cleared_on_open(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    (root / "ab").mkdir(parents=True)
    stale, fresh = root / "ab" / ".tmp-old", root / ".tmp-new"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"in flight in another process")
    old = time.time() - GC_GRACE_S - 60
    os.utime(stale, (old, old))
    BlobStore(root)
    assert not stale.exists()
    assert fresh.exists()


def test_collect_spares_used_and_recently_touched_blobs(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    used, unused, recent = (blobs.put_bytes(x) for x in (b"used", b"unused", b"recent"))
    old = time.time() - GC_GRACE_S - 60
    for sha in (used, unused):
        os.utime(blobs.path(sha), (old, old))
    assert blobs.collect([used, unused, recent, "not-a-digest"], still_used=[used]) == 1
    assert blobs.has(used) and blobs.has(recent) and not blobs.has(unused)


def test_putting_an_existing_blob_again_refreshes_its_grace(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    sha = blobs.put_bytes(b"dropped again")
    old = time.time() - GC_GRACE_S - 60
    os.utime(blobs.path(sha), (old, old))
    blobs.put_bytes(b"dropped again")  # a composer holds it again: GC must wait
    assert blobs.collect([sha], still_used=[]) == 0
    assert blobs.has(sha)
