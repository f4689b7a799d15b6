"""The video panel's logic: open a clip, scrub it, sample frames, ask, restore runs, export.

`VideoController` is the feature's one entry point and the composition of its parts: it owns
the clip shown (`ClipState`) and its background work (`TaskSlots`), and builds the components
that act on them, each given exactly what it uses: `ClipBrowser` (strip, scrub preview, a
frame in the preview or viewer), `FrameSampler`, `VideoQuestions` (the three asks),
`SavedRuns` (a chat's run back on the timeline) and `VideoExporter`. The panel only shows and
reports clicks. Decoding runs on the task pool, whose cancellable work reaches the decoder's
child process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDockWidget

from app.conversation.video_questions import AnswerFrames, answer_frames
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.core.settings import Settings
from app.store.sessions import SessionStore
from app.ui.ports import ChatPort
from app.ui.tasks.pool import TaskPool
from app.ui.transcript.view import ChatView
from app.ui.video.asking import VideoQuestions
from app.ui.video.browsing import ClipBrowser
from app.ui.video.clip_state import ClipState, TaskSlots
from app.ui.video.export import ChooseFolder, VideoExporter, ask_folder
from app.ui.video.panel import VideoPanel
from app.ui.video.sampling import FrameSampler
from app.ui.video.saved_runs import SavedRuns
from app.ui.video.timeline import TimelineFrame
from app.ui.viewer.image_viewer import ImageViewer
from app.ui.viewer.overlay_export import ChoosePath, ask_save_path
from app.ui.widgets.dock_present import present_dock

if TYPE_CHECKING:
    from app.core.video.data import VideoInfo
    from app.core.video.run import VideoRun


class VideoController(QObject):
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
        self.panel = panel
        self._dock = dock
        self.answer_frames: AnswerFrames = answer_frames
        self.choose_path: ChoosePath = ask_save_path
        self.choose_folder: ChooseFolder = ask_folder
        self.batch_size = 4  # app.inference.frames.DEFAULT_BATCH_SIZE, without importing it here
        self._closed = False
        self._clip = clip = ClipState()
        self._tasks = tasks = TaskSlots(pool=TaskPool(3, self))  # strip, sampling, preview at once
        post = self.message_posted.emit
        self._browser = ClipBrowser(
            store=store, panel=panel, clip=clip, tasks=tasks, viewer=viewer,
            viewer_dock=viewer_dock, strip_ready=self.strip_ready.emit,
            preview_shown=self.preview_shown.emit,
        )  # fmt: skip
        self._sampler = FrameSampler(
            store=store, panel=panel, clip=clip, tasks=tasks, busy_refusal=self.busy_refusal,
            post=post, finished=self.sampling_finished.emit,
        )  # fmt: skip
        # The options are read through this controller at each ask or export, so a test (or
        # the window) may replace them after construction.
        self._questions = VideoQuestions(
            store=store, chat=chat, view=view, panel=panel, clip=clip, settings=settings,
            answer_frames=lambda: self.answer_frames, batch_size=lambda: self.batch_size,
            sample=self._sampler.sample, is_sampling=self._sampler.is_sampling,
            show_frame=self._browser.show_frame, post=post, finished=self.ask_finished.emit,
        )  # fmt: skip
        self._runs = SavedRuns(
            store=store, chat=chat, view=view, panel=panel, clip=clip, tasks=tasks,
            show_clip=self._show_clip, open_video=self.open_video, clear=self.clear,
            present=self._present, asking=lambda: self._questions.asking, post=post,
            restored=self.run_restored.emit,
        )  # fmt: skip
        self._exporter = VideoExporter(
            store=store, panel=panel, clip=clip, tasks=tasks,
            choose_path=lambda: self.choose_path, choose_folder=lambda: self.choose_folder,
            post=post, finished=self.export_finished.emit,
        )  # fmt: skip
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
        return self._clip.video

    @property
    def info(self) -> VideoInfo | None:
        """The clip's facts, or None."""
        return self._clip.info

    @property
    def frames(self) -> list[TimelineFrame]:
        """The sampled frames on the timeline, with their answers."""
        return list(self._clip.frames)

    @property
    def run(self) -> VideoRun | None:
        """The saved run the panel shows (None before anything was asked)."""
        return self._clip.run

    @property
    def selected(self) -> int | None:
        """The frame shown in the preview, or None."""
        return self._clip.selected

    @property
    def asking(self) -> bool:
        """Whether a question about the clip is being answered."""
        return self._questions.asking

    def is_sampling(self) -> bool:
        """Whether frames are being sampled now."""
        return self._sampler.is_sampling()

    def busy_refusal(self) -> str | None:
        """Why the chat must wait (a video question is being answered), or None."""
        return self._questions.busy_refusal()

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
        self._clip.reset()
        self.panel.clear()

    # -- scrubbing and frames ----------------------------------------------------------------

    def scrub(self, time_s: float, at_once: bool = False) -> None:
        """Move the playhead; the preview follows once the pointer rests (off the GUI thread).

        Args:
            time_s: seconds from the clip's start.
            at_once: decode now instead of after the debounce.
        """
        self._browser.scrub(time_s, at_once)

    def show_frame(self, position: int) -> bool:
        """Show a sampled frame with its boxes in the preview and select it everywhere.

        Returns:
            False when there is no such frame or its image cannot be read.
        """
        return self._browser.show_frame(position)

    def open_in_viewer(self, position: int) -> bool:
        """Open a frame in the image viewer dock (zoom, box list, PNG export there).

        Returns:
            False without a viewer or such a frame.
        """
        return self._browser.open_in_viewer(position)

    # -- sampling and asking -----------------------------------------------------------------

    def sample(self) -> bool:
        """Sample frames as the panel's choice says (on the pool; Cancel stops it).

        Returns:
            True when sampling started.
        """
        return self._sampler.sample()

    def ask_frames(self, question: str) -> bool:
        """Ask `question` about every sampled frame (sampling first if nothing is sampled).

        Returns:
            True when the question was saved and the answers started (or sampling did).
        """
        return self._questions.ask_frames(question)

    def ask_clip(self, question: str) -> bool:
        """Ask `question` once about the clip: up to five sampled frames in one prompt.

        Returns:
            True when the question was saved and the answer started (or sampling did).
        """
        return self._questions.ask_clip(question)

    def summarize(self) -> bool:
        """Summarise the per-frame answers of the run shown (saved after its answers).

        Returns:
            True when the summary started.
        """
        return self._questions.summarize()

    def cancel(self) -> None:
        """Cancel what runs: sampling, or the question being answered."""
        self._sampler.cancel()
        self._questions.cancel()

    def cancel_ask(self) -> None:
        """Stop the question being answered (what was answered is kept)."""
        self._questions.cancel()

    # -- saved runs and exports --------------------------------------------------------------

    def restore(self, session_id: str, question_id: str | None = None) -> bool:
        """Show a session's saved run (its latest, or the one asked by `question_id`).

        Returns:
            True when the session holds a run and the panel shows it.
        """
        return self._runs.restore(session_id, question_id)

    def show_run(self, run: VideoRun, session_id: str, clip_text: str = "") -> None:
        """Put a saved run on the timeline: its frames, answers, boxes and summary."""
        self._runs.show_run(run, session_id, clip_text)

    def export(self, kind: str, dest: Path | None = None) -> bool:
        """Export the saved run: "csv" or "json" (a file) or "frames" (PNGs in a folder).

        Args:
            kind: what to write.
            dest: the file or folder; None asks with `choose_path` / `choose_folder`.

        Returns:
            True when it was written (or, for "frames", started on the pool).
        """
        return self._exporter.export(kind, dest)

    # -- wiring ------------------------------------------------------------------------------

    def on_chat_session_opened(self, session_id: str | None) -> None:
        """Another chat is shown: its saved run (if any) comes back on the timeline."""
        if self._closed or self._questions.asking or self._questions.opening_own_session:
            return  # closing, or a question runs or just opened its own chat: the panel stays
        self._runs.follow_chat(session_id)

    def on_ingest_finished(self, _job_id: int, attachments: Sequence[Attachment]) -> None:
        """Open a dropped or attached video in the panel (the last one, when several came)."""
        videos = [
            a for a in attachments
            if a.kind is AttachmentKind.VIDEO and a.status is AttachmentStatus.READY
        ]  # fmt: skip
        if videos:
            self.open_video(videos[-1])

    def on_attachment_activated(self, attachment: Attachment | None) -> None:
        """A video clicked in the composer or the chat opens in the panel (with its run)."""
        self._runs.open_attachment(attachment)

    # -- lifecycle ---------------------------------------------------------------------------

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Cancel and save a running question, stop sampling and previews, join the pool."""
        if self._closed:
            return
        self._closed = True
        self._browser.stop()
        self._questions.shutdown()
        self._tasks.shutdown(timeout_ms)

    # -- internals ---------------------------------------------------------------------------

    def _show_clip(self, video: Attachment, info: VideoInfo | None) -> None:
        """Show a clip with nothing sampled, after stopping the last clip's work."""
        self._cancel_tasks()
        self._browser.show_clip(video, info)

    def _cancel_tasks(self) -> None:
        self._browser.stop()
        self._sampler.forget()
        self._tasks.cancel_all()
        self.panel.set_busy(None)

    def _present(self) -> None:
        present_dock(self._dock, min_width=440, share=0.42)
