"""The video panel's widgets: clip facts, preview, timeline, sampling, three asks, results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.messages import Box
from app.ui.video.frame_list import FrameList
from app.ui.video.timeline import TimelineFrame, VideoTimeline
from app.ui.viewer.image_canvas import ImageCanvas
from app.ui.viewer.overlay_render import label_colours
from app.ui.widgets.plain_text import plain_label

if TYPE_CHECKING:
    from app.core.video.data import VideoInfo

#: Sampling modes as the panel offers them: (value, label).
MODES = (
    ("count", "Frames spread over the clip"),
    ("every", "One frame every…"),
    ("scenes", "At scene changes"),
)
EMPTY_TEXT = "Drop a video on the window, or use File ▸ Attach files…, to open it here."
_STYLE = """
#videoName { font-size: 12pt; font-weight: 600; }
#videoFacts, #videoStatus, #videoTime { color: palette(placeholder-text); }
#videoStatus[kind="error"] { color: palette(bright-text); }
#videoEmpty { color: palette(placeholder-text); font-size: 11pt; padding: 24px; }
#videoAnswer { border: 1px solid palette(mid); border-radius: 8px; background: palette(base); }
#videoAnswerTitle { font-weight: 600; }
QPushButton#videoAsk { border: 1px solid palette(mid); border-radius: 6px; padding: 4px 10px; }
QPushButton#videoAsk:hover { border-color: palette(highlight); }
QPushButton#videoAskFrames { background: palette(highlight); color: palette(highlighted-text);
    border: none; border-radius: 6px; padding: 5px 12px; font-weight: 600; }
QPushButton#videoAskFrames:disabled, QPushButton#videoAsk:disabled {
    background: palette(midlight); color: palette(placeholder-text); border: none; }
QPushButton#videoCancel { border: 1px solid palette(bright-text); color: palette(bright-text);
    border-radius: 6px; padding: 3px 10px; }
#videoProgress { border: none; border-radius: 3px; background: palette(midlight);
    max-height: 6px; }
