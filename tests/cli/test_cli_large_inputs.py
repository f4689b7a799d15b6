"""`scout-desk ask --doc` at scale: a 10 MB text file read whole, the limits from settings.json."""

from __future__ import annotations

from pathlib import Path

import pytest

import app.commands.ask as ask
from app.cli import main
from app.core.messages import Attachment, AttachmentStatus
from app.core.settings import Settings, save_settings

LINE = "The quick brown fox jumps over the lazy dog, line {n:07d}.\n"


def _text_file(path: Path, size: int) -> Path:
    line_count = size // len(LINE.format(n=0)) + 1
    path.write_text("".join(LINE.format(n=n) for n in range(line_count)), encoding="utf-8")
    return path


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[Attachment]:
    """What `ask` would have answered about (the model is not needed to test ingest)."""
    seen: list[Attachment] = []

    def answer(_args, _setup, _store, attachments, _interrupt) -> int:
        seen.extend(attachments)
        return 0

    monkeypatch.setattr(ask, "_answer", answer)
    return seen


def _ask(data: Path, model: Path, doc: Path) -> list[str]:
    return ["--data-dir", str(data), "ask", "--model", str(model), "--doc", str(doc), "Sum up."]


def test_ask_reads_a_10_mb_text_file_whole(tmp_path, answered):
    big = _text_file(tmp_path / "big.log", 10_000_000)
    (tmp_path / "model").mkdir()

    code = main(_ask(tmp_path / "data", tmp_path / "model", big))

    assert code == 0
    (attachment,) = answered
    assert attachment.status is AttachmentStatus.READY, attachment.detail
    assert attachment.size == big.stat().st_size > 10_000_000


def test_ask_takes_the_text_limit_from_settings(tmp_path, answered, capsys):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    save_settings(data / "settings.json", Settings(max_text_mb=1))
    two_mb = _text_file(tmp_path / "two.txt", 2_000_000)
    (tmp_path / "model").mkdir()

    code = main(_ask(data, tmp_path / "model", two_mb))

    assert code != 0
    assert answered == []
    err = capsys.readouterr().err
    assert "“two.txt” is 2.0 MB; Scout Desk reads text files up to 1.0 MB" in err
    assert "set in Settings → Limits" in err
