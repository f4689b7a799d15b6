"""Citations in answers as links: "[report.pdf p. 12]" becomes a `scout-cite:` link the app opens.

The links are put on the rendered text as character formats, after rendering: the markdown
renderer still makes only http(s) links, and `scout-cite:` links are handled inside the app —
never handed to the system.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from PySide6.QtCore import QUrl, QUrlQuery
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextEdit

from app.core.citations import Citation, find_citations
from app.ui.transcript.answer_links import document_ranges
from app.ui.widgets.plain_text import plain_html

#: The scheme of citation links; `SafeMarkdownView` reports them and opens nothing itself.
CITE_SCHEME = "scout-cite"
# Characters QTextDocument keeps in its raw text for paragraph, line and frame breaks.
_BREAKS = str.maketrans({"\u2029": "\n", "\u2028": "\n", "\ufdd0": "\n", "\ufdd1": "\n"})


@dataclass(frozen=True)
class CitedPlace:
    """Where a citation link points: a file (as attached), and a page or a line in it."""

    file: str
    page: int | None = None
    line: int | None = None


def cite_url(citation: Citation) -> QUrl:
    """The link for a citation ("scout-cite:open?file=report.pdf&page=12").

    Args:
        citation: found by `find_citations`.

    Returns:
        The URL.
    """
    query = QUrlQuery()
    query.addQueryItem("file", citation.file)
    if citation.page is not None:
        query.addQueryItem("page", str(citation.page))
    if citation.line is not None:
        query.addQueryItem("line", str(citation.line))
    url = QUrl()
    url.setScheme(CITE_SCHEME)
    url.setPath("open")
    url.setQuery(query)
    return url


def parse_cite_url(url: QUrl) -> CitedPlace | None:
    """The place a citation link names, or None for any other link.

    Args:
        url: a clicked link.

    Returns:
        The place; None when it is not a well-formed citation link.
    """
    if url.scheme() != CITE_SCHEME:
        return None
    query = QUrlQuery(url)
    file = query.queryItemValue("file", QUrl.ComponentFormattingOption.FullyDecoded)
    if not file:
        return None
    page = _positive(query.queryItemValue("page"))
    return CitedPlace(file, page, _positive(query.queryItemValue("line")))


def _positive(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 10_000_000 else None


def link_citations(
    view: QTextEdit, raw: str, known_files: Collection[str], colour: QColor | None = None
) -> list[Citation]:
    """Turn the citations of a rendered answer into `scout-cite:` links in its view.

    Args:
        view: the view showing `raw` rendered.
        raw: the markdown shown.
        known_files: the files of the documents attached in the conversation; only
            citations of these become links.
        colour: the link colour (the palette's link colour when None).

    Returns:
        The citations linked.
    """
    if not known_files or not raw:
        return []
    citations = find_citations(raw, known_files)
    if not citations:
        return []
    document = view.document()
    shown = document.toRawText().translate(_BREAKS)
    spans = [(i, c.start, c.end) for i, c in enumerate(citations)]
    ranges = document_ranges(spans, raw, shown)
    link_colour = colour or view.palette().color(view.palette().ColorRole.Link)
    linked: list[Citation] = []
    for index, places in ranges.items():
        citation = citations[index]
        href = bytes(cite_url(citation).toEncoded().data()).decode("ascii")
        for start, end in places:
            cursor = QTextCursor(document)
            cursor.setPosition(start)
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            fmt = QTextCharFormat()
            fmt.setAnchor(True)
            fmt.setAnchorHref(href)
            fmt.setForeground(link_colour)
            fmt.setFontUnderline(True)
            fmt.setToolTip(plain_html(_tooltip(citation)))
            cursor.mergeCharFormat(fmt)
        linked.append(citation)
    return linked


def _tooltip(citation: Citation) -> str:
    if citation.page is not None:
        return f"Open {citation.file} at page {citation.page}"
    if citation.line is not None:
        return f"Open {citation.file} at line {citation.line}"
    return f"Open {citation.file}"
