"""Citations in answers open their source: a PDF page in the viewer, a file at the cited line."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QTextCursor

from app.ui.transcript.citation_links import CITE_SCHEME, parse_cite_url
from tests.helpers.offscreen import drop_files
from tests.helpers.pdf_samples import text_pdf


def _ask(qtbot, window, paths: list[Path], question: str):
    drop_files(window, paths)
    qtbot.waitUntil(lambda: bool(window.composer.chips.ready_attachments()), timeout=20_000)
    window.composer.set_text(question)
    assert window.controller.send()
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=20_000)
    answer = window._store.messages(window.controller.session_id)[-1]
    widget = window.chat_view.message_widget(answer.id)
    qtbot.waitUntil(lambda: widget.citations > 0, timeout=10_000)
    return widget


def _links(view) -> list[tuple[str, str]]:
    """(text, href) of every citation link in a rendered view."""
    found = []
    block = view.document().begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            fragment = iterator.fragment()
            fmt = fragment.charFormat()
            if fmt.isAnchor() and fmt.anchorHref().startswith(CITE_SCHEME):
                found.append((fragment.text(), fmt.anchorHref()))
            iterator += 1
        block = block.next()
    return found


def _never_open_externally(monkeypatch) -> list[QUrl]:
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    return opened


def test_a_cited_pdf_page_opens_rendered_in_the_viewer(qtbot, open_window, tmp_path, monkeypatch):
    opened = _never_open_externally(monkeypatch)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(text_pdf(["Introduction", "The answer is 42.", "Appendix"]))
    window = open_window(["The answer is 42 [report.pdf p. 2], not 41 [nowhere.pdf p. 9]."])
    widget = _ask(qtbot, window, [pdf], "What is the answer?")

    ((text, href),) = _links(widget.view)  # a file not attached is not linked
    assert text == "report.pdf p. 2"
    place = parse_cite_url(QUrl(href))
    assert (place.file, place.page) == ("report.pdf", 2)

    widget.view.confirm_link = lambda url: (_ for _ in ()).throw(AssertionError("asked"))
    with qtbot.waitSignal(widget.view.citation_activated):
        widget.view.anchorClicked.emit(QUrl(href))
    viewer = window.image_viewer
    qtbot.waitUntil(lambda: viewer.switcher.count() == 1, timeout=20_000)
    assert viewer.switcher.itemText(0).startswith("1. report.pdf, page 2")
    assert window.image_dock.isVisible()
    assert opened == []  # scout-cite: never reaches the system


def test_a_cited_file_of_a_folder_opens_at_the_cited_line(qtbot, open_window, tmp_path):
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    lines = [f"line_{n} = {n}" for n in range(1, 41)]
    (root / "src" / "main.py").write_text("\n".join(lines) + "\n", encoding="utf-8")
    window = open_window(["It is set on [src/main.py:12] and read in [main.py, line 30]."])
    widget = _ask(qtbot, window, [root], "Where is line_12 set?")

    links = _links(widget.view)
    assert [text for text, _href in links] == ["src/main.py:12", "main.py, line 30"]
    widget.view.anchorClicked.emit(QUrl(links[1][1]))
    qtbot.waitUntil(lambda: window.documents.source_view is not None, timeout=10_000)
    view = window.documents.source_view
    assert view.windowTitle() == "src/main.py"
    assert view.editor.isReadOnly()
    assert view.current_line() == 30
    cursor = view.editor.textCursor()
    cursor.select(QTextCursor.SelectionType.LineUnderCursor)
    assert cursor.selectedText() == "line_30 = 30"
    view.close()


def test_other_links_in_answers_still_ask_first(qtbot, open_window, tmp_path, monkeypatch):
    opened = _never_open_externally(monkeypatch)
    note = tmp_path / "notes.txt"
    note.write_text("see the site\n", encoding="utf-8")
    window = open_window(["See [notes.txt] and [the site](https://example.com/)."])
    widget = _ask(qtbot, window, [note], "Where?")
    asked: list[QUrl] = []
    widget.view.confirm_link = lambda url: asked.append(url) or False
    widget.view.anchorClicked.emit(QUrl("https://example.com/"))
    widget.view.anchorClicked.emit(QUrl("file:///etc/passwd"))
    assert [u.toString() for u in asked] == ["https://example.com/"]
    assert opened == []
