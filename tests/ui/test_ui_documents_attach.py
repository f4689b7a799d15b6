"""Attaching documents: chips, reports, PDF passwords and page images, hostile files."""

from __future__ import annotations

from pathlib import Path

import docx
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDialog

from app.core.documents import load_document
from tests.helpers.offscreen import drop_files
from tests.helpers.pdf_samples import DATA, encrypted_pdf, text_pdf


def _wait_read(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.composer.chips.is_reading(), timeout=20_000)


def _project(root: Path) -> Path:
    """A small code folder: two files used, a binary, an ignored build folder and a dotfile."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("def main():\n    return 42\n", encoding="utf-8")
    (root / "README.md").write_text("# Project\n\nIt answers 42.\n", encoding="utf-8")
    (root / "logo.bin").write_bytes(b"\x00\x01binary\x00" * 64)
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("print('built')\n", encoding="utf-8")
    (root / ".gitignore").write_text("build/\n", encoding="utf-8")
    return root


def test_a_folder_chip_says_what_was_read_and_its_report_drops_files(qtbot, open_window, tmp_path):
    folder = _project(tmp_path / "proj")
    window = open_window()
    drop_files(window, [folder])
    _wait_read(qtbot, window)

    (chip,) = window.composer.chips.chips()
    assert chip.is_document
    assert chip.status_text.startswith("3 files, ") and "skipped" in chip.status_text
    assert "proj/ — 3 files" in chip._label.text()

    chip.activated.emit()  # a click on a document chip opens its report
    qtbot.waitUntil(lambda: window.documents.report is not None, timeout=10_000)
    report = window.documents.report
    skipped = [
        report.tree.topLevelItem(i)
        for i in range(report.tree.topLevelItemCount())
        if report.tree.topLevelItem(i).text(3).startswith("skipped")
    ]
    assert any("logo.bin" in item.text(0) for item in skipped)
    assert all(item.isDisabled() for item in skipped)  # a skipped file cannot be ticked in
    assert report.kept() == {".gitignore", "README.md", "src/main.py"}

    report.row("README.md").setCheckState(1, Qt.CheckState.Unchecked)
    report.row(".gitignore").setCheckState(1, Qt.CheckState.Unchecked)
    report.done(QDialog.DialogCode.Accepted)
    qtbot.waitUntil(lambda: chip.status_text.startswith("1 file,"), timeout=10_000)

    (attachment,) = window.composer.chips.ready_attachments()
    document = load_document(attachment, window._store.blobs.path)
    assert [s.file for s in document.sections] == ["src/main.py"]
    dropped = {e.path: e.reason for e in document.entries if e.reason == "left out by you"}
    assert set(dropped) == {"README.md", ".gitignore"}

    # The report always starts from what was read, so a dropped file can be ticked back in.
    chip.activated.emit()
    qtbot.waitUntil(lambda: window.documents.report is not None, timeout=10_000)
    report = window.documents.report
    assert report.kept() == {"src/main.py"}
    report.row("README.md").setCheckState(1, Qt.CheckState.Checked)
    report.done(QDialog.DialogCode.Accepted)
    qtbot.waitUntil(lambda: chip.status_text.startswith("2 files,"), timeout=10_000)


def test_a_locked_pdf_asks_for_its_password_and_retries_after_a_wrong_one(
    qtbot, open_window, tmp_path
):
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(encrypted_pdf(["Top secret page"], "open sesame"))
    window = open_window()
    asked: list[tuple[str, bool]] = []
    answers = iter(["guess", "open sesame"])

    def prompt(_parent, name: str, wrong: bool) -> str | None:
        asked.append((name, wrong))
        return next(answers)

    window.composer.ask_password = prompt
    drop_files(window, [locked])
    _wait_read(qtbot, window)

    assert asked == [("locked.pdf", False), ("locked.pdf", True)]
    (chip,) = window.composer.chips.chips()
    assert chip.state == "ready" and chip.status_text == "1 page"
    document = load_document(chip.attachment, window._store.blobs.path)
    assert "Top secret page" in document.sections[0].text


def test_a_pdf_whose_password_is_not_given_stays_an_error_chip_that_says_so(
    qtbot, open_window, tmp_path
):
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(encrypted_pdf(["x"], "pw"))
    window = open_window()
    window.composer.ask_password = lambda _parent, _name, _wrong: None
    drop_files(window, [locked])
    _wait_read(qtbot, window)
    (chip,) = window.composer.chips.chips()
    assert chip.state == "error"
    assert "password-protected" in chip.status_text


def test_a_pdf_can_go_as_page_images_chosen_in_its_report(qtbot, open_window, tmp_path):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(text_pdf(["Page one text", "Page two: the chart", "Page three"]))
    window = open_window()
    drop_files(window, [pdf])
    _wait_read(qtbot, window)
    chips = window.composer.chips
    (chip,) = chips.chips()
    assert chip.is_pdf and chip.status_text == "3 pages"

    chips.pdf_mode_requested.emit(chip, "images")
    qtbot.waitUntil(lambda: len(chips.page_chips(chip)) == 3, timeout=20_000)
    assert chip.status_text == "3 pages · page images"
    sent = chips.ready_attachments()
    assert [a.name for a in sent] == [f"report.pdf, page {n}" for n in (1, 2, 3)]
    assert all(a.width and a.height for a in sent)  # real images, counted by the meter

    chips.pages_requested.emit(chip)
    qtbot.waitUntil(lambda: window.documents.report is not None, timeout=10_000)
    report = window.documents.report
    assert report.image_pages() == [1, 2, 3]
    for page in (1, 3):
        report.row(f"page {page}").setCheckState(2, Qt.CheckState.Unchecked)
    report.done(QDialog.DialogCode.Accepted)
    qtbot.waitUntil(
        lambda: [c.name for c in chips.page_chips(chip)] == ["report.pdf, page 2"],
        timeout=20_000,
    )
    assert chip.pdf_mode == "both"  # text was still ticked
    assert [a.name for a in chips.ready_attachments()] == ["report.pdf", "report.pdf, page 2"]

    chips.pdf_mode_requested.emit(chip, "text")
    assert chips.page_chips(chip) == []
    assert [a.name for a in chips.ready_attachments()] == ["report.pdf"]


def test_the_page_image_column_holds_at_most_five_pages(qtbot, open_window, tmp_path):
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(text_pdf([f"page {n}" for n in range(1, 8)]))
    window = open_window()
    drop_files(window, [pdf])
    _wait_read(qtbot, window)
    (chip,) = window.composer.chips.chips()
    window.composer.chips.pages_requested.emit(chip)
    qtbot.waitUntil(lambda: window.documents.report is not None, timeout=10_000)
    report = window.documents.report
    for page in range(1, 8):
        report.row(f"page {page}").setCheckState(2, Qt.CheckState.Checked)
    assert report.image_pages() == [1, 2, 3, 4, 5]
    assert "5 images at most" in report.note.text()
    report.done(QDialog.DialogCode.Rejected)


def test_a_word_file_chip_counts_its_words(qtbot, open_window, tmp_path):
    path = tmp_path / "notes.docx"
    document = docx.Document()
    document.add_paragraph("Scout reads Word files too.")
    document.save(str(path))
    window = open_window()
    drop_files(window, [path])
    _wait_read(qtbot, window)
    (chip,) = window.composer.chips.chips()
    assert chip.is_document and not chip.is_pdf
    assert chip.status_text == "5 words"


def test_a_flate_bomb_becomes_an_error_chip_while_the_window_keeps_running(
    qtbot, open_window, tmp_path
):
    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes((DATA / "flate_bomb.pdf").read_bytes())
    window = open_window()
    ticks: list[int] = []
    timer = QTimer(window)
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    drop_files(window, [bomb])
    assert window.composer.chips.chips()[0].status_text == "reading…"
    _wait_read(qtbot, window)
    timer.stop()
    (chip,) = window.composer.chips.chips()
    assert chip.state == "error"
    assert "bomb.pdf" in chip.attachment.detail
    assert ticks  # the GUI thread went on handling events while the PDF was read
    window.composer.editor.setFocus()
    qtbot.keyClicks(window.composer.editor, "still typing")
    assert window.composer.text() == "still typing"
