"""The video panel's logic: open a clip, scrub it, sample frames, show and restore runs, export.

Asking Scout (the three ways) lives in `VideoAsking`, which this controller mixes in; the
panel only shows and reports clicks. Decoding (probe, thumbnails, previews, sampling) runs on
the task pool, whose cancellable work reaches the decoder's child process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QDockWidget

from app.conversation.video_questions import AnswerFrames, answer_frames
from app.core.messages import Attachment, AttachmentKind
from app.core.settings import Settings
from app.store.sessions import SessionStore
from app.ui.ports import ChatPort
from app.ui.tasks.pool import TaskPool
from app.ui.transcript.view import ChatView
from app.ui.video.asking import VideoAsking
from app.ui.video.export import ChooseFolder, VideoExports, ask_folder
from app.ui.video.panel import VideoPanel, facts_text
from app.ui.video.saved_runs import VideoRuns
from app.ui.video.timeline import TimelineFrame, clock
from app.ui.viewer.image_viewer import ImageViewer, ViewerImage, load_upright
from app.ui.viewer.overlay_export import ChoosePath, ask_save_path
from app.ui.widgets.dock_present import present_dock

if TYPE_CHECKING:
    from app.core.video.data import VideoInfo
    from app.core.video.run import VideoRun

#: Pictures in the timeline's strip.
STRIP_THUMBS = 12
#: Longest side of a strip picture.
STRIP_SIDE = 160
#: A scrub waits this long for the pointer to rest before decoding a preview.
SCRUB_DEBOUNCE_MS = 120


class VideoController(VideoAsking, VideoRuns, VideoExports, QObject):
    """Drives the video panel: one clip at a time, its sampled frames, their answers.

    The window connects the chat's `session_opened` to `on_chat_session_opened`, ingest's
    `ingest_finished` to `on_ingest_finished`, and attachment clicks to
    `on_attachment_activated`.

    Args:
        store: the session store.
        chat: the chat (its worker, the chat shown, its refusals).
        view: the transcript (saved questions and answers are shown there as they come).
        panel: the panel's widgets.
        dock: the dock that holds the panel.
        settings: returns the settings in force.
        viewer: the image viewer (a double-clicked frame opens there), or None.
        viewer_dock: the viewer's dock, or None.

    Attributes:
        answer_frames: answers every frame on the worker thread; tests inject a fake.
        choose_path: asks where to save a CSV or JSON export.
        choose_folder: asks where to write annotated frames.
        batch_size: frames per `generate` call.
    """

    #: str: a sentence for the status bar.
    message_posted = Signal(str)
    #: Attachment: a clip was opened in the panel.
    video_opened = Signal(object)
    #: int: the timeline's strip got this many pictures.
    strip_ready = Signal(int)
    #: float: the preview shows the frame decoded at this time.
    preview_shown = Signal(float)
    #: int: sampling ended with this many frames (0: it failed or found none).
    sampling_finished = Signal(int)
    #: (kind, how): an ask ended; kind "frames", "clip" or "summary"; how "done",
    #: "cancelled" or "failed".
    ask_finished = Signal(str, str)
    #: list[Path]: an export wrote these files ([] when it failed or was cancelled).
    export_finished = Signal(object)
    #: str: the panel now shows the saved run of this session.
    run_restored = Signal(str)

    def __init__(
        self,
        *,
        store: SessionStore,
        chat: ChatPort,
        view: ChatView,
        panel: VideoPanel,
        dock: QDockWidget,
        settings: Callable[[], Settings],
        viewer: ImageViewer | None = None,
        viewer_dock: QDockWidget | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._chat = chat
        self._view = view
        self.panel = panel
        self._dock = dock
        self._settings = settings
        self._viewer = viewer
        self._viewer_dock = viewer_dock
        self.answer_frames: AnswerFrames = answer_frames
        self.choose_path: ChoosePath = ask_save_path
        self.choose_folder: ChooseFolder = ask_folder
        self.batch_size = 4  # app.inference.frames.DEFAULT_BATCH_SIZE, without importing it here
        self._tasks = TaskPool(3, self)  # thumbnails, sampling and a scrub preview at once
        self._video: Attachment | None = None
        self._info: VideoInfo | None = None
        self._frames: list[TimelineFrame] = []
        self._images: list[Attachment] = []  # the stored frame images, beside `_frames`
        self._run: VideoRun | None = None  # the saved run shown (None: nothing asked yet)
        self._run_session: str | None = None
        self._selected: int | None = None
        self._task: dict[str, int | None] = {}
        self._after_sampling: Callable[[], object] | None = None
        self._closed = False
        self._scrub_time = 0.0
        self._scrub_timer = QTimer(self)
        self._scrub_timer.setSingleShot(True)
        self._scrub_timer.setInterval(SCRUB_DEBOUNCE_MS)
        self._scrub_timer.timeout.connect(self._decode_preview)
        self._init_asking()
        panel.sample_requested.connect(self.sample)
        panel.ask_clip_requested.connect(self.ask_clip)
        panel.ask_frames_requested.connect(self.ask_frames)
        panel.summary_requested.connect(self.summarize)
        panel.cancel_requested.connect(self.cancel)
        panel.export_requested.connect(self.export)
        panel.timeline.scrubbed.connect(self.scrub)
        panel.timeline.frame_clicked.connect(self.show_frame)
        panel.frame_list.frame_selected.connect(self.show_frame)
        panel.frame_list.frame_activated.connect(self.open_in_viewer)

    # -- state -------------------------------------------------------------------------------

    @property
    def video(self) -> Attachment | None:
        """The clip shown, or None."""
        return self._video

    @property
    def info(self) -> VideoInfo | None:
        """The clip's facts, or None."""
        return self._info

    @property
    def frames(self) -> list[TimelineFrame]:
        """The sampled frames on the timeline, with their answers."""
        return list(self._frames)

    @property
    def run(self) -> VideoRun | None:
        """The saved run the panel shows (None before anything was asked)."""
        return self._run

    @property
    def selected(self) -> int | None:
        """The frame shown in the preview, or None."""
        return self._selected

    def is_sampling(self) -> bool:
        """Whether frames are being sampled now."""
        return self._tasks.is_running(self._task.get("sample"))

    # -- opening -----------------------------------------------------------------------------

    def open_video(self, attachment: Attachment) -> bool:
        """Show a READY video attachment in the panel (a new clip: nothing sampled yet).

        Returns:
            False when it is not a usable video or a question about a clip is running.
        """
        from app.core.video.attachments import info_from_detail

        info = info_from_detail(attachment.detail)
        if attachment.kind is not AttachmentKind.VIDEO or not attachment.sha256 or info is None:
            return False
        if self.busy_refusal():
            self.message_posted.emit(f"{attachment.name} will open once the answers are done.")
            return False
        self._show_clip(attachment, info)
        self._present()
        self.video_opened.emit(attachment)
        return True

    def clear(self) -> None:
        """Show no clip (cancels sampling and previews)."""
        self._cancel_tasks()
        self._video, self._info, self._run, self._run_session = None, None, None, None
        self._frames, self._images, self._selected = [], [], None
        self.panel.clear()

    def _show_clip(self, video: Attachment, info: VideoInfo | None) -> None:
        self._cancel_tasks()
        self._video, self._info = video, info
        self._run, self._run_session, self._selected = None, None, None
        self._frames, self._images = [], []
        self.panel.clear()
        self.panel.show_video(video.name, facts_text(info))
        duration = info.duration_s if info else 0.0
        self.panel.timeline.set_duration(duration)
        self.panel.set_frames([])
        if info is not None:
            self._make_strip()
            self.scrub(0.0, at_once=True)

    def _make_strip(self) -> None:
        from app.core.video.data import Sampling, SamplingMode
        from app.core.video.sampling import sample_frames

        path, info, name = self._blob(self._video), self._info, self._video_name()
        assert info is not None

        def work(cancelled: Callable[[], bool]) -> list[tuple[float, QImage]]:
            frames = sample_frames(
                path, Sampling(SamplingMode.COUNT, count=STRIP_THUMBS), info, name=name,
                max_side=STRIP_SIDE, thumb_side=0, cancelled=cancelled,
            )  # fmt: skip
            return [(f.time_s, QImage.fromData(f.jpeg)) for f in frames]

        def done(thumbs: list[tuple[float, QImage]]) -> None:
            self.panel.timeline.set_strip(thumbs)
            self.strip_ready.emit(len(thumbs))

        self._start("strip", work, done, self._on_task_failed)

    # -- scrubbing and frames ----------------------------------------------------------------

    def scrub(self, time_s: float, at_once: bool = False) -> None:
        """Move the playhead; the preview follows once the pointer rests (off the GUI thread).

        Args:
            time_s: seconds from the clip's start.
            at_once: decode now instead of after the debounce.
        """
        if self._video is None or self._info is None:
            return
        self._scrub_time = time_s
        self.panel.timeline.set_position(time_s)
        self.panel.time_label.setText(clock(time_s))
        self._select(None)
        if at_once:
            self._decode_preview()
        else:
            self._scrub_timer.start()

    def _decode_preview(self) -> None:
        from app.core.video.sampling import frame_at

        if self._video is None or self._info is None:
            return
        path, info, name = self._blob(self._video), self._info, self._video_name()
        when = self._scrub_time

        def work(_cancelled: Callable[[], bool]) -> tuple[float, QImage] | None:
            frame = frame_at(path, when, info, name=name)
            return None if frame is None else (frame.time_s, QImage.fromData(frame.jpeg))

        def done(found: tuple[float, QImage] | None) -> None:
            if found is None or self._selected is not None:
                return  # a frame was picked meanwhile: it keeps the preview
            time_s, image = found
            self.panel.set_preview(image, (), clock(time_s))
            self.preview_shown.emit(time_s)

        self._start("preview", work, done, self._on_task_failed)

    def show_frame(self, position: int) -> bool:
        """Show a sampled frame with its boxes in the preview and select it everywhere.

        Returns:
            False when there is no such frame or its image cannot be read.
        """
        if not 0 <= position < len(self._frames):
            return False
        frame, image_attachment = self._frames[position], self._images[position]
        image, problem = load_upright(self._store.blobs.path(image_attachment.sha256 or ""))
        if image.isNull():
            self.panel.set_status(problem, error=True)
            return False
        self._scrub_timer.stop()
        self._tasks.cancel(self._task.get("preview"))
        self._select(position)
        self.panel.timeline.set_position(frame.time_s)
        boxes = [replace(b, image=0) for b in frame.boxes]
        count = "1 box" if len(boxes) == 1 else f"{len(boxes)} boxes" if boxes else "no boxes"
        caption = f"Frame {position + 1} of {len(self._frames)} · {clock(frame.time_s)}"
        if frame.answer is not None:
            caption += f" · {count}"
        self.panel.set_preview(image, boxes, caption)
        return True

    def open_in_viewer(self, position: int) -> bool:
        """Open a frame in the image viewer dock (zoom, box list, PNG export there).

        Returns:
            False without a viewer or such a frame.
        """
        if self._viewer is None or not 0 <= position < len(self._frames):
            return False
        frame, image = self._frames[position], self._images[position]
        message_id = None
        if self._run is not None and position < len(self._run.frames):
            message_id = self._run.frames[position].message_id or None
        boxes = [replace(b, image=0) for b in frame.boxes]
        path = self._store.blobs.path(image.sha256 or "")
        self._viewer.show_images([ViewerImage(image.name, path)], boxes, message_id=message_id)
        if self._viewer_dock is not None:
            present_dock(self._viewer_dock)
        self.show_frame(position)
        return True

    def _select(self, position: int | None) -> None:
        self._selected = position
        self.panel.timeline.set_selected(position)
        self.panel.frame_list.select_frame(position)

    # -- sampling ----------------------------------------------------------------------------

    def sample(self) -> bool:
        """Sample frames as the panel's choice says (on the pool; Cancel stops it).

        Returns:
            True when sampling started.
        """
        from app.core.video.data import MAX_FRAMES, Sampling, SamplingMode

        refusal = self.busy_refusal() or ("Open a video first." if self._video is None else None)
        if refusal is None and self._info is None:
            refusal = f"{self._video_name()} has no recorded length; attach it again."
        if refusal is not None:
            self._after_sampling = None
            self.panel.set_status(refusal, error=True)
            return False
        mode, count, every = self.panel.sampling_choice()
        # A scene scan keeps at most `count` scenes; the panel's count is for "N frames".
        limit = count if mode != "scenes" else MAX_FRAMES
        sampling = Sampling(SamplingMode(mode), count=limit, every_s=every)
        path, info, name, video = (
            self._blob(self._video),
            self._info,
            self._video_name(),
            self._video,
        )
        blobs = self._store.blobs
        assert info is not None and video is not None

        def work(cancelled: Callable[[], bool]) -> list[tuple[float, QImage, Attachment]]:
            from app.core.video.attachments import frames_to_attachments
            from app.core.video.sampling import sample_frames

            frames = sample_frames(path, sampling, info, name=name, cancelled=cancelled)
            images = frames_to_attachments(frames, video.name, video.source_path, blobs)
            return [(f.time_s, QImage.fromData(f.thumbnail or f.jpeg), a)
                    for f, a in zip(frames, images, strict=True)]  # fmt: skip

        self.panel.set_busy("sampling")
        self.panel.set_progress(0, 0, f"Sampling {name}…")
        self.panel.set_status("")
        self._start("sample", work, self._on_sampled, self._on_sampling_failed)
        return True

    def _on_sampled(self, sampled: list[tuple[float, QImage, Attachment]]) -> None:
        self.panel.hide_progress()
        self.panel.set_busy(None)
        self._run, self._run_session = None, None
        self._frames = [TimelineFrame(time_s, thumb) for time_s, thumb, _a in sampled]
        self._images = [a for _t, _q, a in sampled]
        self.panel.set_frames(self._frames)
        self.panel.set_answer("", "")
        if sampled:
            word = "frame" if len(sampled) == 1 else "frames"
            self.panel.set_status(f"{len(sampled)} {word} sampled — ask a question about them.")
        else:
            self.panel.set_status(f"No frame of {self._video_name()} could be taken.", error=True)
        self.sampling_finished.emit(len(sampled))
        then, self._after_sampling = self._after_sampling, None
        if then is not None and sampled:
            then()

    def _on_sampling_failed(self, sentence: str) -> None:
        self.panel.hide_progress()
        self.panel.set_busy(None)
        self._after_sampling = None
        self.panel.set_status(sentence, error=True)
        self.message_posted.emit(sentence)
        self.sampling_finished.emit(0)

    def cancel(self) -> None:
        """Cancel what runs: sampling, or the question being answered."""
        if self.is_sampling():
            self._tasks.cancel(self._task.get("sample"))
            self._after_sampling = None
            self.panel.hide_progress()
            self.panel.set_busy(None)
            self.panel.set_status("Sampling cancelled.")
            self.sampling_finished.emit(0)
        self.cancel_ask()

    # -- lifecycle ---------------------------------------------------------------------------

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Cancel and save a running question, stop sampling and previews, join the pool."""
        if self._closed:
            return
        self._closed = True
        self._scrub_timer.stop()
        self.shutdown_asking()
        self._tasks.shutdown(timeout_ms)

    # -- internals ---------------------------------------------------------------------------

    def _start(
        self,
        slot: str,
        work: Callable[[Callable[[], bool]], Any],
        done: Callable[[Any], None],
        failed: Callable[[str], None],
    ) -> None:
        """Run work on the pool, replacing (cancelling) the task that held the same slot."""
        self._tasks.cancel(self._task.get(slot))
        self._task[slot] = self._tasks.run_cancellable(work, done, failed)

    def _cancel_tasks(self) -> None:
        self._scrub_timer.stop()
        self._after_sampling = None
        for task_id in self._task.values():
            self._tasks.cancel(task_id)
        self._task.clear()
        self.panel.set_busy(None)

    def _on_task_failed(self, sentence: str) -> None:
        self.panel.set_status(sentence, error=True)

    def _blob(self, attachment: Attachment | None) -> Path:
        return self._store.blobs.path(attachment.sha256 or "") if attachment else Path()

    def _video_name(self) -> str:
        return self._video.name if self._video is not None else "the video"

    def _present(self) -> None:
        present_dock(self._dock, min_width=440, share=0.42)
