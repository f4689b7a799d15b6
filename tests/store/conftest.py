"""Fixtures for the store tests: a real data folder, an open store, and real image bytes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.store.sessions import SessionStore


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data folder that does not exist yet (the store creates it)."""
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path) -> Iterator[SessionStore]:
    """A freshly opened store, closed after the test."""
    opened = SessionStore.open(data_dir)
    yield opened
    opened.close()


@pytest.fixture
def png_bytes() -> bytes:
    """A real 8x6 PNG written by Pillow."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()
