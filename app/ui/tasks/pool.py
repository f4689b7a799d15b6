"""Run plain Python functions on a private QThreadPool and get their results on the GUI thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

Done = Callable[[Any], None]
Failed = Callable[[str], None]


class _Relay(QObject):
    """Lives on the GUI thread; pool threads emit through it, so delivery is queued there."""

    #: (task id, result, error sentence or "").
    finished = Signal(int, object, str)


class _Task(QRunnable):
    def __init__(self, task_id: int, work: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._task_id = task_id
        self._work = work
        self._relay = relay

    def run(self) -> None:
        try:
            result, error = self._work(), ""
        except Exception as exc:  # a bug must reach the caller as a sentence, never kill a thread
            log.exception("background task failed")
            result, error = None, str(exc) or type(exc).__name__
        self._relay.finished.emit(self._task_id, result, error)


class BackgroundTasks(QObject):
    """A small pool for work that must not block the GUI (counting tokens, planning, rendering).

    Args:
        max_threads: threads of the pool; 1 runs tasks one after the other, in order.
        parent: the usual QObject parent.
    """

    def __init__(self, max_threads: int = 1, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._relay = _Relay(self)
        self._relay.finished.connect(self._on_relay_finished)
        self._callbacks: dict[int, tuple[Done, Failed | None]] = {}
        self._next_id = 0

    def run(self, work: Callable[[], Any], done: Done, failed: Failed | None = None) -> int:
        """Start `work` on the pool; `done(result)` or `failed(sentence)` runs on the GUI thread.

        Args:
            work: a function that touches no widget.
            done: called with its result.
            failed: called with a sentence when it raised (None: logged only).

        Returns:
            The task id.
        """
        self._next_id += 1
        self._callbacks[self._next_id] = (done, failed)
        self._pool.start(_Task(self._next_id, work, self._relay))
        return self._next_id

    def pending(self) -> int:
        """Tasks that have not answered yet."""
        return len(self._callbacks)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Drop queued tasks and wait for running ones; True when the pool is idle."""
        self._pool.clear()
        idle = self._pool.waitForDone(timeout_ms)
        self._callbacks.clear()
        return idle

    def _on_relay_finished(self, task_id: int, result: object, error: str) -> None:
        callbacks = self._callbacks.pop(task_id, None)
        if callbacks is None:
            return
        done, failed = callbacks
        if error:
            if failed is not None:
                failed(error)
        else:
            done(result)
