"""Looking through a clip: its strip, the scrub preview, a sampled frame in preview or viewer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QDockWidget

from app.core.messages import Attachment
from app.store.sessions import SessionStore
from app.ui.video.clip_state import ClipState, TaskSlots
from app.ui.video.panel import VideoPanel, facts_text
from app.ui.video.timeline import clock
from app.ui.viewer.image_viewer import ImageViewer, ViewerImage, load_upright
from app.ui.widgets.dock_present import present_dock

if TYPE_CHECKING:
    from app.core.video.data import VideoInfo

#: Pictures in the timeline's strip.
STRIP_THUMBS = 12
#: Longest side of a strip picture.
STRIP_SIDE = 160
#: A scrub waits this long for the pointer to rest before decoding a preview.
SCRUB_DEBOUNCE_MS = 120


class ClipBrowser:
    """Shows the clip in the panel: the strip, the frame under the playhead, sampled frames.

    Decoding (the strip, a scrub preview) runs on the clip's task slots, off the GUI thread.

    Args:
        store: the session store (its blobs hold the clip and the frame images).
        panel: the panel's widgets.
        clip: the clip shown (shared with the other video components).
        tasks: the clip's background work.
        viewer: the image viewer (a double-clicked frame opens there), or None.
        viewer_dock: the viewer's dock, or None.
        strip_ready: told how many pictures the timeline's strip got.
        preview_shown: told the time of the frame the preview now shows.
    """

    def __init__(
        self,
        *,
        store: SessionStore,
        panel: VideoPanel,
        clip: ClipState,
        tasks: TaskSlots,
        viewer: ImageViewer | None,
        viewer_dock: QDockWidget | None,
        strip_ready: Callable[[int], None],
        preview_shown: Callable[[float], None],
    ) -> None:
        self._store = store
        self._panel = panel
        self._clip = clip
        self._tasks = tasks
        self._viewer = viewer
        self._viewer_dock = viewer_dock
        self._strip_ready = strip_ready
        self._preview_shown = preview_shown
        self._scrub_time = 0.0
        # Owned here (no parent): it lives as long as the browser, which the controller holds.
        self._scrub_timer = QTimer()
        self._scrub_timer.setSingleShot(True)
        self._scrub_timer.setInterval(SCRUB_DEBOUNCE_MS)
        self._scrub_timer.timeout.connect(self._decode_preview)

    def show_clip(self, video: Attachment, info: VideoInfo | None) -> None:
        """Show a clip with nothing sampled: its facts, its strip, the frame at 00:00.

        Args:
            video: the clip's attachment.
            info: its facts, or None (no strip and no preview then).
        """
        self._clip.reset(video, info)
        self._panel.clear()
        self._panel.show_video(video.name, facts_text(info))
        duration = info.duration_s if info else 0.0
        self._panel.timeline.set_duration(duration)
        self._panel.set_frames([])
        if info is not None:
            self._make_strip()
            self.scrub(0.0, at_once=True)

    def stop(self) -> None:
        """Forget a scrub that waits for the pointer to rest."""
        self._scrub_timer.stop()

    def scrub(self, time_s: float, at_once: bool = False) -> None:
        """Move the playhead; the preview follows once the pointer rests (off the GUI thread).

        Args:
            time_s: seconds from the clip's start.
            at_once: decode now instead of after the debounce.
        """
        if self._clip.video is None or self._clip.info is None:
            return
        self._scrub_time = time_s
        self._panel.timeline.set_position(time_s)
        self._panel.time_label.setText(clock(time_s))
        self._select(None)
        if at_once:
            self._decode_preview()
        else:
            self._scrub_timer.start()

    def show_frame(self, position: int) -> bool:
        """Show a sampled frame with its boxes in the preview and select it everywhere.

        Returns:
            False when there is no such frame or its image cannot be read.
        """
        frames = self._clip.frames
        if not 0 <= position < len(frames):
            return False
        frame, image_attachment = frames[position], self._clip.images[position]
        image, problem = load_upright(self._store.blobs.path(image_attachment.sha256 or ""))
        if image.isNull():
            self._panel.set_status(problem, error=True)
            return False
        self._scrub_timer.stop()
        self._tasks.cancel("preview")  # a late scrub preview must not replace this frame
        self._select(position)
        self._panel.timeline.set_position(frame.time_s)
        boxes = [replace(b, image=0) for b in frame.boxes]
        count = "1 box" if len(boxes) == 1 else f"{len(boxes)} boxes" if boxes else "no boxes"
        caption = f"Frame {position + 1} of {len(frames)} · {clock(frame.time_s)}"
        if frame.answer is not None:
            caption += f" · {count}"
        self._panel.set_preview(image, boxes, caption)
        return True

    def open_in_viewer(self, position: int) -> bool:
        """Open a frame in the image viewer dock (zoom, box list, PNG export there).

        Returns:
            False without a viewer or such a frame.
        """
        clip = self._clip
        if self._viewer is None or not 0 <= position < len(clip.frames):
            return False
        frame, image = clip.frames[position], clip.images[position]
        message_id = None
        if clip.run is not None and position < len(clip.run.frames):
            message_id = clip.run.frames[position].message_id or None
        boxes = [replace(b, image=0) for b in frame.boxes]
        path = self._store.blobs.path(image.sha256 or "")
        self._viewer.show_images([ViewerImage(image.name, path)], boxes, message_id=message_id)
        if self._viewer_dock is not None:
            present_dock(self._viewer_dock)
        self.show_frame(position)
        return True

    # -- internals ---------------------------------------------------------------------------

    def _make_strip(self) -> None:
        from app.core.video.data import Sampling, SamplingMode
        from app.core.video.sampling import sample_frames

        path, info, name = self._blob(), self._clip.info, self._clip.video_name()
        assert info is not None

        def work(cancelled: Callable[[], bool]) -> list[tuple[float, QImage]]:
            frames = sample_frames(
                path, Sampling(SamplingMode.COUNT, count=STRIP_THUMBS), info, name=name,
                max_side=STRIP_SIDE, thumb_side=0, cancelled=cancelled,
            )  # fmt: skip
            return [(f.time_s, QImage.fromData(f.jpeg)) for f in frames]

        def done(thumbs: list[tuple[float, QImage]]) -> None:
            self._panel.timeline.set_strip(thumbs)
            self._strip_ready(len(thumbs))

        self._tasks.start("strip", work, done, self._on_task_failed)

    def _decode_preview(self) -> None:
        from app.core.video.sampling import frame_at

        if self._clip.video is None or self._clip.info is None:
            return
        path, info, name = self._blob(), self._clip.info, self._clip.video_name()
        when = self._scrub_time

        def work(_cancelled: Callable[[], bool]) -> tuple[float, QImage] | None:
            frame = frame_at(path, when, info, name=name)
            return None if frame is None else (frame.time_s, QImage.fromData(frame.jpeg))

        def done(found: tuple[float, QImage] | None) -> None:
            if found is None or self._clip.selected is not None:
                return  # a frame was picked meanwhile: it keeps the preview
            time_s, image = found
            self._panel.set_preview(image, (), clock(time_s))
            self._preview_shown(time_s)

        self._tasks.start("preview", work, done, self._on_task_failed)

    def _select(self, position: int | None) -> None:
        self._clip.selected = position
        self._panel.timeline.set_selected(position)
        self._panel.frame_list.select_frame(position)

    def _on_task_failed(self, sentence: str) -> None:
        self._panel.set_status(sentence, error=True)

    def _blob(self) -> Path:
        video = self._clip.video
        return self._store.blobs.path(video.sha256 or "") if video else Path()
