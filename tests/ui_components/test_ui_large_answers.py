"""Large answers never freeze the window: markdown converts off the GUI thread, huge text is plain.

A 242 KB markdown table used to hold the GUI thread for seconds, in `render_markdown` and then in
QTextDocument's HTML import and layout. These tests check *where* the work runs and *what* is
shown, never how long it takes (bench/render.py prints the figures).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton

from app.core import render
from app.core.messages import Box, Message, Role, StopReason
from app.ui.transcript.message_widget import MessageWidget
from app.ui.transcript.view import ChatView
from app.ui.widgets.markdown_view import (
    FORMAT_BUTTON,
    MAX_FORMATTED_CELLS,
    MAX_FORMATTED_CHARS,
    MAX_FORMATTED_ON_REQUEST_CHARS,
    PLAIN_NOTE,
    SYNC_RENDER_CHARS,
    TOO_LARGE_NOTE,
    SafeMarkdownView,
    TextDisplay,
    render_tasks,
    too_large_to_format,
)
from tests.helpers.markdown_samples import table_answer

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def prose_answer(size: int, marker: str = "") -> str:
    """An answer of ordinary markdown (no table) of about `size` characters."""
    paragraph = f"Some **bold** words {marker} and `code` in a sentence of prose.\n\n"
    return paragraph * (size // len(paragraph) + 1)


def answer(message_id: str, text: str, stop: StopReason | None = StopReason.EOS) -> Message:
    return Message(message_id, "s1", Role.ASSISTANT, text, 2.0, stop_reason=stop)


def format_button(view: SafeMarkdownView) -> QAbstractButton:
    """The view's "Render as formatted" button, found by its accessible name."""
    matches = [b for b in view.findChildren(QAbstractButton) if b.accessibleName() == FORMAT_BUTTON]
    assert len(matches) == 1, f"expected one control named {FORMAT_BUTTON!r}"
    return matches[0]


@pytest.fixture
def conversions(monkeypatch) -> list[tuple[str, bool]]:
    """Record every markdown conversion: (text, whether it ran on the GUI thread)."""
    calls: list[tuple[str, bool]] = []
    real = render.render_markdown

    def recording(text: str, **kwargs) -> str:
        calls.append((text, threading.current_thread() is threading.main_thread()))
        return real(text, **kwargs)

    monkeypatch.setattr(render, "render_markdown", recording)
    return calls


@pytest.fixture
def pool_idle(qtbot) -> Iterator[Callable[[], None]]:
    """Wait until the render pool has answered everything (also after the test)."""

    def wait() -> None:
        qtbot.waitUntil(lambda: render_tasks().pending() == 0, timeout=10_000)

    yield wait
    wait()  # no render of this test may land in the next one's widgets


