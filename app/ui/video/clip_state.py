"""The clip the video panel shows, and its background work, shared by the video components.

`VideoController` owns one `ClipState` and one `TaskSlots` and hands both to each component
(`ClipBrowser`, `FrameSampler`, `VideoQuestions`, `SavedRuns`, `VideoExporter`), so what
they share is one explicit object, not attributes borrowed from a host class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.core.messages import Attachment
from app.ui.tasks.pool import TaskPool
from app.ui.video.timeline import TimelineFrame

if TYPE_CHECKING:
    from app.core.video.data import VideoInfo
    from app.core.video.run import VideoRun


@dataclass(kw_only=True)
class ClipState:
    """What the panel shows of one clip: the clip, its sampled frames and the run they belong to.

    Attributes:
        video: the clip's attachment, or None when no clip is shown.
        info: the clip's facts (length, size), or None when none were recorded.
        frames: the sampled frames on the timeline, with their answers.
        images: the stored frame images, one beside each of `frames`.
        run: the saved run shown (None: nothing asked about these frames yet).
        run_session: the chat the frames' question was saved in, or None.
        selected: the frame shown in the preview, or None.
    """

    video: Attachment | None = None
    info: VideoInfo | None = None
    frames: list[TimelineFrame] = field(default_factory=list)
    images: list[Attachment] = field(default_factory=list)
    run: VideoRun | None = None
    run_session: str | None = None
    selected: int | None = None

    def reset(self, video: Attachment | None = None, info: VideoInfo | None = None) -> None:
        """Show `video` (or nothing) with no frames sampled and no run.

        Args:
            video: the clip now shown, or None.
            info: its facts, or None.
        """
        self.video, self.info = video, info
        self.run, self.run_session, self.selected = None, None, None
        self.frames, self.images = [], []

    def video_name(self) -> str:
        """The clip's name for a sentence ("the video" when none is shown)."""
        return self.video.name if self.video is not None else "the video"


class TaskSlots:
    """Background work for the clip: at most one task per named slot on the task pool.

    Starting work in a slot cancels the task that held it (a newer preview replaces an older
    one), and a new clip cancels them all, so no stale result reaches the panel.

    Args:
        pool: the task pool the work runs on.
    """

    def __init__(self, *, pool: TaskPool) -> None:
        self._pool = pool
        self._task: dict[str, int | None] = {}

    def start(
        self,
        slot: str,
        work: Callable[[Callable[[], bool]], Any],
        done: Callable[[Any], None],
        failed: Callable[[str], None],
    ) -> None:
        """Run `work(cancelled)` on the pool, replacing (cancelling) the slot's task.

        Args:
            slot: the slot's name ("strip", "preview", "sample", "thumbs", "export").
            work: the work; it polls `cancelled()` where it can stop.
            done: called on the GUI thread with its result.
            failed: called on the GUI thread with a sentence when it failed.
        """
        self._pool.cancel(self._task.get(slot))
        self._task[slot] = self._pool.run_cancellable(work, done, failed)

    def cancel(self, slot: str) -> None:
        """Stop the slot's task (a no-op when none runs); its callbacks will not run."""
        self._pool.cancel(self._task.get(slot))

    def is_running(self, slot: str) -> bool:
        """Whether the slot's task has not answered yet (and was not cancelled)."""
        return self._pool.is_running(self._task.get(slot))

    def cancel_all(self) -> None:
        """Stop every slot's task (another clip is shown, or none)."""
        for task_id in self._task.values():
            self._pool.cancel(task_id)
        self._task.clear()

    def shutdown(self, timeout_ms: int) -> None:
        """Cancel everything and wait for the pool's running work (the window is closing)."""
        self._pool.shutdown(timeout_ms)
