"""The report of an attached document: every file or page, used or skipped and why, with ticks."""

from __future__ import annotations

from collections.abc import Collection

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.document_selection import MAX_PAGE_IMAGES, page_key
from app.core.documents import Document, DocumentSource, EntryStatus
from app.ui.widgets.plain_text import plain_title

_KEY = Qt.ItemDataRole.UserRole


class DocumentReport(QDialog):
    """Lists what was read; ticks choose the files or pages that go in (and a PDF's page images).

    Args:
        document: the document as ingest read it (the original, before any trimming).
        kept: keys (`selectable_keys`) ticked now.
        images: pages sent as images now (PDFs only).
        parent: the dialog's parent.
    """

    def __init__(
        self,
        document: Document,
        kept: Collection[str],
        images: Collection[int] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("DocumentReport")
        self.document = document
        self._is_pdf = document.source is DocumentSource.PDF
        self.setWindowTitle(plain_title(f"{document.name} — what was read"))
        self.summary = QLabel(self)
        self.summary.setObjectName("ReportSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("ReportTree")
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.note = QLabel(self)
        self.note.setObjectName("ReportNote")
        self.note.setWordWrap(True)
        if self._is_pdf:
            self._fill_pages(set(kept), set(images))
        else:
            self._fill_files(set(kept))
        self.tree.itemChanged.connect(self._on_tree_item_changed)

        all_button = QPushButton("Tick all", self)
        all_button.clicked.connect(lambda: self._tick_all(True))
        none_button = QPushButton("Untick all", self)
        none_button.clicked.connect(lambda: self._tick_all(False))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Use the ticked ones")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(all_button)
        row.addWidget(none_button)
        row.addStretch(1)
        row.addWidget(buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.note)
        layout.addLayout(row)
        self.resize(720, 520)
        self._update_summary()

    # -- results -----------------------------------------------------------------------------

    def kept(self) -> set[str]:
        """The keys ticked to go in as text."""
        return {
            str(item.data(0, _KEY))
            for item in self._items()
            if item.data(0, _KEY) and item.checkState(1) == Qt.CheckState.Checked
        }

    def image_pages(self) -> list[int]:
        """The pages ticked to go in as images (PDFs only), ascending."""
        if not self._is_pdf:
            return []
        return sorted(
            int(str(item.data(0, _KEY)).split()[1])
            for item in self._items()
            if item.checkState(2) == Qt.CheckState.Checked
        )

    def row(self, key: str) -> QTreeWidgetItem | None:
        """The row of a key ("page 3", "src/a.py"), for tests and keyboard users."""
        return next((i for i in self._items() if i.data(0, _KEY) == key), None)

    # -- filling -----------------------------------------------------------------------------

    def _fill_pages(self, kept: set[str], images: set[int]) -> None:
        self.tree.setHeaderLabels(["Page", "Text", "Image", "What was read"])
        for section in self.document.sections:
            if section.page is None:
                continue
            chars = len(section.text.strip())
            said = f"{chars:,} characters" if chars else "no text (a scan or a figure?)"
            item = QTreeWidgetItem([f"page {section.page}", "", "", said])
            item.setData(0, _KEY, page_key(section.page))
            flags = item.flags() | Qt.ItemFlag.ItemIsUserCheckable
            item.setFlags(flags)
            text_on = page_key(section.page) in kept and chars > 0
            item.setCheckState(1, Qt.CheckState.Checked if text_on else Qt.CheckState.Unchecked)
            image_on = section.page in images
            item.setCheckState(2, Qt.CheckState.Checked if image_on else Qt.CheckState.Unchecked)
            self.tree.addTopLevelItem(item)
        self._fit_columns()

    def _fill_files(self, kept: set[str]) -> None:
        self.tree.setHeaderLabels(["File", "Use", "Size", "Status"])
        entries = self.document.entries or ()
        in_text = {s.file for s in self.document.sections}
        listed = set()
        for entry in entries:
            used = entry.status is EntryStatus.USED
            status = "used" if used else f"skipped: {entry.reason}"
            item = QTreeWidgetItem([entry.path, "", _size(entry.bytes), status])
            listed.add(entry.path)
            if used or entry.path in in_text:  # one left out earlier can be ticked back in
                item.setData(0, _KEY, entry.path)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                on = entry.path in kept
                item.setCheckState(1, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            else:
                item.setDisabled(True)
            self.tree.addTopLevelItem(item)
        for section in self.document.sections:  # a Word file has sections but no entries
            if section.file in listed:
                continue
            listed.add(section.file)
            item = QTreeWidgetItem([section.file, "", f"{len(section.text):,} chars", "used"])
            item.setData(0, _KEY, section.file)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = section.file in kept
            item.setCheckState(1, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.tree.addTopLevelItem(item)
        self._fit_columns()

    def _fit_columns(self) -> None:
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.setColumnWidth(0, 300 if not self._is_pdf else 110)
        for column in (1, 2):
            self.tree.resizeColumnToContents(column)

    # -- behaviour ---------------------------------------------------------------------------

    def _items(self) -> list[QTreeWidgetItem]:
        return [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]

    def _tick_all(self, on: bool) -> None:
        state = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        self.tree.blockSignals(True)
        for item in self._items():
            if item.data(0, _KEY) and not item.isDisabled():
                item.setCheckState(1, state)
        self.tree.blockSignals(False)
        self._update_summary()

    def _on_tree_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        ticked = column == 2 and item.checkState(2) == Qt.CheckState.Checked
        if ticked and len(self.image_pages()) > MAX_PAGE_IMAGES:
            self.tree.blockSignals(True)
            item.setCheckState(2, Qt.CheckState.Unchecked)
            self.tree.blockSignals(False)
            self.note.setText(
                f"Scout looks at {MAX_PAGE_IMAGES} images at most: untick a page first."
            )
            return
        self.note.setText("")
        self._update_summary()

    def _update_summary(self) -> None:
        document = self.document
        kept = len(self.kept())
        if self._is_pdf:
            images = len(self.image_pages())
            text = (
                f"{document.page_count:,} pages read. Text of {kept:,} pages goes in; "
                f"{images} page{'' if images == 1 else 's'} as images (up to {MAX_PAGE_IMAGES})."
            )
        else:
            skipped = sum(1 for e in document.entries if e.status is EntryStatus.SKIPPED)
            text = f"{kept:,} files go in; {skipped:,} were skipped when the folder was read."
        notes = " ".join(f"Note: {n}." for n in document.notes)
        self.summary.setText(f"{text} {notes}".strip())


def _size(size: int) -> str:
    # Kept here: the ingest package (and Pillow with it) stays out of the window's start-up.
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    return f"{size} bytes"
