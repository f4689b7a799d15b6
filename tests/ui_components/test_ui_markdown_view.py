"""The safe markdown view: it loads no resource and opens only confirmed http(s) links."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QUrl
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.ui.widgets import markdown_view
from app.ui.widgets.markdown_view import SafeMarkdownView, link_text


class FakeDesktop:
    """Stands in for QDesktopServices: records the URLs it was asked to open."""

    opened: list[QUrl]

    @classmethod
    def openUrl(cls, url: QUrl) -> bool:  # noqa: N802 (Qt's name)
        cls.opened.append(url)
        return True


@pytest.fixture
def desktop(monkeypatch) -> type[FakeDesktop]:
    FakeDesktop.opened = []
    monkeypatch.setattr(markdown_view, "QDesktopServices", FakeDesktop)
    return FakeDesktop


@pytest.fixture
def secret_image(tmp_path: Path) -> Path:
    path = tmp_path / "secret.png"
    Image.new("RGB", (64, 48), "red").save(path)
    return path


# The offscreen platform says this whenever a shown window's size limits change (the view's
# height follows its text); it is about the test platform, not about the code under test.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def shown(qtbot, view: SafeMarkdownView, width: int = 400) -> SafeMarkdownView:
    """Show the view offscreen, where Qt lays it out and paints it."""
    qtbot.addWidget(view)
    view.resize(width, 100)
    view.show()
    qtbot.waitExposed(view)
    return view


def red_pixels(view: SafeMarkdownView) -> int:
    """Count pure-red pixels in what the view paints (the test image is pure red)."""
    image = view.grab().toImage()
    return sum(
        1
        for y in range(0, image.height(), 2)
        for x in range(0, image.width(), 2)
        if image.pixelColor(x, y).getRgb()[:3] == (255, 0, 0)
    )


@pytest.mark.parametrize("form", ["url", "path"])
def test_an_img_tag_naming_a_local_file_loads_and_shows_nothing(qtbot, secret_image, form):
    view = SafeMarkdownView()
    url = QUrl.fromLocalFile(str(secret_image))
    src = url.toString() if form == "url" else str(secret_image)
    view.setHtml(f'<p>before <img src="{src}" width="64" height="48"> after</p>')
    shown(qtbot, view)
    qtbot.wait(20)

    assert red_pixels(view) == 0
    assert view.loadResource(QTextDocument.ResourceType.ImageResource, url) is None
    assert view.document().resource(QTextDocument.ResourceType.ImageResource, url) is None


@pytest.mark.parametrize(
    "kind",
    [QTextDocument.ResourceType.ImageResource, QTextDocument.ResourceType.StyleSheetResource],
)
def test_the_document_itself_reads_no_file(qtbot, tmp_path, secret_image, kind):
    # Qt's QTextDocument falls back to reading a local file when the view answers nothing.
    sheet = tmp_path / "style.css"
    sheet.write_text("p { color: red; }", encoding="utf-8")
    view = SafeMarkdownView()
    qtbot.addWidget(view)
    document = view.document()

    for path in (secret_image, sheet):
        assert document.loadResource(kind, QUrl.fromLocalFile(str(path))) is None
    assert document.loadResource(kind, QUrl("data:text/plain;base64,aGVsbG8=")) is None


def test_markdown_with_images_renders_no_image(qtbot, secret_image):
    view = SafeMarkdownView()
    file_url = QUrl.fromLocalFile(str(secret_image)).toString()
    view.set_markdown(
        f'![leak](https://example.com/pixel.png)\n\n<img src="{file_url}">\n\n![x]({file_url})'
    )
    shown(qtbot, view)

    assert "<img" not in view.toHtml()
    assert red_pixels(view) == 0


def test_a_link_is_not_opened_when_the_user_says_no(qtbot, desktop):
    view = shown(qtbot, SafeMarkdownView())
    asked: list[QUrl] = []
    view.confirm_link = lambda url: asked.append(url) or False

    with qtbot.waitSignal(view.link_activated) as blocker:
        view.anchorClicked.emit(QUrl("https://example.com/page"))

    assert blocker.args == [QUrl("https://example.com/page")]
    assert asked == [QUrl("https://example.com/page")]
    assert desktop.opened == []


def test_a_clicked_https_link_opens_after_yes(qtbot, desktop):
    view = shown(qtbot, SafeMarkdownView())
    view.confirm_link = lambda _url: True
    view.set_markdown("See [the docs](https://example.com/docs) for more.")

    # Click the middle of the link text with the mouse, as a user would, once it is laid out.
    start = view.toPlainText().index("the docs") + 3
    cursor = QTextCursor(view.document())
    cursor.setPosition(start)
    qtbot.waitUntil(
        lambda: view.anchorAt(view.cursorRect(cursor).center()) == "https://example.com/docs"
    )
    point = view.cursorRect(cursor).center()
    with qtbot.waitSignal(view.link_opened):
        qtbot.mouseClick(view.viewport(), markdown_view.Qt.MouseButton.LeftButton, pos=point)

    assert desktop.opened == [QUrl("https://example.com/docs")]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.com/file",
        "smb://server/share",
    ],
)
def test_other_schemes_are_refused_without_asking(qtbot, desktop, url):
    view = SafeMarkdownView()
    qtbot.addWidget(view)
    asked: list[QUrl] = []
    view.confirm_link = lambda u: asked.append(u) or True

    view.anchorClicked.emit(QUrl(url))

    assert asked == []
    assert desktop.opened == []


def test_the_confirmation_spells_a_lookalike_host_in_punycode():
    # The "а" below is Cyrillic: the dialog must not show it as the Latin "example.com".
    assert link_text(QUrl("https://exаmple.com/a b")) == "https://xn--exmple-4nf.com/a%20b"


def test_the_view_grows_with_its_text_instead_of_scrolling(qtbot):
    host = QWidget()
    layout = QVBoxLayout(host)
    view = SafeMarkdownView()
    layout.addWidget(view)
    layout.addStretch(1)
    qtbot.addWidget(host)
    host.resize(300, 2000)
    view.set_markdown("One line.")
    host.show()
    qtbot.waitExposed(host)
    short = view.height()

    view.set_markdown("\n\n".join(f"Paragraph {i} of a long answer." for i in range(30)))
    qtbot.waitUntil(lambda: view.height() > short * 10)

    assert view.verticalScrollBar().maximum() == 0
