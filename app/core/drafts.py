"""The composer's unsent text, kept across restarts so closing the window never loses it."""

from __future__ import annotations

import logging
from pathlib import Path

from app.core.atomic import write_atomically

log = logging.getLogger(__name__)

DRAFT_FILE = "draft.txt"


def save_draft(data_dir: Path, text: str) -> None:
    """Keep `text` for the next start (an empty draft removes the file).

    A failure is logged and swallowed: the window is closing, and a notice could not be read.

    Args:
        data_dir: the data folder.
        text: what the composer holds.
    """
    path = data_dir / DRAFT_FILE
    try:
        if text.strip():
            write_atomically(path, text.encode("utf-8"), private=True)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not keep the unsent draft: %s", exc.strerror or exc)


def load_draft(data_dir: Path) -> str:
    """The draft kept by the last session ("" when there is none or it cannot be read)."""
    try:
        return (data_dir / DRAFT_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
