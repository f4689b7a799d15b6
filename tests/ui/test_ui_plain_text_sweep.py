"""User, file and model text is never markup: every tooltip, label, list row and title is swept.

Qt renders a tooltip, an AutoText label or a message box's text as HTML when its first line holds
a known tag, and an `<img src=...>` in it makes Qt read that file. The window is filled with
hostile text everywhere it can show some, then every widget, item model and action is walked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pytest
from PIL import Image
from PySide6 import QtGui
from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractListModel,
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QPoint,
    Qt,
    QTimer,
)
from PySide6.QtGui import QHelpEvent, QTextDocument
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QDialog,
    QLabel,
    QListView,
    QTextEdit,
    QToolTip,
    QWidget,
)

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.core.settings import Settings
from app.inference.engine import EngineStatus, LoadProgress
from app.ui.composer.chips import preview_attachment
from app.ui.composer.pdf_password import ask_pdf_password
from app.ui.shell.application import CrashDialog, _fatal
from app.ui.shell.main_window import MainWindow
from app.ui.shell.settings_dialog import SettingsDialog
from app.ui.video.timeline import TimelineFrame
from app.ui.widgets.plain_text import plain_html, plain_title
from tests.helpers.offscreen import OFFSCREEN_NOISE

#: The word every hostile string carries, in bold: where it shows, "<b>" must show with it.
WORD = "xyzzy"
#: Short enough for a chip (28 characters) and a file name (so no "/", no "</b>"); there is no
#: file `p` to read.
HOSTILE_NAME = f"<img src=p><b>{WORD}"
AUTO = Qt.TextFormat.AutoText


def hostile(src: Path | str) -> str:
    """Text that, taken as HTML, shows a picture read from `src` and a bold word."""
    return f'<img src="{src}"><b>{WORD}</b>'


def shown(text: str, fmt: Qt.TextFormat) -> str:
    """The characters Qt puts on screen for `text` shown in `fmt` (markup applied, if any)."""
    rich = fmt == Qt.TextFormat.RichText or (fmt == AUTO and QtGui.Qt.mightBeRichText(text))
    if not rich:
        return text
    document = QTextDocument()
    document.setHtml(text)
    return document.toPlainText()


def _indexes(model: QAbstractItemModel, parent: QModelIndex | None = None) -> Iterator[QModelIndex]:
    """Every index of a model, children too (a list model's columnCount is private to Python)."""
    parent = parent or QModelIndex()
    flat = isinstance(model, QAbstractListModel | QAbstractTableModel)
    columns = 1 if isinstance(model, QAbstractListModel) else model.columnCount(parent)
    for row in range(model.rowCount(parent)):
        for column in range(columns):
            yield model.index(row, column, parent)
        first = model.index(row, 0, parent)
        if not flat and model.rowCount(first):
            yield from _indexes(model, first)


def _format_tooltips(edit: QTextEdit) -> Iterator[str]:
    """The tooltips of a text view's character formats (citation links carry one)."""
    block = edit.document().begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            yield iterator.fragment().charFormat().toolTip()
            iterator += 1
        block = block.next()


def surfaces(roots: list[QWidget] | None = None) -> list[tuple[str, str]]:
    """(where, what the user sees) for every piece of text the widgets can show.

    Tooltips (of widgets, item rows, actions and link formats) and AutoText labels go through
    Qt's rich-text guess; button texts, item rows and window titles are always plain.

    Args:
        roots: the widgets to sweep; None for every widget of the application.
    """
    widgets = QApplication.allWidgets() if roots is None else roots
    found: list[tuple[str, str]] = []
    for widget in widgets:
        where = f"{type(widget).__name__}({widget.objectName()})"
        found.append((f"{where} tooltip", shown(widget.toolTip(), AUTO)))
        found.append((f"{where} title", widget.windowTitle()))
        if isinstance(widget, QLabel):
            found.append((f"{where} text", shown(widget.text(), widget.textFormat())))
        if isinstance(widget, QAbstractButton):
            found.append((f"{where} text", widget.text()))
        if isinstance(widget, QTextEdit):
            for tip in _format_tooltips(widget):
                found.append((f"{where} link tooltip", shown(tip, AUTO)))
        if isinstance(widget, QAbstractItemView) and widget.model() is not None:
            for index in _indexes(widget.model()):
                tip = index.data(Qt.ItemDataRole.ToolTipRole)
                found.append((f"{where} row tooltip", shown(str(tip or ""), AUTO)))
                found.append((f"{where} row", str(index.data(Qt.ItemDataRole.DisplayRole) or "")))
        for action in widget.actions():
            found.append((f"{where} action tooltip", shown(action.toolTip(), AUTO)))
    return found


def assert_plain(found: list[tuple[str, str]], expected: Collection[str] = ()) -> set[str]:
    """Every place that shows the hostile word shows its markup as text, and the expected
    places are among them.

    Returns:
        Where the word was seen.
    """
    seen = {(where, text) for where, text in found if WORD in text}
    rendered = sorted((where, text) for where, text in seen if f"<b>{WORD}" not in text)
    assert not rendered, "rendered as markup:\n" + "\n".join(map(repr, rendered))
    places = {where for where, _text in seen}
    missing = sorted(set(expected) - places)
    assert not missing, f"not swept: {missing}"
    return places


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    """A real 400 × 400 picture: a tooltip that loads it grows to its size."""
    path = tmp_path / "probe.png"
    Image.new("RGB", (400, 400), (255, 0, 0)).save(path)
    return path


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A picture, a text file and a folder whose names are markup."""
    files = tmp_path / "files"
    files.mkdir()
    picture = files / f"{HOSTILE_NAME}.png"
    Image.new("RGB", (320, 240), (200, 205, 210)).save(picture)
    notes = files / f"{HOSTILE_NAME}.txt"
    notes.write_text("notes\n", encoding="utf-8")
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / f"{HOSTILE_NAME}.md").write_text("# read me\n", encoding="utf-8")
    (folder / f"{HOSTILE_NAME}.bin").write_bytes(b"\x00\x01\x02" * 100)
    return picture, notes, folder


def _answer(probe: Path) -> str:
    """An answer that names a box with markup (labels are cut at 60 characters: a short src)."""
    return f"* **{hostile('p')} mug**: <BBOX>0.1,0.1,0.5,0.5</BBOX>\n\nSee {hostile(probe)}."


def _populate(qtbot, window: MainWindow, tmp_path: Path, probe: Path) -> None:
    """Put hostile text everywhere the window shows some."""
    store = window._store
    picture, notes, folder = _files(tmp_path)
    session = store.create_session(title=hostile(probe))
    trashed = store.create_session(title=hostile(probe))
    window.sidebar.refresh()
    window.controller.open_session(session.id)
    window.composer.attach_paths([picture, notes])
    qtbot.waitUntil(lambda: len(window.composer.chips.ready_attachments()) == 2, timeout=20_000)
    window.composer.set_text(f"{HOSTILE_NAME} zebra")
    assert window.controller.send()
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=20_000)
    qtbot.waitUntil(lambda: window.image_viewer.box_list.model().rowCount() == 1, timeout=10_000)
    window.sidebar.trash_session(trashed.id)  # the status bar offers to undo, naming it
    window.sidebar.search_edit.setText("zebra")
    assert window.sidebar.search_now()
    window.composer.attach_paths([notes, folder])
    qtbot.waitUntil(lambda: len(window.composer.chips.ready_attachments()) == 2, timeout=20_000)
    window.composer.chips.document_chips()[0].activated.emit()  # opens its report
    qtbot.waitUntil(lambda: window.documents.report is not None, timeout=10_000)
    window.documents.chunk_progress.set_progress(1, 3, f"{HOSTILE_NAME}.md")
    panel = window.video.panel
    panel.show_video(f"{HOSTILE_NAME}.mp4", "2.0 s")
    panel.set_frames([TimelineFrame(1.0, answer=hostile(probe))])


def test_every_surface_of_the_window_shows_hostile_text_as_text(
    qtbot, open_window, tmp_path, probe
):
    window = open_window([_answer(probe)])
    _populate(qtbot, window, tmp_path, probe)
    assert_plain(
        surfaces(),
        {
            "QListView(SessionList) row tooltip",  # a chat's title
            "QListView(SessionList) row",
            "QListWidget(SearchHits) row tooltip",  # a search hit's snippet
            "QListWidget(SearchHits) row",
            "QLabel(UndoLabel) text",  # "Moved “<title>” to the trash."
            "ComposerChip(ComposerChip) tooltip",  # a file in the composer
            "QToolButton() tooltip",  # its "Remove <name>"
            "QLabel() text",  # its "<name> — ready"
            "AttachmentBadge(attachmentBadge) tooltip",  # a file in a sent message
            "AttachmentBadge(attachmentBadge) text",
            "BoxList(boxList) row tooltip",  # a box label from the model's answer
            "BoxList(boxList) row",
            "QTreeWidget(ReportTree) row",  # a folder's report
            "QLabel(ChunkProgressLabel) text",  # the file a chunk comes from
            "QLabel(videoName) text",  # a clip's name
            "FrameList(videoFrameList) row tooltip",  # a frame's answer
        },
    )
    window.documents.report.done(QDialog.DialogCode.Rejected)


def test_status_bar_tooltips_quote_paths_and_model_names_as_text(qtbot, open_window, probe):
    window = open_window()
    status = window.status
    status.set_engine_state("error", f"No model at {hostile(probe)}.")
    assert_plain(surfaces([status.engine_label]), {"QLabel(EngineLabel) tooltip"})
    status.set_load_progress(LoadProgress(1, 4, f"Reading {hostile(probe)}"))
    assert_plain(surfaces([status.engine_label]), {"QLabel(EngineLabel) tooltip"})
    status.set_engine_status(EngineStatus(hostile(probe), hostile(probe), 1 << 30, 2 << 30))
    expected = {"QLabel(MemoryLabel) tooltip", "QLabel(MemoryLabel) text"}  # name; device
    assert_plain(surfaces([status.memory_label]), expected)


def test_dialogs_quote_file_names_and_paths_as_text(qtbot, tmp_path):
    folder = tmp_path / HOSTILE_NAME
    settings = SettingsDialog(Settings(), tmp_path, model_override=folder)
    qtbot.addWidget(settings)
    crash = CrashDialog("Traceback ...", folder / "crash.log")
    qtbot.addWidget(crash)
    found = surfaces([*settings.findChildren(QLabel), *crash.findChildren(QLabel)])
    assert len([where for where, text in found if WORD in text]) == 2
    assert_plain(found, {"QLabel() text"})

    attachment = Attachment(
        name=f"{HOSTILE_NAME}.txt",
        kind=AttachmentKind.TEXT,
        status=AttachmentStatus.ERROR,
        detail=f"{HOSTILE_NAME}.txt could not be read.",
    )
    preview = preview_attachment(None, attachment, tmp_path / "missing")  # type: ignore[arg-type]
    qtbot.addWidget(preview)
    found = surfaces([preview, *preview.findChildren(QWidget)])
    assert_plain(found, {"QDialog() title", "QLabel() text"})


def _inside_modal(qtbot, call: Callable[[], object]) -> list[tuple[str, str]]:
    """Run `call`, which opens a modal dialog, sweep the dialog, then cancel it."""
    found: list[tuple[str, str]] = []
    tries = iter(range(250))  # five seconds, then give up (the assert below says so)

    def sweep() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            if next(tries, None) is not None:
                QTimer.singleShot(20, sweep)
            return
        found.extend(surfaces([dialog, *dialog.findChildren(QWidget)]))
        if isinstance(dialog, QDialog):
            dialog.reject()
        else:
            dialog.close()

    QTimer.singleShot(0, sweep)
    call()
    assert found, "no dialog was shown"
    return found


def test_the_pdf_password_and_start_up_failure_quote_the_name_as_text(qtbot, tmp_path):
    found = _inside_modal(qtbot, lambda: ask_pdf_password(None, f"{HOSTILE_NAME}.pdf", False))
    assert_plain(found, {"QLabel() text"})
    # What `run_gui` shows when the data folder or the database cannot be opened.
    found = _inside_modal(qtbot, lambda: _fatal(f"{tmp_path / HOSTILE_NAME} is read-only.", False))
    assert_plain(found, {"QLabel(qt_msgbox_label) text"})


@pytest.mark.parametrize(
    "text",
    [hostile("/dev/zero"), "a  b\tc\n\nd", "&amp; &lt;x&gt; 'q' \"d\"", "é 中文 🙂", " lead"],
)
def test_plain_html_shows_exactly_the_text(text):
    assert shown(plain_html(text), AUTO) == text
    assert plain_html("") == ""  # no tooltip rather than an empty box


def test_plain_title_keeps_a_modified_mark_in_a_name(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    widget.setWindowTitle(plain_title("draft [*].pdf"))
    widget.winId()  # the native window gets the title as the window manager shows it
    assert widget.windowHandle().title() == "draft [*].pdf"


# -- the attack itself: hovering never loads the picture a title or a file name points at ----


def _hover(widget: QWidget, pos: QPoint) -> tuple[int, str]:
    """Rest the mouse on `widget` at `pos` until Qt shows its tooltip.

    Returns:
        The height of the tip Qt showed, and the characters it shows.
    """
    QToolTip.hideText()
    QApplication.sendEvent(widget, QHelpEvent(QEvent.Type.ToolTip, pos, widget.mapToGlobal(pos)))
    QApplication.processEvents()
    tips = [w for w in QApplication.topLevelWidgets() if w.objectName() == "qtooltip_label"]
    assert QToolTip.isVisible() and len(tips) == 1, "no tooltip was shown"
    tip = tips[0]
    assert isinstance(tip, QLabel)
    return tip.height(), shown(tip.text(), tip.textFormat())


# Offscreen Qt cannot raise a tooltip above the window, and says so.
@pytest.mark.qt_log_ignore("This plugin does not support raise", OFFSCREEN_NOISE)
def test_hovering_a_hostile_title_search_hit_or_chip_loads_no_picture(
    qtbot, open_window, tmp_path, probe, monkeypatch
):
    # A file name cannot hold "/", but a relative src is read from the working folder.
    monkeypatch.chdir(tmp_path)
    local = "<img src=probe.png>"
    window = open_window()
    store = window._store
    session = store.create_session(title=hostile(probe))
    store.add_user_message(session.id, f"{local} zebra", [])
    window.sidebar.refresh()
    picture = tmp_path / f"{local}.png"
    Image.new("RGB", (64, 48)).save(picture)
    window.composer.attach_paths([picture])
    qtbot.waitUntil(lambda: bool(window.composer.chips.ready_attachments()), timeout=20_000)

    sessions: QListView = window.sidebar.list_view
    tips = [_hover(sessions.viewport(), sessions.visualRect(sessions.model().index(0, 0)).center())]
    window.sidebar.search_edit.setText("zebra")
    assert window.sidebar.search_now()
    hits = window.sidebar.hits_list
    tips.append(_hover(hits.viewport(), hits.visualItemRect(hits.item(0)).center()))
    tips.append(_hover(window.composer.chips.chips()[0], QPoint(5, 5)))
    QToolTip.hideText()

    # Loaded, the 400-pixel picture would make a tip at least 400 pixels tall.
    assert [height < 200 for height, _text in tips] == [True, True, True]
    title, snippet, name = (text for _height, text in tips)
    assert title.startswith(hostile(probe))  # and the markup reads as the text it is
    assert snippet == f"{local} «zebra»"
    assert name.startswith(f"{local}.png")
