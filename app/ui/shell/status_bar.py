"""The status bar: engine state, speed of the last answer, GPU memory, and Undo for the trash."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QStatusBar, QWidget

from app.core.messages import Timings
from app.core.timings_text import timings_text
from app.inference.engine import EngineStatus, LoadProgress
from app.ui.widgets.plain_text import plain_html, plain_label

_UNDO_MS = 10_000
#: Prompts shorter than this are read too fast for a progress line to help.
PREFILL_SHOWN_FROM = 8192
_STATE_WORDS = {
    "not loaded": "Model: not loaded",
    "loading": "Model: loading…",
    "ready": "Model: ready",
    "generating": "Model: writing…",
    "unloading": "Model: unloading…",
    "error": "Model: not available",
    "no model": "No model chosen",
}


def memory_text(status: EngineStatus) -> str:
    """Say which device the model runs on and how much of its memory it uses.

    Args:
        status: the engine's status.

    Returns:
        e.g. "cuda:0 · 58.1 / 79.6 GiB", name and device when memory is unknown, or
        "model @ host" for a server.
    """
    if status.device == "server":  # a server's memory is its own: say which model, where
        return status.name
    if status.memory_used_bytes is None:
        return f"{status.name} · {status.device}" if status.name else status.device
    used = status.memory_used_bytes / 2**30
    if status.memory_total_bytes:
        return f"{status.device} · {used:.1f} / {status.memory_total_bytes / 2**30:.1f} GiB"
    return f"{status.device} · {used:.1f} GiB"


class StatusBar(QStatusBar):
    """Permanent labels on the right, transient messages and the Undo offer on the left."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        # All plain: load errors quote paths, the engine names its device, Undo names a chat.
        self.engine_label = plain_label(_STATE_WORDS["not loaded"], self)
        self.engine_label.setObjectName("EngineLabel")
        self.engine_label.setAccessibleName("Engine state")
        self.speed_label = plain_label(parent=self)
        self.speed_label.setAccessibleName("Speed of the last answer")
        self.memory_label = plain_label(parent=self)
        self.memory_label.setObjectName("MemoryLabel")
        self.memory_label.setAccessibleName("Model memory")
        for label in (self.speed_label, self.memory_label, self.engine_label):
            self.addPermanentWidget(label)
        self.speed_label.hide()
        self.memory_label.hide()

        self._undo_box = QWidget(self)
        self.undo_label = plain_label(parent=self._undo_box)
        self.undo_label.setObjectName("UndoLabel")
        self.undo_button = QPushButton("Undo", self._undo_box)
        self.undo_button.setAccessibleName("Undo")
        self.undo_button.setFlat(True)
        row = QHBoxLayout(self._undo_box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.undo_label)
        row.addWidget(self.undo_button)
        self.addWidget(self._undo_box)
        self._undo_box.hide()
        self._undo_action: Callable[[], None] | None = None
        self.undo_button.clicked.connect(self._on_undo_button_clicked)
        self._undo_timer = QTimer(self)
        self._undo_timer.setSingleShot(True)
        self._undo_timer.timeout.connect(self.hide_undo)

    def set_engine_state(self, state: str, detail: str = "") -> None:
        """Show the worker's state ("ready", "loading", ...), with a reason as tooltip.

        Args:
            state: a state word from `InferenceWorker.state_changed` or "no model".
            detail: a sentence shown as tooltip (why the model is not available, say).
        """
        self.engine_label.setText(_STATE_WORDS.get(state, f"Model: {state}"))
        self.engine_label.setToolTip(plain_html(detail))

    def set_load_progress(self, progress: LoadProgress) -> None:
        """Show how far a load has come."""
        if progress.total:
            percent = 100 * progress.done // max(1, progress.total)
            self.engine_label.setText(f"Model: loading {percent}%")
        self.engine_label.setToolTip(plain_html(progress.message))

    def set_engine_status(self, status: EngineStatus) -> None:
        """Show the loaded model's name, device and memory."""
        self.memory_label.setText(memory_text(status))
        self.memory_label.setToolTip(plain_html(status.name))
        self.memory_label.setVisible(bool(self.memory_label.text()))

    def set_prefill_progress(self, done: int, total: int) -> None:
        """Show how much of a long prompt the model has read ("Reading 120,000 / 400,000")."""
        if total < PREFILL_SHOWN_FROM:
            return  # a short prompt is read before anyone could read the line
        if done >= total:
            self.engine_label.setText(_STATE_WORDS["generating"])
            return
        self.engine_label.setText(f"Reading {done:,} / {total:,} tokens…")

    def set_timings(self, timings: Timings | None) -> None:
        """Show how fast the last answer came (hidden when unknown)."""
        text = timings_text(timings)
        self.speed_label.setText(text)
        self.speed_label.setVisible(bool(text))

    def show_undo(self, text: str, action: Callable[[], None]) -> None:
        """Offer to undo something for a few seconds.

        Args:
            text: what happened ("Moved “Trip” to the trash.").
            action: what "Undo" does.
        """
        self.clearMessage()
        self._undo_action = action
        self.undo_label.setText(text)
        self._undo_box.show()
        self._undo_timer.start(_UNDO_MS)

    def hide_undo(self) -> None:
        """Withdraw the Undo offer."""
        self._undo_timer.stop()
        self._undo_action = None
        self._undo_box.hide()

    def _on_undo_button_clicked(self) -> None:
        action = self._undo_action
        self.hide_undo()
        if action is not None:
            action()