#videoProgress::chunk { border-radius: 3px; background: palette(highlight); }
"""


class VideoPanel(QWidget):
    """Shows one clip and collects what the user asks of it; `VideoController` does the work."""

    #: the user asked to sample frames with the choice shown (`sampling_choice`).
    sample_requested = Signal()
    #: str: the user asked this question about the clip as a whole.
    ask_clip_requested = Signal(str)
    #: str: the user asked this question about every sampled frame.
    ask_frames_requested = Signal(str)
    #: the user asked for a summary of the per-frame answers.
    summary_requested = Signal()
    #: the user pressed Cancel.
    cancel_requested = Signal()
    #: str: the user asked for an export: "csv", "json" or "frames".
    export_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("videoPanel")
        self.setStyleSheet(_STYLE)
        self.name_label = _label("videoName")
        self.facts_label = _label("videoFacts")
        self.preview = ImageCanvas(self)
        self.preview.setAccessibleName("Frame preview")
        self.preview.setMinimumSize(200, 150)
        self.time_label = _label("videoTime")
        self.timeline = VideoTimeline(self)
        self.frame_list = FrameList(self)
        self._build_sampling()
        self._build_asking()
        self._build_progress()
        self.answer_title = _label("videoAnswerTitle")
        self.answer_text = QPlainTextEdit(self)
        self.answer_text.setObjectName("videoAnswerText")
        self.answer_text.setReadOnly(True)
        self.answer_text.setFrameShape(QFrame.Shape.NoFrame)
        self.answer_text.setMaximumHeight(110)
        self.status_label = _label("videoStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.export_button = self._export_button()
        self.empty_label = _label("videoEmpty", EMPTY_TEXT)
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._sized = False
        self._build_layout()
        self.clear()

    # -- what the controller shows -----------------------------------------------------------

    def show_video(self, name: str, facts: str) -> None:
        """Show a clip's name and facts and enable the controls."""
        self.name_label.setText(name)
        self.facts_label.setText(facts)
        self._pages.setCurrentIndex(1)
        self.set_busy(None)

    def clear(self) -> None:
        """Show the empty state."""
        self.name_label.clear()
        self.facts_label.clear()
        self.timeline.set_duration(0.0)
        self.frame_list.frame_model.set_frames([])
        self.preview.set_image(QImage())
        self.time_label.clear()
        self.set_answer("", "")
        self.set_status("")
        self.hide_progress()
        self._pages.setCurrentIndex(0)

    def set_frames(self, frames: Sequence[TimelineFrame]) -> None:
        """Show the sampled frames on the timeline and in the list."""
        self.timeline.set_frames(frames)
        self.frame_list.frame_model.set_frames(frames)
        self._update_enabled()

    def frame_changed(self, position: int) -> None:
        """Repaint one frame after its answer or thumbnail changed."""
        self.frame_list.frame_model.frame_changed(position)
        self.timeline.update()
        self._update_enabled()

    def set_preview(self, image: QImage, boxes: Sequence[Box] = (), caption: str = "") -> None:
        """Show a frame (with its boxes, in its own pixels) above the timeline."""
        colours = label_colours(b.label for b in boxes)
        self.preview.set_image(image, list(enumerate(boxes)), colours)
        self.time_label.setText(caption)

    def set_answer(self, title: str, text: str) -> None:
        """Show the clip answer or the summary (hidden when both are empty)."""
        self.answer_title.setText(title)
        self.answer_text.setPlainText(text)
        self._answer_box.setVisible(bool(title or text))

    def append_answer(self, text: str) -> None:
        """Add streamed text to the answer shown."""
        self.answer_text.moveCursor(self.answer_text.textCursor().MoveOperation.End)
        self.answer_text.insertPlainText(text)
        self.answer_text.ensureCursorVisible()

    def set_status(self, text: str, error: bool = False) -> None:
        """A line under the controls ("16 frames sampled", or a problem in red)."""
        self.status_label.setText(text)
        self.status_label.setProperty("kind", "error" if error else "")
        self.status_label.style().unpolish(self.status_label)
        self.status_label.style().polish(self.status_label)
        self.status_label.setVisible(bool(text))

    def set_progress(self, done: int, total: int, text: str) -> None:
        """Show the progress bar and Cancel ("frame 7 of 16"); total 0 means unknown."""
        self.progress_bar.setRange(0, max(total, 0))
        self.progress_bar.setValue(min(done, total) if total else 0)
        self.progress_label.setText(text)
        self._progress_row.show()

    def hide_progress(self) -> None:
        """Hide the progress bar and Cancel."""
        self._progress_row.hide()

    def set_busy(self, what: str | None) -> None:
        """Lock the controls while something runs ("sampling", "asking"); None unlocks them."""
        self._busy = what
        self._update_enabled()

    # -- what the user chose -----------------------------------------------------------------

    def sampling_choice(self) -> tuple[str, int, float]:
        """(mode, frame count, seconds between frames) as chosen."""
        mode = self.mode_combo.currentData()
        return str(mode), self.count_spin.value(), self.every_spin.value()

    def set_sampling_choice(self, mode: str, count: int | None = None) -> None:
        """Pick a sampling mode (and count) in the controls."""
        index = self.mode_combo.findData(mode)
        if index >= 0:
            self.mode_combo.setCurrentIndex(index)
        if count is not None:
            self.count_spin.setValue(count)

    def question(self) -> str:
        """The question typed, trimmed."""
        return self.question_edit.text().strip()

    def faster(self) -> bool:
        """Whether "faster (fewer tiles)" is ticked."""
        return self.fast_check.isChecked()

    # -- building ----------------------------------------------------------------------------

    def _build_sampling(self) -> None:
        self.mode_combo = QComboBox(self)
        self.mode_combo.setAccessibleName("How to sample frames")
        for value, text in MODES:
            self.mode_combo.addItem(text, value)
        self.count_spin = QSpinBox(self)
        self.count_spin.setRange(1, 500)
        self.count_spin.setValue(8)
        self.count_spin.setSuffix(" frames")
        self.count_spin.setAccessibleName("Number of frames")
        self.every_spin = QDoubleSpinBox(self)
        self.every_spin.setRange(0.1, 3600.0)
        self.every_spin.setDecimals(1)
        self.every_spin.setValue(2.0)
        self.every_spin.setSuffix(" s")
        self.every_spin.setAccessibleName("Seconds between frames")
        self._amount = QStackedWidget(self)
        self._amount.addWidget(self.count_spin)
        self._amount.addWidget(self.every_spin)
        self._amount.addWidget(QWidget(self))
        self.mode_combo.currentIndexChanged.connect(self._amount.setCurrentIndex)
        self.sample_button = QPushButton("Sample", self)
        self.sample_button.setObjectName("videoAsk")
        self.sample_button.setToolTip("Take frames from the clip as chosen (shown on the timeline)")
        self.sample_button.clicked.connect(self.sample_requested)

    def _build_asking(self) -> None:
        self.question_edit = QLineEdit(self)
        self.question_edit.setObjectName("videoQuestion")
        self.question_edit.setPlaceholderText("Ask about this video… (e.g. where is the forklift?)")
        self.question_edit.setClearButtonEnabled(True)
        self.question_edit.textChanged.connect(self._update_enabled)
        self.question_edit.returnPressed.connect(self._on_question_return_pressed)
        self.clip_button = QPushButton("About the clip", self)
        self.clip_button.setObjectName("videoAsk")
        self.clip_button.setToolTip(
            "One answer about the whole clip (5 frames at most, in one prompt)"
        )
        self.clip_button.clicked.connect(lambda: self.ask_clip_requested.emit(self.question()))
        self.frames_button = QPushButton("Every frame", self)
        self.frames_button.setObjectName("videoAskFrames")
        self.frames_button.setToolTip("Ask the same question about every sampled frame (Enter)")
        self.frames_button.clicked.connect(lambda: self.ask_frames_requested.emit(self.question()))
        self.summary_button = QPushButton("Summarize", self)
        self.summary_button.setObjectName("videoAsk")
        self.summary_button.setToolTip("One summary over the per-frame answers")
        self.summary_button.clicked.connect(self.summary_requested)
        self.fast_check = QCheckBox("Faster (fewer tiles)", self)
        self.fast_check.setToolTip("Fewer image tiles per frame: quicker, may miss small things")

    def _build_progress(self) -> None:
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setObjectName("videoProgress")
        self.progress_bar.setTextVisible(False)
        self.progress_label = _label("videoStatus")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("videoCancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self._progress_row = QWidget(self)
        row = QHBoxLayout(self._progress_row)
        row.setContentsMargins(0, 0, 0, 0)
        column = QVBoxLayout()
        column.setSpacing(3)
        column.addWidget(self.progress_label)
        column.addWidget(self.progress_bar)
        row.addLayout(column, 1)
        row.addWidget(self.cancel_button)

    def _export_button(self) -> QToolButton:
        button = QToolButton(self)
        button.setObjectName("videoExport")
        button.setText("Export")
        button.setAccessibleName("Export the per-frame results")
        button.setAutoRaise(True)
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(button)
        for kind, text in (
            ("csv", "Results as CSV…"),
            ("json", "Results as JSON…"),
            ("frames", "Annotated frames (PNG)…"),
        ):
            action = menu.addAction(text)
            action.setObjectName(f"videoExport_{kind}")
            action.triggered.connect(lambda _checked=False, k=kind: self.export_requested.emit(k))
        button.setMenu(menu)
        return button

    def _build_layout(self) -> None:
        header = QHBoxLayout()
        names = QVBoxLayout()
        names.setSpacing(0)
        names.addWidget(self.name_label)
        names.addWidget(self.facts_label)
        header.addLayout(names, 1)
        header.addWidget(self.export_button, 0, Qt.AlignmentFlag.AlignTop)

        sampling = QHBoxLayout()
        sampling.addWidget(self.mode_combo, 1)
        sampling.addWidget(self._amount)
        sampling.addWidget(self.sample_button)
        asks = QHBoxLayout()
        asks.addWidget(self.frames_button)
        asks.addWidget(self.clip_button)
        asks.addWidget(self.summary_button)
        asks.addStretch(1)
        asks.addWidget(self.fast_check)

        self._answer_box = QFrame(self)
        self._answer_box.setObjectName("videoAnswer")
        box = QVBoxLayout(self._answer_box)
        box.setContentsMargins(8, 6, 8, 6)
        box.setSpacing(2)
        box.addWidget(self.answer_title)
        box.addWidget(self.answer_text)

        top = QWidget(self)
        column = QVBoxLayout(top)
        column.setContentsMargins(10, 8, 10, 4)
        column.setSpacing(6)
        column.addLayout(header)
        column.addWidget(self.preview, 1)
        column.addWidget(self.time_label)
        column.addWidget(self.timeline)
        column.addLayout(sampling)
        column.addWidget(self.question_edit)
        column.addLayout(asks)
        column.addWidget(self._progress_row)
        column.addWidget(self.status_label)
        column.addWidget(self._answer_box)
        self._splitter = splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(top)
        splitter.addWidget(self.frame_list)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)

        self._pages = QStackedWidget(self)
        self._pages.addWidget(self.empty_label)
        self._pages.addWidget(splitter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._pages)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        if not self._sized and self.height() > 200:
            # The preview would take every spare pixel; give the results list a fair share.
            self._sized = True
            self._splitter.setSizes([int(self.height() * 0.64), int(self.height() * 0.36)])

    def _update_enabled(self) -> None:
        busy = getattr(self, "_busy", None) is not None
        frames = self.frame_list.frame_model.frames()
        answered = sum(1 for f in frames if f.answer is not None and not f.waiting)
        has_question = bool(self.question())
        for widget in (self.mode_combo, self._amount, self.sample_button, self.fast_check):
            widget.setEnabled(not busy)
        self.frames_button.setEnabled(not busy and has_question)
        self.clip_button.setEnabled(not busy and has_question)
        self.summary_button.setEnabled(not busy and answered >= 1)
        self.export_button.setEnabled(not busy and answered >= 1)

    def _on_question_return_pressed(self) -> None:
        if self.frames_button.isEnabled():
            self.ask_frames_requested.emit(self.question())


def facts_text(info: VideoInfo | None) -> str:
    """The panel's line about a clip: "12.4 s · 25 fps · 1280×720 · 310 frames"."""
    if info is None:
        return "Length and size were not recorded."
    seconds = info.duration_s
    if seconds < 60:
        length = f"{seconds:.1f} s"
    else:
        length = f"{int(seconds // 60)} min {seconds % 60:04.1f} s"
    estimated = " (estimated)" if info.estimated else ""
    frames = "1 frame" if info.frame_count == 1 else f"{info.frame_count:,} frames"
    return f"{length}{estimated} · {info.fps:g} fps · {info.width}×{info.height} · {frames}"


def _label(name: str, text: str = "") -> QLabel:
    """A named label in plain text: the panel's labels show clip names, answers and errors."""
    label = plain_label(text)
    label.setObjectName(name)
    return label
