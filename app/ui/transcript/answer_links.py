"""Links an answer's words to its boxes: hover the words to name a box, highlight a box's words."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextEdit

# Characters QTextDocument keeps in its raw text for paragraph, line and frame breaks.
_BREAKS = str.maketrans({"\u2029": "\n", "\u2028": "\n", "\ufdd0": "\n", "\ufdd1": "\n"})


def document_ranges(
    spans: Sequence[tuple[int, int, int]], raw: str, shown: str
) -> dict[int, list[tuple[int, int]]]:
    """Turn `box_spans` (box index, start, end in the markdown) into document position ranges.

    Rendering drops markup (`**`, bullets, fences) but keeps the words in order, so each span's
    words are looked for in the rendered text, in order, from where the previous one was found
    (whitespace may differ; a word is never matched inside a longer word). Linear in the text.

    Args:
        spans: (box index, start, end) in `raw`.
        raw: the answer's markdown.
        shown: the rendered document's text, one character per document position.

    Returns:
        Box index → [(start, end)] in the document; spans whose words are not shown are left out.
    """
    ranges: dict[int, list[tuple[int, int]]] = {}
    cursor, last_end, last_found = 0, -1, (0, 0)
    for index, start, end in sorted(spans, key=lambda s: (s[1], s[2])):
        if start < last_end:  # overlapping spans: search again from the previous match
            cursor = last_found[0]
        found = _find_words(shown, raw[start:end], cursor)
        if found is None:
            continue
        ranges.setdefault(index, []).append(found)
        cursor, last_end, last_found = found[1], end, found
    return ranges


def _find_words(text: str, needle: str, start: int) -> tuple[int, int] | None:
    words = needle.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    if needle.strip()[0].isalnum():
        pattern = r"(?<!\w)" + pattern
    if needle.strip()[-1].isalnum():
        pattern += r"(?!\w)"
    match = re.compile(pattern).search(text, start)
    return (match.start(), match.end()) if match else None


class AnswerLinker(QObject):
    """Watches the pointer over an answer's text view and paints highlights for one box's words.

    Highlights are extra selections: they colour the view without touching the document, so
    the text stays exactly what was rendered (plain-text safe, nothing re-parsed).

    Args:
        view: the answer's text view (rendered already).
        raw: the answer's markdown source.
        spans: `box_spans` of the answer (box index, start, end in `raw`).
        colours: the box colour per box index.
    """

    #: int: the box whose words are under the pointer (-1: none).
    box_hovered = Signal(int)

    def __init__(
        self,
        view: QTextEdit,
        raw: str,
        spans: Sequence[tuple[int, int, int]],
        colours: Mapping[int, QColor],
    ) -> None:
        super().__init__(view)
        self._view = view
        self._colours = dict(colours)
        shown = view.document().toRawText().translate(_BREAKS)
        self.ranges = document_ranges(spans, raw, shown)
        self._hovered: int | None = None
        self._highlighted: int | None = None
        view.viewport().setMouseTracking(True)
        view.viewport().installEventFilter(self)

    def detach(self) -> None:
        """Stop watching and remove the highlight (the view shows other text now)."""
        self._view.viewport().removeEventFilter(self)
        self.highlight(None)

    @property
    def highlighted(self) -> int | None:
        """The box whose words are highlighted, or None."""
        return self._highlighted

    def box_at(self, point: QPointF) -> int | None:
        """The box whose words are under a viewport point, or None."""
        offset = QPointF(
            self._view.horizontalScrollBar().value(), self._view.verticalScrollBar().value()
        )
        layout = self._view.document().documentLayout()
        position = layout.hitTest(point + offset, Qt.HitTestAccuracy.ExactHit)
        if position < 0:
            return None
        for index, ranges in self.ranges.items():
            if any(start <= position < end for start, end in ranges):
                return index
        return None

    def highlight(self, index: int | None) -> None:
        """Highlight the words of one box (None clears)."""
        self._highlighted = index
        selections = []
        for start, end in self.ranges.get(index, []) if index is not None else []:
            selection = QTextEdit.ExtraSelection()
            cursor = QTextCursor(self._view.document())
            cursor.setPosition(start)
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            selection.cursor = cursor  # type: ignore[attr-defined]
            fmt = QTextCharFormat()
            colour = QColor(self._colours.get(index, QColor("#ffcc00")))
            colour.setAlpha(90)
            fmt.setBackground(colour)
            fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
            fmt.setUnderlineColor(self._colours.get(index, QColor("#ffcc00")))
            selection.format = fmt  # type: ignore[attr-defined]
            selections.append(selection)
        self._view.setExtraSelections(selections)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.MouseMove and isinstance(event, QMouseEvent):
            self._set_hovered(self.box_at(event.position()))
        elif event.type() == QEvent.Type.Leave:
            self._set_hovered(None)
        return False

    def _set_hovered(self, index: int | None) -> None:
        if index == self._hovered:
            return
        self._hovered = index
        self.highlight(index)
        self.box_hovered.emit(-1 if index is None else index)
