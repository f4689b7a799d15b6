"""The composer: Enter vs Shift+Enter, drops anywhere on the window, pasting files and images."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QImage
from PySide6.QtWidgets import QToolButton

from tests.helpers.offscreen import drop_files


def _wait_read(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.composer.chips.is_reading(), timeout=10_000)


def test_enter_sends_and_shift_enter_breaks_the_line(qtbot, open_window):
    window = open_window()
    editor = window.composer.editor
    editor.setFocus()
    qtbot.keyClicks(editor, "first line")
    with qtbot.assertNotEmitted(window.composer.send_requested):
        qtbot.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(editor, "second line")
    assert window.composer.text() == "first line\nsecond line"
    with qtbot.waitSignal(window.composer.send_requested):
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=10_000)
    sent = window._store.messages(window.controller.session_id)[0]
    assert sent.text == "first line\nsecond line"
    assert window.composer.text() == ""


def test_dropping_a_png_and_an_empty_file_gives_a_ready_and_an_error_chip(
    qtbot, open_window, tmp_path
):
    picture = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (10, 200, 90)).save(picture)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    window = open_window()

    enter, drop = drop_files(window, [picture, empty])
    assert enter.isAccepted() and drop.isAccepted()
    chips = window.composer.chips.chips()
    assert [c.status_text for c in chips] == ["reading…", "reading…"]
    _wait_read(qtbot, window)

    ready, error = window.composer.chips.chips()
    assert (ready.name, ready.status_text) == ("photo.png", "ready")
    assert ready.attachment.width == 40 and ready.attachment.height == 30
    assert error.name == "empty.png"
    assert error.status_text.startswith("error: ")
    assert "empty" in error.status_text
    assert "empty" in error.toolTip()
    assert window.composer.chips.ready_attachments() == [ready.attachment]


def test_drop_on_a_child_widget_reaches_the_composer_and_chips_can_be_removed(
    qtbot, open_window, tmp_path
):
    note = tmp_path / "notes.txt"
    note.write_text("hello notes\n", encoding="utf-8")
    window = open_window()
    drop_files(window.sidebar.list_view.viewport(), [note])
    _wait_read(qtbot, window)
    (chip,) = window.composer.chips.chips()
    assert chip.status_text == "ready"
    assert window.composer.chips.isVisibleTo(window)
    chip.findChild(QToolButton).click()
    assert window.composer.chips.chips() == []
    assert not window.composer.chips.isVisibleTo(window)


def test_pasting_an_image_saves_it_as_png_and_attaches_it(qtbot, open_window):
    window = open_window()
    image = QImage(32, 16, QImage.Format.Format_RGB32)
    image.fill(QColor("#3366cc"))
    QGuiApplication.clipboard().setImage(image)
    window.composer.editor.setFocus()
    window.composer.editor.paste()
    _wait_read(qtbot, window)
    (chip,) = window.composer.chips.chips()
    assert chip.status_text == "ready"
    assert chip.attachment.mime == "image/png"
    assert (chip.attachment.width, chip.attachment.height) == (32, 16)
    assert window.composer.text() == ""


def test_pasting_copied_files_attaches_them_instead_of_their_paths(qtbot, open_window, tmp_path):
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n", encoding="utf-8")
    window = open_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(source))])
    mime.setText(str(source))
    QGuiApplication.clipboard().setMimeData(mime)
    window.composer.editor.paste()
    _wait_read(qtbot, window)
    assert [c.name for c in window.composer.chips.chips()] == ["data.csv"]
    assert window.composer.text() == ""


def test_sending_while_attachments_are_read_keeps_the_text(qtbot, open_window, tmp_path):
    window = open_window()
    window.composer.chips.add_pending(999, "slow.bin")  # a job that has not answered yet
    window.composer.set_text("with the slow file")
    assert not window.controller.send()
    assert window.composer.text() == "with the slow file"
    assert "still being read" in window.composer.notice.text()


def test_a_file_name_with_markup_is_shown_as_plain_text(qtbot, open_window, tmp_path):
    from PySide6.QtWidgets import QLabel

    hostile = tmp_path / "<b>bold<img src=x>.txt"  # no "/": it is one file name
    hostile.write_text("hello", encoding="utf-8")
    window = open_window()
    drop_files(window, [hostile])
    qtbot.waitUntil(lambda: bool(window.composer.chips.ready_attachments()), timeout=10_000)
    [chip] = window.composer.chips.chips()
    labels = [lab for lab in chip.findChildren(QLabel) if "<b>" in lab.text()]
    assert labels and all(lab.textFormat() == Qt.TextFormat.PlainText for lab in labels)
