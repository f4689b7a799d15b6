"""Fixtures for the core tests: a real blob store and small helpers that write real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.store.blobs import BlobStore


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    """A real, empty blob store under the test's temp folder."""
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder for the files a test attaches (kept apart from the blob store)."""
    folder = tmp_path / "files"
    folder.mkdir()
    return folder
