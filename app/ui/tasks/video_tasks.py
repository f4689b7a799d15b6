"""Cancellable background tasks for the video panel (probing, thumbnails, sampling, exports)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

#: A task's work: gets a `cancelled()` to poll (the video decoder takes it) and returns a result.
Work = Callable[[Callable[[], bool]], Any]
Done = Callable[[Any], None]
Failed = Callable[[str], None]


class _Relay(QObject):
    """Lives on the GUI thread; pool threads emit through it, so delivery is queued there."""

    #: (task id, result, error sentence or "", cancelled).
    finished = Signal(int, object, str, bool)


class _Task(QRunnable):
    def __init__(self, task_id: int, work: Work, stop: threading.Event, relay: _Relay) -> None:
        super().__init__()
        self._task_id = task_id
        self._work = work
        self._stop = stop
        self._relay = relay

    def run(self) -> None:
        result: Any = None
        error = ""
        if not self._stop.is_set():
            try:
                result = self._work(self._stop.is_set)
            except Exception as exc:
                # A known problem (VideoError) carries its sentence; a bug is logged as well.
                error = getattr(exc, "message", "") or f"{type(exc).__name__}: {exc}"
                if not hasattr(exc, "message") and type(exc).__name__ != "VideoCancelled":
                    log.exception("video task failed")
        self._relay.finished.emit(self._task_id, result, error, self._stop.is_set())


class VideoTasks(QObject):
    """A small pool whose tasks can be cancelled one by one; answers arrive on the GUI thread.

    A cancelled task never calls back: its work sees `cancelled()` turn True (the video
    decoder then stops its child process) and whatever it returns is dropped.

    Args:
        max_threads: pool threads (thumbnails, sampling and a scrub preview can run together).
        parent: the usual QObject parent.
    """

    def __init__(self, max_threads: int = 3, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._relay = _Relay(self)
        self._relay.finished.connect(self._on_relay_finished)
        self._tasks: dict[int, tuple[threading.Event, Done, Failed | None]] = {}
        self._next_id = 0

    def run(self, work: Work, done: Done, failed: Failed | None = None) -> int:
        """Start `work(cancelled)` on the pool.

        Args:
            work: touches no widget; polls `cancelled()` where it can.
            done: called on the GUI thread with the result (unless cancelled).
            failed: called on the GUI thread with a sentence when the work raised.

        Returns:
            The task id (for `cancel`).
        """
        self._next_id += 1
        stop = threading.Event()
        self._tasks[self._next_id] = (stop, done, failed)
        self._pool.start(_Task(self._next_id, work, stop, self._relay))
        return self._next_id

    def cancel(self, task_id: int | None) -> None:
        """Stop a task (no-op for one that ended or None); its callbacks will not run."""
        entry = self._tasks.pop(task_id, None) if task_id is not None else None
        if entry is not None:
            entry[0].set()

    def is_running(self, task_id: int | None) -> bool:
        """Whether a task has not answered yet (and was not cancelled)."""
        return task_id is not None and task_id in self._tasks

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel every task and wait for the pool; True when it is idle."""
        for stop, _done, _failed in self._tasks.values():
            stop.set()
        self._tasks.clear()
        self._pool.clear()
        return self._pool.waitForDone(timeout_ms)

    def _on_relay_finished(self, task_id: int, result: object, error: str, cancelled: bool) -> None:
        entry = self._tasks.pop(task_id, None)
        if entry is None or cancelled:
            return
        _stop, done, failed = entry
        if error:
            if failed is not None:
                failed(error)
        else:
            done(result)
