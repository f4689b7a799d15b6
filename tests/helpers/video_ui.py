"""The video panel in tests: a window with its panel, a dropped clip, sampling, fake answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.core.messages import Box, StopReason
from app.core.video.data import FrameRef, FrameResult
from app.inference.engine import CancelToken
from app.ui.shell.main_window import MainWindow
from app.ui.video.controller import VideoController
from app.ui.widgets.theme import apply_theme
from tests.helpers.offscreen import drop_files
from tests.helpers.video_clips import FPS, SQUARE, STEP

SHOTS = Path("/tmp/ui-shots")
QUESTION = "Where is the white square?"


def video_window(open_window, **options) -> tuple[MainWindow, VideoController]:
    """A window over the scripted engine, with its video panel."""
    window = open_window(**options)
    assert isinstance(window.video, VideoController)
    return window, window.video


def open_clip(qtbot, window: MainWindow, video: VideoController, clip: Path) -> None:
    """Drop a clip on the window and wait until the panel shows it with its strip."""
    with qtbot.waitSignal(video.strip_ready, timeout=20_000):
        drop_files(window.chat_view, [clip])
    assert video.video is not None and video.video.name == clip.name


def sample(qtbot, video: VideoController, mode: str = "count", count: int = 4) -> int:
    """Sample with the panel's controls; returns how many frames were taken."""
    video.panel.set_sampling_choice(mode, count)
    with qtbot.waitSignal(video.sampling_finished, timeout=20_000) as blocker:
        qtbot.mouseClick(video.panel.sample_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def square_box(ref: FrameRef) -> Box:
    """Where the square of the test clip is in a frame (its position is known per frame)."""
    x = STEP * round(ref.time_s * FPS)
    return Box("square", ref.index, x, 50, x + SQUARE, 50 + SQUARE)


class FakeAnswers:
    """Stands in for `answer_frames` (which needs a loaded Llama 4): a boxed answer per frame.

    With `gated`, each frame waits for `release()`, so a test can look between answers.
    """

    def __init__(self, gated: bool = False, fail_with: Exception | None = None) -> None:
        self.gated = gated
        self.fail_with = fail_with
        self.calls: list[dict[str, object]] = []
        self.questions: list[str] = []
        self._gate = threading.Semaphore(0)

    def release(self, frames: int = 1) -> None:
        for _ in range(frames):
            self._gate.release()

    def __call__(
        self,
        engine: object,
        question: str,
        frames: Sequence[FrameRef],
        video_name: str,
        cancel: CancelToken,
        **options: object,
    ) -> Iterator[FrameResult]:
        self.calls.append(options)
        self.questions.append(question)
        if self.fail_with is not None:
            raise self.fail_with
        for ref in frames:
            while self.gated and not self._gate.acquire(timeout=0.01):
                if cancel.cancelled:
                    return
            if cancel.cancelled:
                return
            yield FrameResult(
                ref.index,
                ref.time_s,
                f"The square is {STEP * round(ref.time_s * FPS)} px from the left.",
                (square_box(ref),),
                StopReason.EOS,
            )


def square_left(image: QImage) -> int:
    """The left edge of the white square in a frame shown by the panel."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = rgb.width(), rgb.height()
    data = np.frombuffer(rgb.constBits(), np.uint8, rgb.bytesPerLine() * height)
    pixels = data.reshape(height, rgb.bytesPerLine())[:, : width * 3].reshape(height, width, 3)
    bright = np.argwhere(pixels.min(axis=2) > 200)
    assert len(bright), "no square in the frame"
    return int(bright[:, 1].min())


def shot(widget, name: str, theme: str = "light") -> None:
    """Save a screenshot of `widget` in a theme, for a person to look at."""
    app = QApplication.instance()
    apply_theme(app, theme)
    QTest.qWait(30)  # let posted layout requests run, so the picture is what a user sees
    SHOTS.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(SHOTS / name))
    if theme != "light":
        apply_theme(app, "light")