@pytest.fixture
def chat(qtbot) -> ChatView:
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_the_size_policy_counts_characters_and_table_cells():
    assert not too_large_to_format(prose_answer(MAX_FORMATTED_CHARS - 100))
    assert too_large_to_format("x" * (MAX_FORMATTED_CHARS + 1))
    small_table = "|a|\n" * (MAX_FORMATTED_CELLS // 2 - 1)  # two "|" a row
    assert len(small_table) < MAX_FORMATTED_CHARS and not too_large_to_format(small_table)
    assert too_large_to_format(small_table + "|a|\n|b|\n")  # over the cells, not the characters


def test_a_242_kb_table_answer_shows_as_plain_text_at_once_and_converts_nothing(qtbot, conversions):
    text = table_answer(242_000)
    widget = MessageWidget(answer("a1", text))
    qtbot.addWidget(widget)
    widget.show()

    view = widget.view
    assert conversions == []  # neither here nor on the pool: it is shown as it came
    assert view.display is TextDisplay.LARGE
    assert view.toPlainText() == text  # every row readable, as plain text
    note = view.large_text_note
    assert note.isVisibleTo(widget)
    assert PLAIN_NOTE in note.label.text()
    assert format_button(widget.view).isVisibleTo(widget)
    assert widget.text == text  # Copy still copies the raw markdown


def test_the_user_can_format_a_large_answer_and_the_conversion_runs_off_the_gui_thread(
    qtbot, conversions, pool_idle
):
    text = table_answer(65_000)
    widget = MessageWidget(answer("a1", text))
    qtbot.addWidget(widget)
    widget.show()
    view = widget.view
    assert view.display is TextDisplay.LARGE

    with qtbot.waitSignal(view.markdown_rendered, timeout=10_000):
        qtbot.mouseClick(format_button(widget.view), Qt.MouseButton.LeftButton)
        # The click returned to the event loop before any conversion on the GUI thread.
        assert view.display is TextDisplay.FORMATTING
        assert view.large_text_note.isVisibleTo(widget)  # "Formatting…", no button
        assert not format_button(widget.view).isVisibleTo(widget)
        assert not any(on_gui for _text, on_gui in conversions)

    assert conversions == [(text, False)]  # once, on a pool thread
    assert view.display is TextDisplay.FORMATTED
    assert "|" not in view.toPlainText()  # a real table now, not pipes
    assert not view.large_text_note.isVisibleTo(widget)


def test_an_answer_too_large_even_on_request_offers_no_button(qtbot, conversions):
    view = SafeMarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("word " * (MAX_FORMATTED_ON_REQUEST_CHARS // 5 + 1))

    assert view.display is TextDisplay.TOO_LARGE
    assert view.large_text_note.label.text() == TOO_LARGE_NOTE
    assert format_button(view).isHidden()
    assert not view.render_formatted()
    assert conversions == []


def test_a_mid_sized_answer_is_converted_on_a_pool_thread_and_readable_meanwhile(
    qtbot, conversions, pool_idle
):
    text = prose_answer(SYNC_RENDER_CHARS * 5)
    view = SafeMarkdownView()
    qtbot.addWidget(view)

    view.set_markdown(text)

    assert view.display is TextDisplay.FORMATTING
    assert view.toPlainText() == text  # the plain text shows until the formatted one is ready
    assert not any(on_gui for _text, on_gui in conversions)  # the pool may be at it already
    assert view.large_text_note.isHidden()  # formatting an ordinary answer needs no note
    qtbot.waitUntil(lambda: view.display is TextDisplay.FORMATTED, timeout=10_000)
    assert conversions == [(text, False)]
    assert "**" not in view.toPlainText()


def test_a_short_answer_is_formatted_on_the_spot(qtbot, conversions):
    view = SafeMarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("Some **bold** words.")

    assert view.display is TextDisplay.FORMATTED  # no flash of plain text for a short answer
    assert view.toPlainText() == "Some bold words."
    assert conversions == [("Some **bold** words.", True)]


@pytest.fixture
def gated(monkeypatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Hold the conversion of any text holding "SLOW" until released: (started, release)."""
    started, release = threading.Event(), threading.Event()
    real = render.render_markdown

    def gate(text: str, **kwargs) -> str:
        if "SLOW" in text:
            started.set()
            release.wait(10)
        return real(text, **kwargs)

    monkeypatch.setattr(render, "render_markdown", gate)
    try:
        yield started, release
    finally:
        release.set()  # never leave the pool's one thread waiting


def test_a_newer_text_wins_over_a_render_still_on_its_way(qtbot, gated, pool_idle):
    started, release = gated
    view = SafeMarkdownView()
    qtbot.addWidget(view)
    rendered: list[str] = []
    view.markdown_rendered.connect(lambda: rendered.append(view.toPlainText()))

    view.set_markdown(prose_answer(SYNC_RENDER_CHARS * 3, "SLOW old"))
    qtbot.waitUntil(started.is_set, timeout=10_000)  # the old text is being converted now
    newer = prose_answer(SYNC_RENDER_CHARS * 3, "fresh")
    view.set_markdown(newer)
    release.set()
    pool_idle()

    assert view.display is TextDisplay.FORMATTED
    assert "fresh" in view.toPlainText() and "SLOW" not in view.toPlainText()
    assert len(rendered) == 1 and "SLOW" not in rendered[0]  # the old render was dropped


def test_plain_text_given_later_is_never_overwritten_by_an_old_render(qtbot, gated, pool_idle):
    started, release = gated
    view = SafeMarkdownView()
    qtbot.addWidget(view)

    view.set_markdown(prose_answer(SYNC_RENDER_CHARS * 3, "SLOW"))
    qtbot.waitUntil(started.is_set, timeout=10_000)
    view.set_plain("A regenerated answer starts")  # the bubble streams again
    view.append_plain(" streaming.")
    release.set()
    pool_idle()

    assert view.display is TextDisplay.PLAIN
    assert view.toPlainText() == "A regenerated answer starts streaming."


def test_a_render_for_a_closed_bubble_lands_nowhere(qtbot, gated, pool_idle):
    started, release = gated
    view = SafeMarkdownView()
    view.set_markdown(prose_answer(SYNC_RENDER_CHARS * 3, "SLOW"))
    qtbot.waitUntil(started.is_set, timeout=10_000)
    view.deleteLater()
    qtbot.waitUntil(lambda: not _alive(view))
    release.set()
    pool_idle()  # the result arrives for a deleted view: no exception, no Qt warning


def _alive(view: SafeMarkdownView) -> bool:
    import shiboken6

    return shiboken6.isValid(view)


def test_the_async_render_stays_safe_no_image_no_unsafe_link(qtbot, pool_idle):
    view = SafeMarkdownView()
    qtbot.addWidget(view)
    hostile = (
        "![x](file:///etc/passwd) <img src='file:///etc/passwd'> "
        "[bad](javascript:alert(1)) [good](https://example.com/ok)\n\n"
    )
    view.set_markdown(hostile + prose_answer(SYNC_RENDER_CHARS * 3))
    qtbot.waitUntil(lambda: view.display is TextDisplay.FORMATTED, timeout=10_000)

    html = view.toHtml()
    assert "<img" not in html
    assert re.findall(r'href="([^"]*)"', html) == ["https://example.com/ok"]  # the only link


def test_citations_are_linked_again_when_the_formatted_text_arrives(qtbot, pool_idle):
    text = "The answer is 42 [report.pdf p. 2].\n\n" + prose_answer(SYNC_RENDER_CHARS * 3)
    widget = MessageWidget(answer("a1", text))
    qtbot.addWidget(widget)
    assert widget.set_citations({"report.pdf"}) == 1  # linked in the plain text shown meanwhile

    qtbot.waitUntil(lambda: widget.view.display is TextDisplay.FORMATTED, timeout=10_000)

    assert widget.citations == 1
    assert "scout-cite:" in widget.view.toHtml()  # the link survived the new document


def test_box_words_are_linked_again_in_the_formatted_text(qtbot, pool_idle):
    text = "The **Ruler** lies here.\n\n" + prose_answer(SYNC_RENDER_CHARS * 3)
    start = text.index("Ruler")
    ruler = Message(
        "a1",
        "s1",
        Role.ASSISTANT,
        text,
        2.0,
        stop_reason=StopReason.EOS,
        boxes=(Box("Ruler", 0, 80, 96, 240, 144),),
    )
    widget = MessageWidget(ruler)
    qtbot.addWidget(widget)
    widget.set_grounding([(0, start, start + len("Ruler"))], [])  # while the plain text shows
    assert widget.view.display is TextDisplay.FORMATTING

    qtbot.waitUntil(lambda: widget.view.display is TextDisplay.FORMATTED, timeout=10_000)

    linker = widget.linker
    assert linker is not None
    ((begin, end),) = linker.ranges[0]
    shown = widget.view.document().toPlainText()
    assert shown[begin:end] == "Ruler" and "**" not in shown  # positions in the new document


def test_a_streamed_answer_growing_into_a_big_table_never_renders_per_chunk(
    qtbot, chat, conversions
):
    text = table_answer(242_000)
    chat.begin_stream(answer("a1", "", stop=None))
    bubble = chat.message_widget("a1")
    edits: list[tuple[int, int]] = []
    bubble.view.document().contentsChange.connect(
        lambda pos, removed, _n: edits.append((pos, removed))
    )

    step = len(text) // 20
    for start in range(0, len(text), step):
        piece = text[start : start + step]
        for i in range(0, len(piece), 40):  # ~10 tokens a chunk
            chat.append_stream("a1", piece[i : i + 40])
        arrived = min(start + step, len(text))
        qtbot.waitUntil(lambda arrived=arrived: len(bubble.text) == arrived)

    assert bubble.text == text
    assert conversions == []  # no conversion while streaming, on any thread
    assert all(removed == 0 for _pos, removed in edits)  # only appended, never re-set
    assert len(edits) <= 2 * 20  # one append per throttled flush, not one per chunk

    chat.finish_stream(answer("a1", text))

    assert conversions == []  # too large: shown as plain text, as it streamed
    assert bubble.view.display is TextDisplay.LARGE
    assert bubble.view.large_text_note.isVisibleTo(chat)


def test_an_opened_chat_with_a_huge_answer_shows_at_once(qtbot, chat, conversions, pool_idle):
    huge, medium = table_answer(242_000), prose_answer(SYNC_RENDER_CHARS * 3)
    messages = [
        Message("u1", "s1", Role.USER, "A table of everything, please.", 1.0),
        answer("a1", huge),
        Message("u2", "s1", Role.USER, "And a summary?", 3.0),
        answer("a2", medium),
    ]

    chat.set_messages(messages)

    assert not any(text == huge for text, _on_gui in conversions)
    assert all(not on_gui for text, on_gui in conversions if len(text) > SYNC_RENDER_CHARS)
    big = chat.message_widget("a1").view
    assert big.display is TextDisplay.LARGE and big.toPlainText() == huge
    summary = chat.message_widget("a2").view
    qtbot.waitUntil(lambda: summary.display is TextDisplay.FORMATTED, timeout=10_000)
    assert (medium, False) in conversions
