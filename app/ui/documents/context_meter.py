"""The composer's live context meter: what the next message costs against what fits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from app.inference.context_count import (
    ContextCounter,
    ContextEstimate,
    ContextInputs,
    read_model_facts,
)
from app.ui.tasks.pool import TaskPool

#: Typing pauses this long before the meter counts again.
DEBOUNCE_MS = 150
#: Above this share of the capacity the meter turns amber.
WARN_SHARE = 0.85


def meter_text(estimate: ContextEstimate) -> str:
    """The meter's one line ("~1,234 of 4,096 tokens", "12,400 tokens over: …").

    Args:
        estimate: the latest count.

    Returns:
        A sentence fragment for the label; a "~" marks an estimate.
    """
    mark = "" if estimate.exact else "~"
    if estimate.over and estimate.has_documents:
        return f"{mark}{estimate.over:,} tokens over: drop files or pages, or answer chunk by chunk"
    if estimate.over and estimate.history_tokens >= estimate.over:
        return (
            f"{mark}{estimate.over:,} tokens over: this chat is too long, start a new one (Ctrl+N)"
        )
    if estimate.over:
        return f"{mark}{estimate.over:,} tokens over: remove attachments or start a new chat"
    if estimate.capacity is None:
        return f"{mark}{estimate.need:,} tokens (context unknown: no model folder)"
    return f"{mark}{estimate.need:,} of {estimate.capacity:,} tokens"


def meter_tooltip(estimate: ContextEstimate) -> str:
    """The breakdown behind the meter, one part a line."""
    mark = "" if estimate.exact else "~"
    lines = [
        f"Typed text and attached documents: {mark}{estimate.text_tokens:,}",
        f"Images: {estimate.image_tokens:,}",
        f"Conversation so far: {mark}{estimate.history_tokens:,}",
        f"Room kept for the answer: {estimate.answer_tokens:,}",
    ]
    if estimate.capacity is not None:
        lines.append(f"Usable context: {estimate.capacity:,} ({estimate.capacity_source})")
    else:
        lines.append("Usable context: unknown until a model folder is chosen")
    if not estimate.exact:
        lines.append("~ counted as four characters a token (the model's tokenizer is not loaded)")
    return "\n".join(lines)


class ContextMeterBar(QWidget):
    """A thin bar and a line of text; over budget it turns red and offers ways out."""

    #: the user wants to drop files or pages (open the attachments' reports).
    drop_requested = Signal()
    #: the user chose to answer chunk by chunk (map-reduce).
    chunked_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ContextMeter")
        self.bar = QProgressBar(self)
        self.bar.setObjectName("ContextMeterBar")
        self.bar.setTextVisible(False)
        self.bar.setFixedSize(120, 6)
        self.bar.setRange(0, 1000)
        self.label = QLabel(self)
        self.label.setObjectName("ContextMeterLabel")
        self.label.setAccessibleName("Context used")
        self.label.setWordWrap(True)  # a narrow window wraps the sentence instead of widening
        self.drop_button = QPushButton("Drop files or pages…", self)
        self.drop_button.setObjectName("MeterDropButton")
        self.drop_button.setToolTip("Untick files or pages of the attached documents")
        self.drop_button.clicked.connect(self.drop_requested)
        self.chunked_button = QPushButton("Answer chunk by chunk", self)
        self.chunked_button.setObjectName("ChunkedButton")
        self.chunked_button.setToolTip(
            "Read the documents part by part, answer from each, then combine the answers"
        )
        self.chunked_button.clicked.connect(self.chunked_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.bar, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.drop_button)
        layout.addWidget(self.chunked_button)
        self.estimate: ContextEstimate | None = None
        self.show_estimate(None)

    def show_estimate(self, estimate: ContextEstimate | None) -> None:
        """Show a count (None: nothing to count yet; the meter hides)."""
        self.estimate = estimate
        if estimate is None:
            self.setVisible(False)
            return
        self.setVisible(True)
        self.label.setText(meter_text(estimate))
        self.setToolTip(meter_tooltip(estimate))
        share = estimate.need / estimate.capacity if estimate.capacity else 0.0
        self.bar.setValue(int(min(1.0, share) * 1000))
        level = "over" if estimate.over else "warn" if share >= WARN_SHARE else "ok"
        for widget in (self, self.bar, self.label):
            widget.setProperty("level", level)
            widget.style().unpolish(widget)
            widget.style().polish(widget)
        # Both ways out need documents in the draft (an old conversation needs a new chat).
        ways_out = bool(estimate.over) and estimate.has_documents
        self.drop_button.setVisible(ways_out)
        self.chunked_button.setVisible(ways_out)


class ContextMeter(QObject):
    """Counts the draft off the GUI thread, debounced, and shows the result on a `ContextMeterBar`.

    Args:
        bar: where the count is shown.
        inputs: takes the snapshot to count (called on the GUI thread).
        blob_path: maps a blob's SHA-256 to its file.
        parent: the usual QObject parent.
    """

    #: ContextEstimate: a new count arrived.
    estimate_changed = Signal(object)

    def __init__(
        self,
        bar: ContextMeterBar,
        inputs: Callable[[], ContextInputs | None],
        blob_path: Callable[[str], Path],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._bar = bar
        self._inputs = inputs
        self._counter = ContextCounter(blob_path)  # touched on the pool thread only
        self._tasks = TaskPool(1, self)  # one thread: tasks run in order
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._busy = False
        self._dirty = False
        self._tokenizer_for: str | None = None
        self.estimate: ContextEstimate | None = None

    def schedule(self) -> None:
        """Count again once typing pauses."""
        self._timer.start()

    def busy(self) -> bool:
        """True while a count is waiting or running."""
        return self._busy or self._timer.isActive() or self._dirty

    def refusal(self) -> str | None:
        """Why a plain send must not go now (over budget), or None."""
        estimate = self.estimate
        if estimate is None or not estimate.over or estimate.capacity is None:
            return None
        if estimate.has_documents:
            way_out = "Drop files or pages, or choose “Answer chunk by chunk”."
        else:
            way_out = "Remove attachments, or start a new chat (Ctrl+N)."
        return (
            f"This message needs {estimate.need:,} tokens ({estimate.prompt_tokens:,} prompt + "
            f"{estimate.answer_tokens:,} for the answer) but {estimate.capacity_source} holds "
            f"{estimate.capacity:,}: {estimate.over:,} tokens over. {way_out}"
        )

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Stop counting and join the pool."""
        self._timer.stop()
        self._tasks.shutdown(timeout_ms)

    def _on_timer_timeout(self) -> None:
        if self._busy:
            self._dirty = True
            return
        inputs = self._inputs()
        if inputs is None:
            self.estimate = None
            self._bar.show_estimate(None)
            return
        self._busy = True
        counter = self._counter

        def work() -> ContextEstimate:
            if counter.facts.model_dir != inputs.model_dir:
                # Config and tiling now (milliseconds); the tokenizer loads in its own task.
                counter.use_model(read_model_facts(inputs.model_dir, load_tokenizer=False))
            return counter.measure(inputs)

        self._tasks.run(work, self._on_measured, self._on_failed)
        if inputs.model_dir and self._tokenizer_for != inputs.model_dir:
            self._tokenizer_for = inputs.model_dir
            model_dir = inputs.model_dir

            def load() -> bool:
                facts = read_model_facts(model_dir)
                if counter.facts.model_dir == model_dir:
                    counter.use_model(facts)
                return facts.counter.exact

            self._tasks.run(load, self._on_tokenizer_loaded)

    def _on_measured(self, estimate: ContextEstimate) -> None:
        self._busy = False
        self.estimate = estimate
        self._bar.show_estimate(estimate)
        self.estimate_changed.emit(estimate)
        if self._dirty:
            self._dirty = False
            self._on_timer_timeout()

    def _on_failed(self, _sentence: str) -> None:
        self._busy = False
        if self._dirty:
            self._dirty = False
            self._on_timer_timeout()

    def _on_tokenizer_loaded(self, exact: bool) -> None:
        if exact:
            self.schedule()
