"""The composer's progress row while an answer is given chunk by chunk: "chunk 3 of 14", Cancel."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

from app.ui.widgets.plain_text import plain_label


def progress_text(done: int, total: int, label: str) -> str:
    """What the row says ("chunk 3 of 14 — report.pdf pp. 25–36").

    Args:
        done: map steps finished.
        total: map steps in all (0 while the documents are being cut).
        label: what the step in flight reads, or what is happening.

    Returns:
        The sentence.
    """
    if total <= 0:
        return f"Answering chunk by chunk: {label}"
    if done >= total:
        return f"Answering chunk by chunk: all {total} chunks read, {label}"
    return f"Answering chunk by chunk: chunk {done + 1} of {total} — {label}"


class ChunkProgress(QWidget):
    """A label, a bar and Cancel; hidden unless a chunk-by-chunk answer runs."""

    #: the user pressed Cancel (the notes so far are kept).
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChunkProgress")
        self.label = plain_label(parent=self)  # it names the files being read
        self.label.setObjectName("ChunkProgressLabel")
        self.label.setAccessibleName("Chunk progress")
        self.bar = QProgressBar(self)
        self.bar.setObjectName("ChunkProgressBar")
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(160)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("ChunkCancelButton")
        self.cancel_button.setToolTip("Stop after this chunk; the answers so far are kept")
        self.cancel_button.clicked.connect(self.cancel_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.hide()

    def begin(self) -> None:
        """Show the row for a new run."""
        self.set_progress(0, 0, "cutting the documents into chunks…")
        self.cancel_button.setEnabled(True)
        self.show()

    def set_progress(self, done: int, total: int, label: str) -> None:
        """Show how far the run has come."""
        self.label.setText(progress_text(done, total, label))
        if total <= 0:
            self.bar.setRange(0, 0)  # busy: the chunks are being planned
        else:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))

    def end(self) -> None:
        """Hide the row (the run ended)."""
        self.hide()
