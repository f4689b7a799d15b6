"""Sampling a clip's frames as the panel's choice says, off the GUI thread, into the blob store."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QImage

from app.core.messages import Attachment
from app.store.sessions import SessionStore
from app.ui.video.clip_state import ClipState, TaskSlots
from app.ui.video.panel import VideoPanel
from app.ui.video.timeline import TimelineFrame


class FrameSampler:
    """Takes the clip's frames (N frames, one every N seconds, or one per scene) on the pool.

    A sampling started for a question carries what to do once frames are there (`then`):
    asking about a clip with nothing sampled samples first, then asks.

    Args:
        store: the session store (the frames are stored as image attachments).
        panel: the panel's widgets.
        clip: the clip shown (shared with the other video components).
        tasks: the clip's background work.
        busy_refusal: why nothing may start now (a question runs), or None.
        post: shows a sentence in the status bar.
        finished: told how many frames sampling took (0: it failed, found none or stopped).
    """

    def __init__(
        self,
        *,
        store: SessionStore,
        panel: VideoPanel,
        clip: ClipState,
        tasks: TaskSlots,
        busy_refusal: Callable[[], str | None],
        post: Callable[[str], None],
        finished: Callable[[int], None],
    ) -> None:
        self._store = store
        self._panel = panel
        self._clip = clip
        self._tasks = tasks
        self._busy_refusal = busy_refusal
        self._post = post
        self._finished = finished
        self._then: Callable[[], object] | None = None

    def is_sampling(self) -> bool:
        """Whether frames are being sampled now."""
        return self._tasks.is_running("sample")

    def sample(self, then: Callable[[], object] | None = None) -> bool:
        """Sample frames as the panel's choice says (on the pool; Cancel stops it).

        Args:
            then: called once frames were taken (not when none were, or it was refused);
                None keeps what an earlier call asked for.

        Returns:
            True when sampling started.
        """
        from app.core.video.data import MAX_FRAMES, Sampling, SamplingMode

        if then is not None:
            self._then = then
        clip = self._clip
        refusal = self._busy_refusal() or ("Open a video first." if clip.video is None else None)
        if refusal is None and clip.info is None:
            refusal = f"{clip.video_name()} has no recorded length; attach it again."
        if refusal is not None:
            self._then = None
            self._panel.set_status(refusal, error=True)
            return False
        mode, count, every = self._panel.sampling_choice()
        # A scene scan keeps at most `count` scenes; the panel's count is for "N frames".
        limit = count if mode != "scenes" else MAX_FRAMES
        sampling = Sampling(SamplingMode(mode), count=limit, every_s=every)
        info, name, video = clip.info, clip.video_name(), clip.video
        blobs = self._store.blobs
        assert info is not None and video is not None
        path = blobs.path(video.sha256 or "")

        def work(cancelled: Callable[[], bool]) -> list[tuple[float, QImage, Attachment]]:
            from app.core.video.attachments import frames_to_attachments
            from app.core.video.sampling import sample_frames

            frames = sample_frames(path, sampling, info, name=name, cancelled=cancelled)
            images = frames_to_attachments(frames, video.name, video.source_path, blobs)
            return [(f.time_s, QImage.fromData(f.thumbnail or f.jpeg), a)
                    for f, a in zip(frames, images, strict=True)]  # fmt: skip

        self._panel.set_busy("sampling")
        self._panel.set_progress(0, 0, f"Sampling {name}…")
        self._panel.set_status("")
        self._tasks.start("sample", work, self._on_sampled, self._on_failed)
        return True

    def cancel(self) -> None:
        """Stop sampling (a no-op when none runs); the frames shown stay."""
        if not self.is_sampling():
            return
        self._tasks.cancel("sample")
        self._then = None
        self._panel.hide_progress()
        self._panel.set_busy(None)
        self._panel.set_status("Sampling cancelled.")
        self._finished(0)

    def forget(self) -> None:
        """Drop what was to follow sampling (another clip is shown, or none)."""
        self._then = None

    def _on_sampled(self, sampled: list[tuple[float, QImage, Attachment]]) -> None:
        clip = self._clip
        self._panel.hide_progress()
        self._panel.set_busy(None)
        clip.run, clip.run_session = None, None
        clip.frames = [TimelineFrame(time_s, thumb) for time_s, thumb, _a in sampled]
        clip.images = [a for _t, _q, a in sampled]
        self._panel.set_frames(clip.frames)
        self._panel.set_answer("", "")
        if sampled:
            word = "frame" if len(sampled) == 1 else "frames"
            self._panel.set_status(f"{len(sampled)} {word} sampled — ask a question about them.")
        else:
            self._panel.set_status(f"No frame of {clip.video_name()} could be taken.", error=True)
        self._finished(len(sampled))
        then, self._then = self._then, None
        if then is not None and sampled:
            then()

    def _on_failed(self, sentence: str) -> None:
        self._panel.hide_progress()
        self._panel.set_busy(None)
        self._then = None
        self._panel.set_status(sentence, error=True)
        self._post(sentence)
        self._finished(0)
